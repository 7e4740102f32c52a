"""An export's manifest and dataset card: what it holds, counted in one shape for every format, and how it was made."""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from annotation.measuring import readable_attribute_specs
from annotation.models import Campaign
from exports import cards
from exports.options import ExportOptions, ExportPlan
from exports.pair_reading import PairTally
from exports.rows import (
    DROP_GENERATORS,
    DROP_MIN_MARGIN,
    DROP_MIN_VOTES,
    DROP_MISSING_IMAGE,
    DROP_TIE,
    OUTCOMES,
    drop_worse_on,
)
from exports.writers.contract import HfLayout

FORMAT_VERSION = 1
CARD = "README.md"

# The kinds of votes on the exported criteria beside `counted` (exports.selectors.count_votes): disjoint, so
# with `counted` they add up to `on_exported_criteria`.
VOTE_KINDS = ("flagged_participants", "simulated", "unreconciled", "withdrawn", "gold", "repeats")


def vote_counts(kinds: Mapping[str, int], *, held: Collection[str], read: int | None = None) -> dict[str, int]:
    """`counts.votes`, one shape for every format.

    `on_exported_criteria` (every vote on the exported criteria) = `counted` (what a leaderboard ranks, in
    every format) + each other kind, named `KIND_included` where the export's files hold those votes (`held`)
    and `KIND_excluded` where they are left out. `read` (formats made of judged pairs) is the votes folded
    into pairs: the counted ones and the included kinds.
    """
    votes = {"on_exported_criteria": kinds["all"], "counted": kinds["counted"]}
    for kind in VOTE_KINDS:
        votes[f"{kind}_{'included' if kind in held else 'excluded'}"] = kinds[kind]
    if read is not None:
        votes["read"] = read
    return votes


def drop_reasons(plan: ExportPlan) -> list[str]:
    """Why a judged pair may be left out, in the order the reasons apply (exports.rows.drop_reason)."""
    return [
        *([DROP_GENERATORS] if plan.generators else []),
        DROP_MIN_VOTES,
        DROP_TIE,
        DROP_MIN_MARGIN,
        *(drop_worse_on(key) for key in plan.not_worse_on.values()),
        DROP_MISSING_IMAGE,
    ]


def pair_counts(tally: PairTally, plan: ExportPlan) -> dict[str, Any]:
    """`counts.pairs`: judged = kept + every dropped reason; the kept pairs' outcomes."""
    return {
        "judged": tally.pairs_judged,
        "kept": sum(tally.outcomes.values()),
        "dropped": {reason: tally.dropped.get(reason, 0) for reason in drop_reasons(plan)},
        "outcomes": {k: tally.outcomes.get(k, 0) for k in OUTCOMES},
    }


def export_counts(
    *,
    votes: dict[str, int],
    rows: dict[str, int],
    pairs: dict[str, Any] | None = None,
    format_counts: Mapping[str, Any] | None = None,
    images_copied: int | None = None,
) -> dict[str, Any]:
    """The manifest's `counts`: `votes` and `rows` (per split) always; `pairs` where the format is made of judged
    pairs; what the format adds (kto-csv's `kto_labels`); `images_copied` where the format copies images."""
    counts: dict[str, Any] = {"votes": votes}
    if pairs is not None:
        counts["pairs"] = pairs
    counts["rows"] = rows
    counts.update(format_counts or {})
    if images_copied is not None:
        counts["images_copied"] = images_copied
    return counts


@dataclass
class Written:
    """What writing an export's files gave: its counts, ratings and warnings, for the manifest and the card."""

    counts: dict[str, Any]
    ratings: dict[str, dict[str, float]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # Image files that could not be used: storage name -> why.
    missing: dict[str, str] = field(default_factory=dict)
    hf_layout: HfLayout | None = None


def exporter_version() -> str:
    """The project's version: installed package metadata, else pyproject.toml, else "unknown"."""
    try:
        return metadata.version("poparena")
    except metadata.PackageNotFoundError:
        pass
    try:
        with open(Path(settings.BASE_DIR) / "pyproject.toml", "rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def write_card_and_build_manifest(
    folder: Path,
    *,
    campaign: Campaign,
    plan: ExportPlan,
    options: ExportOptions,
    written: Written,
    participants: dict[str, Any],
) -> dict[str, Any]:
    """Write the dataset card (README.md) into `folder`; return the manifest's header (publish adds the files)."""
    exported_at = timezone.now().isoformat()
    filters = plan.filters(options)
    version = exporter_version()
    manifest: dict[str, Any] = {
        "format": plan.spec.name,
        "format_version": FORMAT_VERSION,
        "exporter": {"name": "poparena", "version": version},
        "created_at": exported_at,
        "campaign": {
            "slug": campaign.slug,
            "title": campaign.title,
            "population_size": campaign.population_size,
            "criteria": [{"key": c.key, "question": c.question} for c in plan.criteria],
        },
        "filters": filters,
        "counts": written.counts,
        "participants": participants,
        "ratings": written.ratings,
        "warnings": written.warnings,
        # What produced each side's measures (population-jsonl's "metrics"): backend, model and class list.
        "metrics": [
            {
                "name": a.name,
                "backend": a.backend,
                "model": a.model or None,
                "classes": list(a.classes),
                "target": a.target,
            }
            for a in readable_attribute_specs(campaign)
        ],
    }
    if written.missing:
        manifest["missing_images"] = [{"name": n, "problem": why} for n, why in written.missing.items()]
    facts = cards.CardFacts(
        format=plan.spec.name,
        title=campaign.title or campaign.slug,
        slug=campaign.slug,
        instructions=campaign.instructions,
        criteria=[(c.key, c.question) for c in plan.criteria],
        population_size=campaign.population_size,
        generators=list(campaign.generators.order_by("name").values_list("name", "is_offline_standin")),
        sampling_policy=campaign.sampling_policy,
        access=campaign.access,
        filters=filters,
        counts=written.counts,
        exported_at=exported_at,
        version=version,
        warnings=written.warnings,
        participants=participants,
    )
    layout = written.hf_layout
    header = ""
    if layout is not None:
        header = cards.hf_yaml(
            config_name=layout.config_name,
            data_dir=layout.data_dir,
            features=layout.features,
            splits=layout.splits,
            download_size=layout.download_size,
            pretty_name=facts.title,
        )
    (folder / CARD).write_text(cards.render_card(facts, header), encoding="utf-8")
    return manifest
