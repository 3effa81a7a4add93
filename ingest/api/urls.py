from django.urls import path

from ingest.api import views

urlpatterns = [
    path("events", views.NativeEventsView.as_view(), name="ingest-events"),
    path("litellm", views.LiteLLMView.as_view(), name="ingest-litellm"),
    path("otlp/v1/traces", views.OtlpTracesView.as_view(), name="ingest-otlp-traces"),
    path("batches/<str:batch_id>", views.BatchStatusView.as_view(), name="ingest-batch"),
]
