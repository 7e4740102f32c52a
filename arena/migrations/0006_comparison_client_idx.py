"""An index of a campaign's comparisons by client, built without locking the table on PostgreSQL."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class AddIndexConcurrentlyOnPostgreSQL(AddIndexConcurrently):
    """AddIndexConcurrently on PostgreSQL (votes and issues go on while the index builds); AddIndex elsewhere.

    Copied into each migration that adds an index to a busy table, so none imports another's code.
    """

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("arena", "0005_comparison_client_hash_and_use_counts"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgreSQL(
            model_name="comparison",
            index=models.Index(
                condition=models.Q(("client_hash__isnull", False)),
                fields=["campaign", "client_hash"],
                name="comparison_client_idx",
            ),
        ),
    ]
