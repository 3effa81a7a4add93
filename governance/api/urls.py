from django.urls import path
from rest_framework.routers import DefaultRouter

from governance.api import views

# "/?": clients that drop the trailing slash reach the same endpoint instead of a redirect
# that would lose a POST body.
router = DefaultRouter()
router.trailing_slash = "/?"
router.register("customers", views.CustomerViewSet, basename="customer")
router.register("teams", views.TeamViewSet, basename="team")
router.register("virtual-keys", views.VirtualKeyViewSet, basename="virtual-key")
router.register("budgets", views.BudgetViewSet, basename="budget")
router.register("alerts", views.AlertViewSet, basename="alert")
router.register("alert-channels", views.AlertChannelViewSet, basename="alert-channel")
router.register("gateway-nodes", views.GatewayNodeViewSet, basename="gateway-node")
router.register("api-tokens", views.ApiTokenViewSet, basename="api-token")
router.register("audit", views.AuditViewSet, basename="audit")
router.register("users", views.UserViewSet, basename="user")
router.register("invitations", views.InvitationViewSet, basename="invitation")

urlpatterns = [
    *router.urls,
    path("config/latest/", views.ConfigLatestView.as_view(), name="config-latest"),
    path("config/push/", views.ConfigPushView.as_view(), name="config-push"),
    path("gateway-config", views.GatewayConfigView.as_view(), name="gateway-config"),
]
