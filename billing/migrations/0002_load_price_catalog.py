from django.db import migrations


def load(apps, schema_editor):
    from billing.catalog import load_catalog

    load_catalog(apps.get_model("billing", "ModelPrice"))


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
