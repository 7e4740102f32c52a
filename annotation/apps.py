"""Campaigns, criteria, participants, crowd sessions, quality control, and the staff pages."""

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def create_researcher_group(**kwargs: Any) -> None:
    from annotation.services import ensure_researcher_group

    ensure_researcher_group()


class AnnotationConfig(AppConfig):
    name = "annotation"

    def ready(self) -> None:
        # After every migrate the "researcher" group exists, so staff can put people in it from the admin.
        post_migrate.connect(create_researcher_group, sender=self)
