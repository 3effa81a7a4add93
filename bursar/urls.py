from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, URLResolver, include, path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from bursar.api import json_not_found, json_server_error
from governance.user_urls import public_urlpatterns as invitation_urls
from ingest.metrics import metrics_view


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """JSON under /api/ (clients parse it), the HTML page elsewhere."""
    if request.path.startswith("/api/"):
        return json_not_found(request, exception)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_server_error(request)
    return defaults.server_error(request)


handler404 = not_found
handler500 = server_error


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


api_v1: list[URLPattern | URLResolver] = [
    path("", include("governance.api.urls")),
    path("ingest/", include("ingest.api.urls")),
    path("", include("billing.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]

# The admin site signs in through allauth (rate limits, MFA, SSO only), never its own form.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("accounts/", include("allauth.urls")),
    *invitation_urls,
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("bursar.dashboard_urls")),
]
