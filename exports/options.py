"""Export options: what a caller may ask for, checked against the campaign and the format before anything is read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from annotation.models import Campaign, Criterion
from core.errors import NotFound
from exports import writers as w
from exports.errors import OPTION, ExportError
from exports.rows import TIES_DROP, TIES_SOFT, TRAIN, VALIDATION, PairFilter


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how to filter it; None means the format's default."""

    format: str
    criterion: str | None = None
    ties: str | None = None
    min_votes: int | None = None
    min_margin: int | None = None
    validation_fraction: float = 0.0
    skip_missing: bool = False
    include_flagged: bool = False
    # A simulated crowd's votes (arena/simulation.py): a metric's, not people's, so left out unless asked for.
    include_simulated: bool = False
    copy_images: bool = True
    # Criteria a pair's winner must not have lost on (the same two populations' votes there, aggregated as
    # the export aggregates): a diversity win bought with worse quality is left out.
    not_worse_on: tuple[str, ...] = ()
    # Generator names: a pair is kept only where both of its sides come from one of them (empty: every generator).
    generators: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExportPlan:
    """The options resolved against a campaign: the format, the criteria, the pair filters, the splits."""

    spec: w.FormatSpec
    criteria: list[Criterion]
    pair_filter: PairFilter | None
    splits: tuple[str, ...]
    # --not-worse-on: criterion id -> key.
    not_worse_on: dict[int, str] = field(default_factory=dict)
    # --generators: generator id -> name, in the order given; empty for every generator.
    generators: dict[int, str] = field(default_factory=dict)

    def filters(self, options: ExportOptions) -> dict[str, Any]:
        """The filters as the manifest and the dataset card record them."""
        filters: dict[str, Any] = {
            "criteria": [c.key for c in self.criteria],
            "include_simulated": options.include_simulated,
        }
        if self.pair_filter is not None:
            filters.update(
                ties=self.pair_filter.ties,
                min_votes=self.pair_filter.min_votes,
                min_margin=self.pair_filter.min_margin,
                include_flagged_participants=options.include_flagged,
                gold_comparisons="excluded",
                skip_missing=options.skip_missing,
            )
            if self.not_worse_on:
                filters["not_worse_on"] = list(self.not_worse_on.values())
            if self.generators:
                filters["generators"] = list(self.generators.values())
            if self.spec.splits:
                filters["validation_fraction"] = options.validation_fraction
            if self.spec.images_optional:
                filters["images_copied"] = options.copy_images
        return filters


def plan_export(campaign: Campaign, options: ExportOptions) -> ExportPlan:
    """The plan for `options`, or the ExportError (NotFound for an unknown criterion) naming what is wrong."""
    spec = w.FORMATS.get(options.format)
    if spec is None:
        raise ExportError(f"unknown format {options.format!r} (use one of: {', '.join(w.FORMATS)})")
    asked = list(campaign.criteria.order_by("position", "pk"))
    keys = ", ".join(c.key for c in asked) or "none"
    chosen = _chosen_criteria(campaign, spec, options, asked, keys)
    pair_filter = _pair_filter(spec, options)
    not_worse_on = _not_worse_on(spec, options, asked, chosen, keys)
    generators = _generators(campaign, spec, options)
    if not 0.0 <= options.validation_fraction < 1.0:
        raise ExportError(f"{OPTION} must be at least 0 and below 1", option="validation_fraction")
    if options.validation_fraction and not spec.splits:
        raise ExportError(f"{spec.name} has no train/validation split")
    if options.include_simulated and spec.people_only:
        raise ExportError(
            f"{spec.name} is the leaderboard, which ranks people's votes only: {OPTION} does not apply",
            option="include_simulated",
        )
    if not options.copy_images and not spec.images_optional:
        optional = ", ".join(name for name, s in w.FORMATS.items() if s.images_optional)
        raise ExportError(f"{spec.name} needs its images; only {optional} can leave them out")
    splits = (TRAIN, VALIDATION) if options.validation_fraction else (TRAIN,)
    return ExportPlan(spec, chosen, pair_filter, splits, not_worse_on, generators)


