"""Comparisons, votes, ranking and pair sampling."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate, pre_migrate


class ArenaConfig(AppConfig):
    name = "arena"

    def ready(self) -> None:
        from arena import integrity

        pre_migrate.connect(integrity.drop_sqlite_triggers_before_migrate, sender=self)
        post_migrate.connect(integrity.install_sqlite_triggers_after_migrate, sender=self)
