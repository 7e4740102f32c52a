"""Which campaigns measure a population, and measuring it for them: the hook after generation, and backfills.

Metrics know attribute specs and populations, not campaigns; generation knows neither. This module
joins them: a population is measured for every campaign that has its generator and its prompt,
population size N, and attributes configured (specs equal across campaigns are measured once).

Where populations get their metrics:
- made by a worker that shares the database: in that worker, right after the store commits and
  the population is announced (generation.signals.population_ready), on the worker's device;
- uploaded by a remote HTTP worker: on the server, in the upload request, after the commit (the
  remote worker has no database and no campaign configuration). The population is already ready
  and being served; only the worker's upload response waits. With a heavy backend on a small web
  server, set METRICS_AFTER_GENERATION=0 there and run compute_metrics on a machine with the model;
- anything missed (a failure, a campaign configured later): `compute_metrics --campaign SLUG`.

A saved campaign's configuration can stop parsing later: Campaign.save lets a campaign whose CLIP
folder has since moved be paused. Such a campaign is skipped here (and logged), never the others
that share its populations; readers that show its metrics (the API, the leaderboard page, exports)
say what is wrong through `checked_attribute_specs` / `metrics_config_problem`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q

from annotation.models import Campaign
from annotation.selectors import campaign_populations
from core.errors import ApplicationError
from generation.models import Population
from metrics.classifiers import load_backend
from metrics.config import AttributeSpec
from metrics.services import MeasureReport, measure_populations

logger = logging.getLogger("poparena.metrics")


class MetricsConfigInvalid(ApplicationError):
    """A campaign whose saved metrics configuration no longer parses (a CLIP folder moved, say).

    409: the request is fine; the campaign's state is what must change. Measures already stored
    are kept and are shown again once the configuration reads.
    """

    code = "metrics_config_invalid"
    status = 409


def _problem(campaign: Campaign, exc: ValidationError) -> str:
    return (
        f"campaign {campaign.slug!r} has a metrics configuration that cannot be read: "
        f"metrics_attributes.{'; '.join(exc.messages)}. Fix it (or put the model folder back); "
        "measures already stored are kept and show again once it reads"
    )


def checked_attribute_specs(campaign: Campaign) -> list[AttributeSpec]:
    """Campaign.attribute_specs(), or MetricsConfigInvalid (409) naming the field and folder."""
    try:
        return campaign.attribute_specs()
    except ValidationError as exc:
        raise MetricsConfigInvalid(_problem(campaign, exc)) from exc


def metrics_config_problem(campaign: Campaign) -> str:
    """What is wrong with the campaign's saved metrics configuration, or "" when it reads."""
    try:
        campaign.attribute_specs()
    except ValidationError as exc:
        return _problem(campaign, exc)
    return ""


def readable_attribute_specs(campaign: Campaign) -> list[AttributeSpec]:
    """The campaign's specs, or none when its configuration cannot be read (for readers that warn instead)."""
    try:
        return campaign.attribute_specs()
    except ValidationError:
        return []


def _specs_for_population(population: Population) -> list[AttributeSpec]:
    campaigns = (
        Campaign.objects.filter(
            generators=population.generator_id, prompts=population.prompt_id, population_size=population.size
        )
        .exclude(Q(metrics_attributes={}) | Q(metrics_attributes__isnull=True))
        .order_by("pk")
    )
    specs: dict[str, AttributeSpec] = {}
    for campaign in campaigns:
        try:
            campaign_specs = campaign.attribute_specs()
        except ValidationError as exc:
            # One campaign's broken configuration must not stop measuring for the others.
            logger.warning("metrics: population %s: skipped %s", population.pk, _problem(campaign, exc))
            continue
        for spec in campaign_specs:
            specs.setdefault(spec.key, spec)
    return list(specs.values())


def measure_population_for_campaigns(*, population_id: int, device: str = "cpu") -> MeasureReport | None:
    """Measure one ready population for every campaign that configures metrics for it; None when none does."""
    population = Population.objects.filter(pk=population_id, decoy_of__isnull=True).first()
    if population is None:
        return None
    specs = _specs_for_population(population)
    if not specs:
        return None
    return measure_populations(population_ids=[population_id], attributes=specs, device=device)


def on_population_ready(*, population_id: int, device: str = "cpu", **kwargs: Any) -> None:
    """generation.signals.population_ready's receiver; METRICS_AFTER_GENERATION=0 turns it off."""
    if not getattr(settings, "METRICS_AFTER_GENERATION", True):
        return
    report = measure_population_for_campaigns(population_id=population_id, device=device)
    if report is not None and report.measured:
        logger.info("metrics for population %s: %d images in %.2fs", population_id, report.images, report.seconds)


def campaign_population_ids(campaign: Campaign) -> list[int]:
    """The campaign's ready, non-decoy populations of its size N: the ones its metrics are about.

    Unlike the arena, it keeps the sets of generators no longer active in the campaign.
    """
    populations = campaign_populations(campaign, generators=campaign.generators.all())
    return list(populations.filter(decoy_of__isnull=True).order_by("pk").values_list("pk", flat=True))


def backfill_campaign_metrics(
    *, campaign: Campaign, recompute: bool = False, device: str = "cpu", progress: Callable[[int], None] | None = None
) -> MeasureReport:
    """Measure every population of a campaign (compute_metrics); skips what is already measured unless recompute.

    Every backend is loaded before anything is computed, so a model that cannot be loaded stops the
    run with its name (BackendError) and nothing is stored.
    """
    specs = campaign.attribute_specs()
    for spec in specs:
        load_backend(spec.backend, spec.source or spec.model, device=device)
    return measure_populations(
        population_ids=campaign_population_ids(campaign),
        attributes=specs,
        recompute=recompute,
        device=device,
        progress=progress,
    )
