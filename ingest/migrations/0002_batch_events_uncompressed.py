from django.db import migrations


def store_uncompressed(apps, schema_editor):
    # Batch payloads are short-lived (read once by a worker, purged after retention):
    # compressing them with pglz costs PostgreSQL more CPU on the hot path than it saves.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE ingest_ingestbatch ALTER COLUMN events SET STORAGE EXTERNAL")


class Migration(migrations.Migration):
    dependencies = [("ingest", "0001_initial")]

    operations = [migrations.RunPython(store_uncompressed, migrations.RunPython.noop)]
