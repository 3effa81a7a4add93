"""Users, invitations and API tokens.

``urlpatterns`` are dashboard pages (included under the ``dashboard`` namespace);
``public_urlpatterns`` is the invitation link, served at the site root without a namespace
and without signing in."""

from django.urls import URLPattern, path

from governance import user_views as views

urlpatterns: list[URLPattern] = [
    path("users/", views.users, name="users"),
    path("users/<int:pk>/", views.user_detail, name="user"),
    path("tokens/", views.tokens, name="tokens"),
]

public_urlpatterns: list[URLPattern] = [
    path("invitations/<str:secret>/", views.invitation, name="invitation"),
]
