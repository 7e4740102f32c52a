"""Campaigns, criteria, participants, crowd sessions, quality control, and the staff pages."""

from collections.abc import Iterable
from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


def create_researcher_group(**kwargs: Any) -> None:
    from annotation.services import ensure_researcher_group

    ensure_researcher_group()


def _campaign_choices() -> list[tuple[int, str]]:
    from annotation.models import Campaign

    return list(Campaign.objects.order_by("slug").values_list("pk", "slug"))


def _campaign_ids_by_slug(slugs: Iterable[str]) -> dict[str, int]:
    from annotation.models import Campaign

    return dict(Campaign.objects.filter(slug__in=list(slugs)).values_list("slug", "pk"))


def _campaign_generator_ids(ids: Iterable[int]) -> set[int]:
    from annotation.models import Campaign

    links = Campaign.generators.through.objects.filter(campaign_id__in=list(ids))
    return set(links.values_list("generator_id", flat=True))


def register_token_hooks() -> None:
    """What API tokens ask of annotation (access/hooks.py): who is a researcher; campaigns as worker limits."""
    from access.hooks import LimitKind, register_limit_kind, register_narrowed_staff
    from annotation.permissions import is_researcher

    register_narrowed_staff(is_researcher)
    register_limit_kind(
        "campaigns",
        LimitKind(choices=_campaign_choices, ids_by_name=_campaign_ids_by_slug, generator_ids=_campaign_generator_ids),
    )


class AnnotationConfig(AppConfig):
    name = "annotation"

    def ready(self) -> None:
        # After every migrate the "researcher" group exists, so staff can put people in it from the admin.
        post_migrate.connect(create_researcher_group, sender=self)
        register_token_hooks()
        from annotation.measuring import on_population_ready
        from annotation.models import Campaign, Criterion, Question
        from generation.signals import population_ready

        # Metrics for each new population, in the process that stored it (annotation/measuring.py says why here).
        population_ready.connect(on_population_ready, dispatch_uid="measure-ready-population")
        from annotation.demand import CAMPAIGN_OWNER_KIND, campaign_owner_named
        from generation.owners import register_owner_kind

        # Workers name a campaign's queues `campaign:SLUG`; its demand rows are owned by its primary key.
        register_owner_kind(CAMPAIGN_OWNER_KIND, campaign_owner_named)
        from annotation.selectors import forget_campaigns

        # Server processes keep copies of campaigns, their criteria and current questions (get_live_campaign).
        for model in (Campaign, Criterion, Question):
            post_save.connect(forget_campaigns, sender=model, dispatch_uid=f"forget-campaigns-save-{model.__name__}")
            post_delete.connect(forget_campaigns, sender=model, dispatch_uid=f"forget-campaigns-del-{model.__name__}")