def _chosen_criteria(
    campaign: Campaign, spec: w.FormatSpec, options: ExportOptions, asked: list[Criterion], keys: str
) -> list[Criterion]:
    if options.criterion:
        chosen = [c for c in asked if c.key == options.criterion]
        if not chosen:
            raise NotFound(f"unknown criterion {options.criterion!r} (this campaign asks: {keys})")
        return chosen
    if spec.single_criterion and len(asked) > 1:
        raise ExportError(
            f"{spec.name} holds one criterion: pass {OPTION} (this campaign asks: {keys})", option="criterion"
        )
    if spec.single_criterion and not asked:
        raise ExportError(f"campaign {campaign.slug!r} has no criteria, so there is nothing to export as {spec.name}")
    return asked


def _not_pairs(spec: w.FormatSpec, option: str | list[str]) -> ExportError:
    return ExportError(f"{OPTION} does not apply to {spec.name}, which is not made of judged pairs", option=option)


def _pair_filter(spec: w.FormatSpec, options: ExportOptions) -> PairFilter | None:
    if spec.source != "pairs":
        given = [
            name
            for name, value in (
                ("ties", options.ties),
                ("min_votes", options.min_votes),
                ("min_margin", options.min_margin),
            )
            if value is not None
        ]
        if given:
            raise _not_pairs(spec, given)
        return None
    ties = options.ties or spec.default_ties or TIES_DROP
    if ties not in (TIES_DROP, TIES_SOFT):
        raise ExportError(f"{OPTION} must be {TIES_DROP} or {TIES_SOFT}, not {ties!r}", option="ties")
    if ties == TIES_SOFT and not spec.soft_ties:
        raise ExportError(f"{spec.name} cannot express a tie: use {OPTION}", option="ties", value=TIES_DROP)
    min_votes = 1 if options.min_votes is None else options.min_votes
    min_margin = 0 if options.min_margin is None else options.min_margin
    if min_votes < 1:
        raise ExportError(f"{OPTION} must be at least 1", option="min_votes")
    if min_margin < 0:
        raise ExportError(f"{OPTION} must not be negative", option="min_margin")
    return PairFilter(ties=ties, min_votes=min_votes, min_margin=min_margin)


def _not_worse_on(
    spec: w.FormatSpec, options: ExportOptions, asked: list[Criterion], chosen: list[Criterion], keys: str
) -> dict[int, str]:
    guards: dict[int, str] = {}
    for key in options.not_worse_on:
        guard = next((c for c in asked if c.key == key), None)
        if guard is None:
            raise ExportError(
                f"{OPTION}: unknown criterion {key!r} (this campaign asks: {keys})", option="not_worse_on"
            )
        if spec.source != "pairs":
            raise _not_pairs(spec, "not_worse_on")
        if [c.key for c in chosen] == [key]:
            raise ExportError(
                f"{OPTION} {key} names the exported criterion itself: name another criterion of {keys}",
                option="not_worse_on",
            )
        if guard.pk in guards:
            raise ExportError(f"{OPTION} names {key!r} twice", option="not_worse_on")
        guards[guard.pk] = key
    return guards


def _generators(campaign: Campaign, spec: w.FormatSpec, options: ExportOptions) -> dict[int, str]:
    """--generators: each name one of the campaign's generators, given once, at least two of them."""
    if not options.generators:
        return {}
    if spec.source != "pairs":
        raise _not_pairs(spec, "generators")
    known = dict(campaign.generators.values_list("name", "pk"))
    names = ", ".join(sorted(known)) or "none"
    chosen: dict[int, str] = {}
    for name in options.generators:
        if name not in known:
            raise ExportError(
                f"{OPTION}: unknown generator {name!r} (this campaign's generators: {names})", option="generators"
            )
        if known[name] in chosen:
            raise ExportError(f"{OPTION} names {name!r} twice", option="generators")
        chosen[known[name]] = name
    if len(chosen) < 2:
        raise ExportError(
            f"{OPTION} names one generator, and a pair has sides from two: name at least two of {names}",
            option="generators",
        )
    return chosen
