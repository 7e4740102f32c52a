"""Export orchestration: stream votes into pair rows, filter them, write one format atomically, with a manifest."""

from __future__ import annotations

import logging
import secrets
import shutil
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.utils import timezone

from annotation.measuring import metrics_config_problem, readable_attribute_specs
from annotation.models import Campaign, Criterion
from arena.selectors import get_generator_ratings, get_leaderboard
from core.errors import NotFound
from exports import cards, selectors
from exports import writers as w
from exports.errors import OPTION, ExportError
from exports.images import ImageSource, image_storage
from exports.participants import consent_lookup, write_participants
from exports.publish import campaign_exports_folder, check_target, publish, write_manifest
from exports.rows import (
    DROP_MISSING_IMAGE,
    OUTCOMES,
    TIES_DROP,
    TIES_SOFT,
    TRAIN,
    VALIDATION,
    JudgedPair,
    PairFilter,
    PairRow,
    ParticipantHasher,
    PopulationInfo,
    drop_worse_on,
    group_pairs,
    split_for,
    winner_lost_on,
)
from exports.writers.genai_bench_parquet import GENAI_BENCH_CONFIG, GENAI_BENCH_SCHEMA, GenaiBenchParquetWriter
from exports.writers.kto_csv import KtoCsvWriter, KtoImage, KtoLabels, kto_rows
from exports.writers.parquet import ParquetDatasetWriter, hf_features
from exports.writers.pickapic_parquet import PICKAPIC_SCHEMA, PickapicParquetWriter
from exports.writers.popalign_csv import PopalignCsvWriter
from exports.writers.population_jsonl import PopulationJsonlWriter
from exports.writers.votes_csv import VotesCsvWriter, write_leaderboard
from metrics.config import AttributeSpec

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CARD = "README.md"
# Judged pairs resolved (populations and images fetched) per round trip.
PAIR_BATCH = 500
# The pairs whose images are fetched in one go.
IMAGE_ROWS = 16


class Progress(Protocol):
    def update(self, n: float | None = 1) -> bool | None: ...

    def close(self) -> None: ...


# (total or None, unit) -> a progress bar; the command passes tqdm.
ProgressFactory = Callable[[int | None, str], Progress]


class _NoProgress:
    def update(self, n: float | None = 1) -> bool | None:
        return None

    def close(self) -> None:
        return None


def _no_progress(total: int | None, unit: str) -> Progress:
    return _NoProgress()


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


@dataclass
class ExportResult:
    path: Path
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


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


# --- options ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    spec: w.FormatSpec
    criteria: list[Criterion]
    pair_filter: PairFilter | None
    splits: tuple[str, ...]
    # --not-worse-on: criterion id -> key.
    not_worse_on: dict[int, str] = field(default_factory=dict)


def _resolve(campaign: Campaign, options: ExportOptions) -> _Plan:
    spec = w.FORMATS.get(options.format)
    if spec is None:
        raise ExportError(f"unknown format {options.format!r} (use one of: {', '.join(w.FORMATS)})")
    asked = list(campaign.criteria.order_by("position", "pk"))
    keys = ", ".join(c.key for c in asked) or "none"
    if options.criterion:
        chosen = [c for c in asked if c.key == options.criterion]
        if not chosen:
            raise NotFound(f"unknown criterion {options.criterion!r} (this campaign asks: {keys})")
    elif spec.single_criterion and len(asked) > 1:
        raise ExportError(
            f"{spec.name} holds one criterion: pass {OPTION} (this campaign asks: {keys})", option="criterion"
        )
    elif spec.single_criterion and not asked:
        raise ExportError(f"campaign {campaign.slug!r} has no criteria, so there is nothing to export as {spec.name}")
    else:
        chosen = asked
    pair_filter = None
    if spec.source == "pairs":
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
        pair_filter = PairFilter(ties=ties, min_votes=min_votes, min_margin=min_margin)
    else:
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
            raise ExportError(
                f"{OPTION} does not apply to {spec.name}, which is not made of judged pairs", option=given
            )
    not_worse_on: dict[int, str] = {}
    for key in options.not_worse_on:
        guard = next((c for c in asked if c.key == key), None)
        if guard is None:
            raise ExportError(
                f"{OPTION}: unknown criterion {key!r} (this campaign asks: {keys})", option="not_worse_on"
            )
        if spec.source != "pairs":
            raise ExportError(
                f"{OPTION} does not apply to {spec.name}, which is not made of judged pairs", option="not_worse_on"
            )
        if [c.key for c in chosen] == [key]:
            raise ExportError(
                f"{OPTION} {key} names the exported criterion itself: name another criterion of {keys}",
                option="not_worse_on",
            )
        if guard.pk in not_worse_on:
            raise ExportError(f"{OPTION} names {key!r} twice", option="not_worse_on")
        not_worse_on[guard.pk] = key
    if not 0.0 <= options.validation_fraction < 1.0:
        raise ExportError(f"{OPTION} must be at least 0 and below 1", option="validation_fraction")
    if options.validation_fraction and not spec.splits:
        raise ExportError(f"{spec.name} has no train/validation split")
    if options.include_simulated and spec.name == w.LEADERBOARD_CSV:
        raise ExportError(
            f"{spec.name} is the leaderboard, which ranks people's votes only: {OPTION} does not apply",
            option="include_simulated",
        )
    if not options.copy_images and spec.name != w.POPULATION_JSONL:
        raise ExportError(f"{spec.name} needs its images; only {w.POPULATION_JSONL} can leave them out")
    splits = (TRAIN, VALIDATION) if options.validation_fraction else (TRAIN,)
    return _Plan(spec, chosen, pair_filter, splits, not_worse_on)


