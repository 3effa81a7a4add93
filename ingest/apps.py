from django.apps import AppConfig


class IngestConfig(AppConfig):
    """Receiving endpoints, format adapters and batch processing (ingest issue)."""

    name = "ingest"
    verbose_name = "Ingest"
