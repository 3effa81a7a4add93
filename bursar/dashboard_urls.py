"""The dashboard's pages (namespace ``dashboard``): spend pages from billing, management
pages from governance."""

from django.urls import include, path, re_path

from billing import views as spend
from governance import views as manage

app_name = "dashboard"

urlpatterns = [
    path("", spend.overview, name="home"),
    path("customers/", spend.customers, name="customers"),
    path("customers/<int:pk>/", spend.customer_detail, name="customer"),
    path("teams/", spend.teams, name="teams"),
    path("teams/<int:pk>/", spend.team_detail, name="team"),
    path("keys/", spend.keys, name="keys"),
    path("keys/new/", manage.issue_key, name="issue_key"),
    path("keys/<int:pk>/", spend.key_detail, name="key"),
    path("keys/<int:pk>/rotate/", manage.rotate_key, name="rotate_key"),
    path("keys/<int:pk>/revoke/", manage.revoke_key, name="revoke_key"),
    re_path(r"^(?P<kind>customer|team|virtual_key)/(?P<pk>[0-9]+)/events/$", spend.scope_events, name="events"),
    path("budgets/", manage.budgets, name="budgets"),
    path("budgets/new/", manage.new_budget, name="new_budget"),
    path("budgets/<int:pk>/", manage.budget_detail, name="budget"),
    path("alerts/", manage.alerts, name="alerts"),
    path("alerts/channels/", manage.channels, name="channels"),
    path("gateways/", manage.nodes, name="nodes"),
    path("prices/", spend.prices, name="prices"),
    path("audit/", manage.audit, name="audit"),
    path("", include("governance.user_urls")),  # users, invitations, API tokens
]