def _filters(plan: _Plan, options: ExportOptions) -> dict[str, Any]:
    filters: dict[str, Any] = {
        "criteria": [c.key for c in plan.criteria],
        "include_simulated": options.include_simulated,
    }
    if plan.pair_filter is not None:
        filters.update(
            ties=plan.pair_filter.ties,
            min_votes=plan.pair_filter.min_votes,
            min_margin=plan.pair_filter.min_margin,
            include_flagged_participants=options.include_flagged,
            gold_comparisons="excluded",
            skip_missing=options.skip_missing,
        )
        if plan.not_worse_on:
            filters["not_worse_on"] = list(plan.not_worse_on.values())
        if plan.spec.splits:
            filters["validation_fraction"] = options.validation_fraction
        if plan.spec.name == w.POPULATION_JSONL:
            filters["images_copied"] = options.copy_images
    return filters


# --- pair rows --------------------------------------------------------------------------------------------


@dataclass
class _Tally:
    votes_read: int = 0
    pairs_judged: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)


def _resolve_batch(
    groups: list[list[JudgedPair]],
    criteria: dict[int, str],
    ratings: dict[str, dict[str, float]],
    validation_fraction: float,
    attributes: Sequence[AttributeSpec] = (),
) -> Iterator[list[PairRow]]:
    population_ids = {pid for group in groups for p in group for pid in (p.left_population_id, p.right_population_id)}
    populations = selectors.get_populations(population_ids=population_ids, attributes=attributes)
    prompts = selectors.get_prompts(prompt_ids={group[0].prompt_id for group in groups})
    for group in groups:
        prompt = prompts[group[0].prompt_id]
        split = split_for(prompt.caption, validation_fraction)
        rows = []
        for pair in group:
            left: PopulationInfo = populations[pair.left_population_id]
            right: PopulationInfo = populations[pair.right_population_id]
            criterion = criteria[pair.criterion_id]
            board = ratings.get(criterion, {})
            rows.append(
                PairRow(
                    criterion=criterion,
                    prompt=prompt,
                    pair=pair,
                    left=left,
                    right=right,
                    left_rating=board.get(left.generator),
                    right_rating=board.get(right.generator),
                    split=split,
                )
            )
        yield rows


def _guarded(
    pairs: Iterator[JudgedPair], guards: Mapping[int, str]
) -> Iterator[tuple[JudgedPair, dict[int, JudgedPair]]]:
    """Each pair with the same two populations' pairs on the `guards` criteria (by criterion id).

    The stream comes ordered by prompt, population pair and criterion, so every criterion of one population
    pair is adjacent: one population pair is held at a time.
    """
    if not guards:
        for pair in pairs:
            yield pair, {}
        return
    block: list[JudgedPair] = []
    for pair in pairs:
        if block and (pair.prompt_id, pair.low_high) != (block[0].prompt_id, block[0].low_high):
            yield from _with_guards(block, guards)
            block = []
        block.append(pair)
    yield from _with_guards(block, guards)


