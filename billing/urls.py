from django.urls import path

from billing import api

urlpatterns = [
    path("usage/", api.UsageApi.as_view(), name="usage"),
    path("prices/", api.PricesApi.as_view(), name="prices"),
    path("prices/reprice/", api.RepriceApi.as_view(), name="prices-reprice"),
    path("prices/reprice/<int:pk>/", api.RepriceJobApi.as_view(), name="prices-reprice-job"),
]
