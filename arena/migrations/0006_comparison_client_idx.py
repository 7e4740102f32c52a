"""An index of a campaign's comparisons by client, built without locking the table on PostgreSQL."""

from typing import Any

from django.db import migrations, models


class AddIndexConcurrentlyWherePossible(migrations.AddIndex):
    """AddIndex, concurrently on PostgreSQL (votes keep landing while it builds); plainly elsewhere."""

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.add_index(model, self.index, concurrently=True)
        else:
            schema_editor.add_index(model, self.index)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.remove_index(model, self.index, concurrently=True)
        else:
            schema_editor.remove_index(model, self.index)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("arena", "0005_comparison_client_hash_and_use_counts"),
    ]

    operations = [
        AddIndexConcurrentlyWherePossible(
            model_name="comparison",
            index=models.Index(
                condition=models.Q(("client_hash__isnull", False)),
                fields=["campaign", "client_hash"],
                name="comparison_client_idx",
            ),
        ),
    ]