def _with_guards(
    block: list[JudgedPair], guards: Mapping[int, str]
) -> Iterator[tuple[JudgedPair, dict[int, JudgedPair]]]:
    found = {pair.criterion_id: pair for pair in block if pair.criterion_id in guards}
    for pair in block:
        yield pair, found


def iter_pair_rows(
    *,
    campaign: Campaign,
    criteria: list[Criterion],
    pair_filter: PairFilter,
    ratings: dict[str, dict[str, float]],
    validation_fraction: float = 0.0,
    include_flagged: bool = False,
    include_simulated: bool = False,
    not_worse_on: Mapping[int, str] | None = None,
    tally: _Tally | None = None,
    progress: Progress | None = None,
) -> Iterator[list[PairRow]]:
    """Kept pair rows, one list per prompt, streamed: populations and images are fetched a batch of pairs at a time.

    A prompt's rows are never split across lists, so a writer can count them (Pick-a-Pic's
    `num_example_per_prompt`); memory is bounded by the largest prompt, not the campaign.
    `not_worse_on` (criterion id -> key): a decided pair whose winner lost on one of these criteria (the same
    two populations' votes there, filtered and folded as the exported ones) is dropped as `worse_on_KEY`.
    """
    tally = tally if tally is not None else _Tally()
    progress = progress or _NoProgress()
    keys = {c.pk: c.key for c in criteria}
    guards = dict(not_worse_on or {})
    attributes = readable_attribute_specs(campaign)
    votes = selectors.iter_pair_votes(
        campaign=campaign,
        criterion_ids=[*keys, *(pk for pk in guards if pk not in keys)],
        include_flagged=include_flagged,
        include_simulated=include_simulated,
    )
    batch: list[list[JudgedPair]] = []
    batch_pairs = 0
    group: list[JudgedPair] = []
    prompt_id: int | None = None
    for pair, pair_guards in _guarded(group_pairs(votes), guards):
        if pair.criterion_id not in keys:
            continue  # read only to guard the exported criteria's pairs
        tally.votes_read += pair.total
        tally.pairs_judged += 1
        progress.update(pair.total)
        if pair.prompt_id != prompt_id:
            if group:
                batch.append(group)
                batch_pairs += len(group)
                group = []
            if batch_pairs >= PAIR_BATCH:
                yield from _resolve_batch(batch, keys, ratings, validation_fraction, attributes)
                batch, batch_pairs = [], 0
            prompt_id = pair.prompt_id
        reason = pair_filter.drop_reason(pair)
        if reason is None and pair.decided:
            reason = next(
                (
                    drop_worse_on(key)
                    for pk, key in guards.items()
                    if pk != pair.criterion_id and pk in pair_guards and winner_lost_on(pair, pair_guards[pk])
                ),
                None,
            )
        if reason is not None:
            tally.dropped[reason] += 1
            continue
        group.append(pair)
    if group:
        batch.append(group)
    if batch:
        yield from _resolve_batch(batch, keys, ratings, validation_fraction, attributes)


# --- writing ----------------------------------------------------------------------------------------------


