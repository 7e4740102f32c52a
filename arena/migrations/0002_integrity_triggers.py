"""Cross-table integrity triggers on PostgreSQL; SQLite gets them after every migrate (arena/integrity.py)."""

from django.db import migrations

from arena.integrity import drop_statements, install_statements


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        for statement in install_statements(schema_editor.connection.vendor):
            schema_editor.execute(statement)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        for statement in drop_statements(schema_editor.connection.vendor):
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("arena", "0001_initial")]

    operations = [migrations.RunPython(install, drop)]
