"""Streaming reads for exports: votes in pair order, populations in batches, the vote log, past exports."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import CharField, IntegerField, Q, QuerySet
from django.db.models.functions import Cast, Greatest, Least

from annotation.models import Campaign
from annotation.selectors import get_campaign, get_managed_campaign
from arena.models import Comparison, Vote, VoteQuerySet, flagged_in_campaign, withdrawn_from_campaign
from exports.rows import ImageInfo, PairStreamVote, PopulationInfo, PromptInfo
from exports.writers.votes_csv import VoteLogRecord
from generation.models import Image, Population, Prompt
from metrics.config import AttributeSpec
from metrics.selectors import measures_by_population

# Rows fetched per round trip: large enough to amortise it, small enough to keep memory flat.
CHUNK_SIZE = 2000
MANIFEST = "manifest.json"


def get_export_campaign(*, slug: str, user: AbstractBaseUser | AnonymousUser | None = None) -> Campaign:
    """The campaign at `slug` with its criteria; NotFound names the slug.

    With a `user`, only a campaign they manage (a researcher's own): any other is NotFound too.
    """
    return get_campaign(slug=slug) if user is None else get_managed_campaign(slug=slug, user=user)


def _votes(campaign: Campaign, criterion_ids: Iterable[int]) -> VoteQuerySet:
    return Vote.objects.filter(comparison__campaign=campaign, criterion_id__in=list(criterion_ids))


def _pair_votes(
    campaign: Campaign, criterion_ids: Iterable[int], include_flagged: bool, include_simulated: bool
) -> QuerySet[Vote]:
    votes = _votes(campaign, criterion_ids)
    return votes.counted(include_flagged=include_flagged, include_simulated=include_simulated)


def count_votes(*, campaign: Campaign, criterion_ids: Iterable[int]) -> dict[str, int]:
    """All votes on the criteria, split into disjoint kinds that add up to `all`.

    `simulated` (every vote of a simulated participant: arena/simulation.py), then people's votes:
    `gold` (on gold comparisons), `repeats` (side-swapped repeats), `flagged_participants` (the rest,
    cast by participants flagged in this campaign), `withdrawn` (every vote of people who withdrew from the
    campaign: they leave every export), `unreconciled` (the rest, where the campaign counts only
    participants the crowd platform approved or holds for review: everyone else's) and `counted`
    (everything else: what a leaderboard ranks).
    Simulated participants are issued neither gold checks nor repeats, so `simulated` are all
    preference votes, and a pair export that includes them reads every one.
    """
    votes = _votes(campaign, criterion_ids)
    withdrawn = votes.by_people().filter(withdrawn_from_campaign())
    people = votes.by_people().exclude(withdrawn_from_campaign())
    counts = {
        "all": votes.count(),
        "simulated": votes.simulated().count(),
        "withdrawn": withdrawn.count(),
        "gold": people.filter(comparison__is_gold=True).count(),
        "repeats": people.filter(comparison__is_gold=False, comparison__repeat_of__isnull=False).count(),
        "preferences": people.preferences().count(),
        "counted": votes.counted().count(),
        "with_flagged": votes.counted(include_flagged=True).count(),
    }
    counts["flagged_participants"] = counts["with_flagged"] - counts["counted"]
    counts["unreconciled"] = counts.pop("preferences") - counts.pop("with_flagged")
    return counts


def iter_pair_votes(
    *,
    campaign: Campaign,
    criterion_ids: Iterable[int],
    include_flagged: bool = False,
    include_simulated: bool = False,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[PairStreamVote]:
    """Votes ordered by prompt, unordered population pair, criterion and vote id: the order `group_pairs` folds.

    All criteria of a pair come together, so a batch of pairs fetches each population once.
    """
    rows = (
        _pair_votes(campaign, criterion_ids, include_flagged, include_simulated)
        .annotate(
            low=Least("comparison__left_population_id", "comparison__right_population_id"),
            high=Greatest("comparison__left_population_id", "comparison__right_population_id"),
            # As text: converting every vote's time to a datetime costs more than the rest of the fold.
            voted=Cast("created_at", output_field=CharField()),
        )
        .order_by("comparison__prompt_id", "low", "high", "criterion_id", "id")
        .values_list(
            "id",
            "criterion_id",
            "comparison__prompt_id",
            "comparison_id",
            "comparison__left_population_id",
            "comparison__right_population_id",
            "choice",
            "voted",
            "comparison__participant_id",
        )
    )
    make = PairStreamVote._make
    for row in rows.iterator(chunk_size=chunk_size):
        yield make(row)


def get_prompts(*, prompt_ids: Iterable[int]) -> dict[int, PromptInfo]:
    rows = Prompt.objects.filter(pk__in=list(prompt_ids)).values_list("pk", "caption", "category")
    return {pk: PromptInfo(pk, caption, category) for pk, caption, category in rows}


def get_populations(
    *, population_ids: Iterable[int], attributes: Sequence[AttributeSpec] = ()
) -> dict[int, PopulationInfo]:
    """Populations with their generator's name and their images in generation order: two queries per batch.

    With `attributes` (the campaign's metric specs) each carries its stored measures, two queries more.
    """
    ids = list(population_ids)
    images: dict[int, list[ImageInfo]] = {pk: [] for pk in ids}
    rows = (
        Image.objects.filter(population_id__in=ids)
        .order_by("population_id", "index")
        .values_list("population_id", "pk", "index", "file", "sha256", "seed", "generation_prompt", "width", "height")
    )
    make = ImageInfo.of
    for population_id, *fields in rows:
        images[population_id].append(make(*fields))
    populations = Population.objects.filter(pk__in=ids).values_list("pk", "generator__name", "size")
    measured = measures_by_population(ids, attributes=attributes) if attributes else {}
    return {
        pk: PopulationInfo(pk, generator, size, tuple(images[pk]), measured.get(pk))
        for pk, generator, size in populations
    }


def iter_vote_log(
    *, campaign: Campaign, criterion_ids: Iterable[int], include_simulated: bool = False, chunk_size: int = CHUNK_SIZE
) -> Iterator[VoteLogRecord]:
    """Every vote on the criteria in the order cast, with its comparison as displayed; people's only unless asked."""
    votes = _votes(campaign, criterion_ids)
    rows = (
        (votes if include_simulated else votes.by_people())
        .exclude(withdrawn_from_campaign())
        .order_by("id")
        # Time as text and flags as numbers: nothing is left for Django to convert per row, which is most of
        # the read's cost (figures: BENCHMARKS.md, "Exports").
        .annotate(
            voted=Cast("created_at", output_field=CharField()),
            # Flagged in this campaign: a flag is a fact about a participant's work in one study.
            flagged=Cast(flagged_in_campaign(), output_field=IntegerField()),
            gold=Cast("comparison__is_gold", output_field=IntegerField()),
        )
        .values_list(
            "id",
            "voted",
            "criterion__key",
            "comparison_id",
            "comparison__participant_id",
            "comparison__participant__kind",
            "flagged",
            "comparison__prompt_id",
            "comparison__prompt__caption",
            "comparison__prompt__category",
            "comparison__left_population_id",
            "comparison__right_population_id",
            "comparison__left_population__generator__name",
            "comparison__right_population__generator__name",
            "choice",
            "dwell_ms",
            "gold",
            "comparison__repeat_of_id",
        )
    )
    make = VoteLogRecord._make
    for row in rows.iterator(chunk_size=chunk_size):
        yield make(row)


def _shown_population_ids(campaign: Campaign, column: str = "population_id") -> Q:
    """Rows whose `column` is a population the campaign showed in a comparison that was not a gold check."""
    shown = Comparison.objects.filter(campaign=campaign, is_gold=False)
    return Q(**{f"{column}__in": shown.values("left_population_id")}) | Q(
        **{f"{column}__in": shown.values("right_population_id")}
    )


def shown_population_ids(*, campaign: Campaign, generator_ids: Iterable[int]) -> set[int]:
    """The populations of these generators that the campaign showed in a comparison (gold checks aside)."""
    return set(
        Population.objects.filter(_shown_population_ids(campaign, "pk"), generator_id__in=list(generator_ids))
        .values_list("pk", flat=True)
        .iterator(chunk_size=CHUNK_SIZE)
    )


def iter_shown_images(*, campaign: Campaign, chunk_size: int = CHUNK_SIZE) -> Iterator[tuple[ImageInfo, int, str]]:
    """(image, population id, caption) of every population shown in the campaign, ordered by content hash."""
    rows = (
        Image.objects.filter(_shown_population_ids(campaign))
        .order_by("sha256", "population_id", "index")
        .values_list(
            "pk",
            "index",
            "file",
            "sha256",
            "seed",
            "generation_prompt",
            "width",
            "height",
            "population_id",
            "population__prompt__caption",
        )
    )
    for *fields, population_id, caption in rows.iterator(chunk_size=chunk_size):
        yield ImageInfo.of(*fields), population_id, caption


def list_exports(*, folder: Path) -> list[dict[str, Any]]:
    """Finished exports in a campaign's folder, newest first: name, format, time and counts from each manifest."""
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        manifest = entry / MANIFEST
        # Folders being written start with a dot and have no manifest until they are complete.
        if entry.name.startswith(".") or not manifest.is_file():
            continue
        try:
            with open(manifest, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            continue
        found.append(
            {
                "name": entry.name,
                "format": data.get("format"),
                "created_at": data.get("created_at"),
                "filters": data.get("filters"),
                "counts": data.get("counts"),
            }
        )
    return sorted(found, key=lambda e: (str(e["created_at"] or ""), e["name"]), reverse=True)


# --- population metrics as flat columns (votes-csv) ---------------------------------------------------------

SET_MEASURE_COLUMNS = ("vendi", "faithfulness", "clip_score")


def measure_columns(attributes: Sequence[AttributeSpec]) -> list[str]:
    """The flat measure columns of a campaign: each attribute's discrepancy and entropy, then the set measures."""
    return [f"{a.name}_{m}" for a in attributes for m in ("discrepancy", "entropy")] + list(SET_MEASURE_COLUMNS)


def get_measure_values(
    votes: Sequence[VoteLogRecord], attributes: Sequence[AttributeSpec]
) -> dict[int, dict[str, float | None]]:
    """Population id -> {measure column: value} for both sides of every vote in a chunk."""
    ids = {pid for v in votes for pid in (v.left_population_id, v.right_population_id)}
    out: dict[int, dict[str, float | None]] = {}
    for pid, measured in measures_by_population(ids, attributes=attributes).items():
        values: dict[str, float | None] = {name: measured[name] for name in SET_MEASURE_COLUMNS}
        for name, row in measured["attributes"].items():
            values[f"{name}_discrepancy"] = row["discrepancy"]
            values[f"{name}_entropy"] = row["entropy"]
        out[pid] = values
    return out