def _chunks(rows: list[PairRow], size: int) -> Iterator[list[PairRow]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


@dataclass
class _PairOutcome:
    counts: dict[str, Any]
    missing: dict[str, str]
    parquet: ParquetDatasetWriter | None = None


def _pair_export(
    folder: Path,
    campaign: Campaign,
    plan: _Plan,
    options: ExportOptions,
    ratings: dict[str, dict[str, float]],
    hasher: ParticipantHasher,
    progress: ProgressFactory,
) -> _PairOutcome:
    assert plan.pair_filter is not None
    spec = plan.spec
    source = ImageSource(image_storage(), folder, skip_missing=options.skip_missing)
    writer: w.PairWriter | None = None
    kto_labels: KtoLabels | None = None
    parquet: ParquetDatasetWriter | None = None
    if spec.name == w.POPULATION_JSONL:
        writer = PopulationJsonlWriter(folder)
    elif spec.name == w.POPALIGN_CSV:
        writer = PopalignCsvWriter(folder, plan.splits)
    elif spec.name == w.PICKAPIC_PARQUET:
        writer = parquet = PickapicParquetWriter(folder, source.read, hasher, plan.splits)
    elif spec.name == w.GENAI_BENCH_PARQUET:
        writer = parquet = GenaiBenchParquetWriter(folder, source.read)
    elif spec.name == w.KTO_CSV:
        # Labels are per image over all kept pairs, so KTO rows are written in a second pass.
        kto_labels = KtoLabels(selectors.max_population_id(campaign=campaign))
    votes = selectors.count_votes(campaign=campaign, criterion_ids=[c.pk for c in plan.criteria])
    tally = _Tally()
    copy = spec.copies_images and options.copy_images
    expected = votes["counted"] + (votes["flagged_participants"] if options.include_flagged else 0)
    bar = progress(expected + (votes["simulated"] if options.include_simulated else 0), "vote")
    try:
        for group in iter_pair_rows(
            campaign=campaign,
            criteria=plan.criteria,
            pair_filter=plan.pair_filter,
            ratings=ratings,
            validation_fraction=options.validation_fraction,
            include_flagged=options.include_flagged,
            include_simulated=options.include_simulated,
            not_worse_on=plan.not_worse_on,
            tally=tally,
            progress=bar,
        ):
            kept = []
            for rows in _chunks(group, IMAGE_ROWS):
                images = [list(row.images()) for row in rows]
                if copy:
                    usable = source.copy(images)
                elif spec.embeds_images:
                    usable = source.check(images)
                else:
                    usable = [True] * len(rows)
                for row, ok in zip(rows, usable, strict=True):
                    if not ok:
                        tally.dropped[DROP_MISSING_IMAGE] += 1
                        continue
                    kept.append(row)
                    tally.outcomes[row.outcome] += 1
                    if kto_labels is not None:
                        kto_labels.note(row)
            if kept and writer is not None:
                writer.write_group(kept)
    finally:
        bar.close()
        source.close()
    counts: dict[str, Any] = {
        # Disjoint: on_exported_criteria = counted + flagged participants' + unreconciled + simulated + gold + repeats,
        # and `read` is the counted votes (plus the flagged participants' and the simulated ones where
        # the filters include them).
        "votes": {
            "on_exported_criteria": votes["all"],
            "counted": votes["counted"],
            "flagged_participants_" + ("included" if options.include_flagged else "excluded"): (
                votes["flagged_participants"]
            ),
            "simulated_" + ("included" if options.include_simulated else "excluded"): votes["simulated"],
            # Where the campaign counts only participants the crowd platform approved or holds for review.
            "unreconciled_excluded": votes["unreconciled"],
            # Every vote of participants who withdrew from the campaign.
            "withdrawn_excluded": votes["withdrawn"],
            "gold_excluded": votes["gold"],
            "repeats_excluded": votes["repeats"],
            "read": tally.votes_read,
        },
        "pairs": {
            "judged": tally.pairs_judged,
            "kept": sum(tally.outcomes.values()),
            "dropped": {
                k: tally.dropped.get(k, 0)
                for k in (
                    "min_votes",
                    "tie",
                    "min_margin",
                    *(drop_worse_on(key) for key in plan.not_worse_on.values()),
                    DROP_MISSING_IMAGE,
                )
            },
            "outcomes": {k: tally.outcomes.get(k, 0) for k in OUTCOMES},
        },
    }
    if kto_labels is not None:
        counts["rows"], counts["kto_labels"] = _write_kto(folder, campaign, plan, options, kto_labels, progress)
    else:
        assert writer is not None
        counts["rows"] = writer.close()
    counts["images_copied"] = source.copied
    return _PairOutcome(counts=counts, missing=dict(source.missing), parquet=parquet)


def _write_kto(
    folder: Path,
    campaign: Campaign,
    plan: _Plan,
    options: ExportOptions,
    labels: KtoLabels,
    progress: ProgressFactory,
) -> tuple[dict[str, int], dict[str, int]]:
    """Second pass for Diffusion-KTO: every distinct image of a labelled population, in content-hash order."""
    writer = KtoCsvWriter(folder, plan.splits)
    bar = progress(None, "image")
    try:
        images = (
            KtoImage(image, population_id, caption, split_for(caption, options.validation_fraction))
            for image, population_id, caption in selectors.iter_shown_images(campaign=campaign)
        )
        for item, label in kto_rows(images, labels):
            writer.write(item.image, item.caption, item.split, label)
            bar.update(1)
    finally:
        bar.close()
    return writer.close(), dict(writer.labels)


def _hasher() -> ParticipantHasher:
    return ParticipantHasher(str(settings.PARTICIPANT_HASH_KEY).encode())


def _ratings(campaign: Campaign, criteria: list[Criterion]) -> dict[str, dict[str, float]]:
    return {c.key: get_generator_ratings(campaign=campaign, criterion=c.key) for c in criteria}


def _hf_header(spec: w.FormatSpec, folder: Path, writer: ParquetDatasetWriter, title: str) -> str:
    images: tuple[str, ...] = ()
    if spec.name == w.PICKAPIC_PARQUET:
        config, data_dir, schema = "default", PickapicParquetWriter.DATA_DIR, PICKAPIC_SCHEMA
    else:
        config, data_dir, schema = GENAI_BENCH_CONFIG, GENAI_BENCH_CONFIG, GENAI_BENCH_SCHEMA
        images = ("left_image", "right_image")
    download = sum(p.stat().st_size for p in (folder / data_dir).glob("*.parquet"))
    return cards.hf_yaml(
        config_name=config,
        data_dir=data_dir,
        features=hf_features(schema, images),
        splits=writer.split_sizes(),
        download_size=download,
        pretty_name=title,
    )


def export_preferences(
    *,
    campaign: Campaign,
    options: ExportOptions,
    out: Path,
    overwrite: bool = False,
    progress: ProgressFactory | None = None,
) -> ExportResult:
    """Write one export format of the campaign's votes into `out`, all or nothing.

    Everything is written into a hidden staging folder beside `out` and renamed into place at
    the end, so a failed or interrupted export leaves `out` as it was. Reads stream in chunks
    and write as they go; no transaction is held (SQLite's IMMEDIATE mode would block voting),
    so votes cast meanwhile may or may not be included.
    """
    plan = _resolve(campaign, options)
    out = Path(out).absolute()
    check_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.{secrets.token_hex(4)}.partial"
    staging.mkdir()
    started = time.perf_counter()
    progress = progress or _no_progress
    try:
        result = _write(staging, campaign, plan, options, progress)
        result.manifest["seconds"] = round(time.perf_counter() - started, 3)
        result.manifest["file_totals"] = write_manifest(staging, result.manifest)
        publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.path = out
    logger.info("exported %s of %s to %s in %.1fs", options.format, campaign.slug, out, result.manifest["seconds"])
    return result


def _write(
    folder: Path, campaign: Campaign, plan: _Plan, options: ExportOptions, progress: ProgressFactory
) -> ExportResult:
    spec = plan.spec
    hasher = _hasher()
    warnings: list[str] = []
    # A configuration that no longer reads (a CLIP folder moved) leaves the measures out, not the export.
    if problem := metrics_config_problem(campaign):
        warnings.append(f"{problem}; this export carries no population measures")
    ratings: dict[str, dict[str, float]] = {}
    missing: dict[str, str] = {}
    parquet: ParquetDatasetWriter | None = None
    if spec.source == "pairs":
        ratings = _ratings(campaign, plan.criteria)
        outcome = _pair_export(folder, campaign, plan, options, ratings, hasher, progress)
        counts, missing, parquet = outcome.counts, outcome.missing, outcome.parquet
        if not counts["votes"]["read"]:
            warnings.append(_no_votes(campaign, plan))
        elif not counts["pairs"]["kept"]:
            dropped = ", ".join(f"{n} {why}" for why, n in counts["pairs"]["dropped"].items() if n)
            warnings.append(f"no judged pair passed the filters ({dropped}): the dataset is empty")
        if parquet is not None:
            for split in parquet.removed_splits:
                warnings.append(
                    f"the {split} split has no rows (no kept pair's caption fell into it), so it is left out: "
                    "datasets cannot load an empty split"
                )
            if not sum(counts["rows"].values()):
                warnings.append(
                    "datasets.load_dataset refuses a dataset with no rows; read it with pyarrow or streaming=True"
                )
        if missing:
            shown = "; ".join(f"{name} ({why})" for name, why in list(missing.items())[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            warnings.append(
                f"{len(missing)} image file(s) could not be used, so the "
                f"{counts['pairs']['dropped'][DROP_MISSING_IMAGE]} pair(s) that show them were left out: {shown}{more}"
            )
    elif spec.source == "votes":
        counts = _votes_export(folder, campaign, plan, options, hasher, progress)
        if not counts["rows"][TRAIN]:
            warnings.append(_no_votes(campaign, plan))
    else:
        counts, ratings = _leaderboard_export(folder, campaign, plan)
        if not counts["votes"]:
            warnings.append(_no_votes(campaign, plan))
    participants = write_participants(folder, campaign, hasher)
    exported_at = timezone.now().isoformat()
    filters = _filters(plan, options)
    version = exporter_version()
    manifest: dict[str, Any] = {
        "format": spec.name,
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
        "counts": counts,
        "participants": participants,
        "ratings": ratings,
        "warnings": warnings,
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
    if missing:
        manifest["missing_images"] = [{"name": n, "problem": why} for n, why in missing.items()]
    facts = cards.CardFacts(
        format=spec.name,
        title=campaign.title or campaign.slug,
        slug=campaign.slug,
        instructions=campaign.instructions,
        criteria=[(c.key, c.question) for c in plan.criteria],
        population_size=campaign.population_size,
        generators=list(campaign.generators.order_by("name").values_list("name", "is_offline_standin")),
        sampling_policy=campaign.sampling_policy,
        access=campaign.access,
        filters=filters,
        counts=counts,
        exported_at=exported_at,
        version=version,
        warnings=warnings,
        participants=participants,
    )
    header = _hf_header(spec, folder, parquet, facts.title) if parquet is not None else ""
    (folder / CARD).write_text(cards.render_card(facts, header), encoding="utf-8")
    return ExportResult(path=folder, manifest=manifest, warnings=warnings)


def _no_votes(campaign: Campaign, plan: _Plan) -> str:
    on = ", ".join(c.key for c in plan.criteria) or "any criterion"
    return f"campaign {campaign.slug!r} has no votes yet on {on}: the dataset is empty"


def _votes_export(
    folder: Path,
    campaign: Campaign,
    plan: _Plan,
    options: ExportOptions,
    hasher: ParticipantHasher,
    progress: ProgressFactory,
) -> dict[str, Any]:
    ids = [c.pk for c in plan.criteria]
    counts = selectors.count_votes(campaign=campaign, criterion_ids=ids)
    attributes = readable_attribute_specs(campaign)
    writer = VotesCsvWriter(folder, hasher, selectors.measure_columns(attributes), consent=consent_lookup(campaign))
    bar = progress(counts["all"] - (0 if options.include_simulated else counts["simulated"]), "vote")
    try:
        votes = selectors.iter_vote_log(
            campaign=campaign, criterion_ids=ids, include_simulated=options.include_simulated
        )
        while True:
            chunk = [v for _, v in zip(range(selectors.CHUNK_SIZE), votes, strict=False)]
            if not chunk:
                break
            measures = selectors.get_measure_values(chunk, attributes) if attributes else None
            bar.update(writer.write_many(chunk, measures))
    finally:
        bar.close()
    rows = writer.close()
    # The raw log keeps every vote of people, each marked, and a simulated crowd's (participant_kind
    # `simulated`) only when asked for, never those of participants who withdrew; these add up to
    # on_exported_criteria.
    kinds = ("counted", "flagged_participants", "unreconciled", "gold", "repeats", "withdrawn")
    simulated = "simulated_" + ("included" if options.include_simulated else "excluded")
    return {
        "votes": {
            "on_exported_criteria": counts["all"],
            **{k: counts[k] for k in kinds},
            simulated: counts["simulated"],
        },
        "rows": rows,
    }


def _leaderboard_export(
    folder: Path, campaign: Campaign, plan: _Plan
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    boards = [(c.key, get_leaderboard(campaign=campaign, criterion=c.key)) for c in plan.criteria]
    rows = write_leaderboard(folder, [(key, board["rows"]) for key, board in boards])
    ratings = {key: {r["generator"]: r["rating"] for r in board["rows"]} for key, board in boards}
    votes = sum(int(board["votes"]) for _, board in boards)
    return {"votes": votes, "rows": rows}, ratings


# --- exports kept on the server ---------------------------------------------------------------------------


def export_to_server(*, campaign: Campaign, options: ExportOptions) -> ExportResult:
    """Export into a new, unguessably named folder of the campaign's own (publish.campaign_exports_folder)."""
    stamp = timezone.now().strftime("%Y%m%dt%H%M%S")
    name = f"{options.format}-{stamp}-{secrets.token_hex(6)}"
    return export_preferences(campaign=campaign, options=options, out=campaign_exports_folder(campaign) / name)
