"""Export orchestration: one format of a campaign's votes written into a folder, all or nothing, with its manifest.

The parts live by role: `options` checks what was asked, `pair_reading` streams judged pairs, each format's
writer is the hook `writers.FORMATS` names, and `manifests` counts and describes what was written.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from annotation.measuring import metrics_config_problem, readable_attribute_specs
from annotation.models import Campaign, Criterion
from arena.selectors import get_generator_ratings, get_leaderboard
from exports import selectors
from exports.errors import OPTION, ExportError
from exports.images import ImageSource, image_storage
from exports.manifests import (
    Written,
    drop_reasons,
    export_counts,
    exporter_version,
    pair_counts,
    vote_counts,
    write_card_and_build_manifest,
)
from exports.options import ExportOptions, ExportPlan, plan_export
from exports.pair_reading import PairTally, iter_pair_rows
from exports.participants import consent_lookup, write_participants
from exports.publish import campaign_exports_folder, check_target, publish, write_manifest
from exports.rows import (
    DROP_GENERATORS,
    DROP_MISSING_IMAGE,
    TRAIN,
    PairRow,
    ParticipantHasher,
    drop_worse_on,
    split_for,
)
from exports.writers.contract import Progress, ProgressFactory, WriterContext, no_progress
from exports.writers.votes_csv import VotesCsvWriter, write_leaderboard

# The names callers import from here (the command, the API, the form, tests and benchmarks).
__all__ = [
    "ExportError",
    "ExportOptions",
    "ExportResult",
    "Progress",
    "ProgressFactory",
    "export_preferences",
    "export_to_server",
    "exporter_version",
]

logger = logging.getLogger(__name__)

# The pairs whose images are fetched in one go.
IMAGE_ROWS = 16


@dataclass
class ExportResult:
    path: Path
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


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
    plan = plan_export(campaign, options)
    out = Path(out).absolute()
    check_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.{secrets.token_hex(4)}.partial"
    staging.mkdir()
    started = time.perf_counter()
    try:
        result = _write(staging, campaign, plan, options, progress or no_progress)
        result.manifest["seconds"] = round(time.perf_counter() - started, 3)
        result.manifest["file_totals"] = write_manifest(staging, result.manifest)
        publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.path = out
    logger.info("exported %s of %s to %s in %.1fs", options.format, campaign.slug, out, result.manifest["seconds"])
    return result


def export_to_server(*, campaign: Campaign, options: ExportOptions) -> ExportResult:
    """Export into a new, unguessably named folder of the campaign's own (publish.campaign_exports_folder)."""
    stamp = timezone.now().strftime("%Y%m%dt%H%M%S")
    name = f"{options.format}-{stamp}-{secrets.token_hex(6)}"
    return export_preferences(campaign=campaign, options=options, out=campaign_exports_folder(campaign) / name)


@dataclass(frozen=True)
class _Job:
    """One export being written: where, of what, as planned, and how participants are hashed and progress shown."""

    folder: Path
    campaign: Campaign
    plan: ExportPlan
    options: ExportOptions
    hasher: ParticipantHasher
    progress: ProgressFactory


def _write(
    folder: Path, campaign: Campaign, plan: ExportPlan, options: ExportOptions, progress: ProgressFactory
) -> ExportResult:
    hasher = ParticipantHasher(str(settings.PARTICIPANT_HASH_KEY).encode())
    warnings: list[str] = []
    # A configuration that no longer reads (a CLIP folder moved) leaves the measures out, not the export.
    if problem := metrics_config_problem(campaign):
        warnings.append(f"{problem}; this export carries no population measures")
    written = _EXPORTS[plan.spec.source](_Job(folder, campaign, plan, options, hasher, progress))
    written.warnings[:0] = warnings
    participants = write_participants(folder, campaign, hasher)
    manifest = write_card_and_build_manifest(
        folder, campaign=campaign, plan=plan, options=options, written=written, participants=participants
    )
    return ExportResult(path=folder, manifest=manifest, warnings=written.warnings)


def _no_votes(campaign: Campaign, plan: ExportPlan) -> str:
    on = ", ".join(c.key for c in plan.criteria) or "any criterion"
    return f"campaign {campaign.slug!r} has no votes yet on {on}: the dataset is empty"


# --- formats made of judged pairs -------------------------------------------------------------------------


def _chunks(rows: list[PairRow], size: int) -> Iterator[list[PairRow]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _ratings(campaign: Campaign, criteria: list[Criterion]) -> dict[str, dict[str, float]]:
    return {c.key: get_generator_ratings(campaign=campaign, criterion=c.key) for c in criteria}


def _pair_export(job: _Job) -> Written:
    spec = job.plan.spec
    assert job.plan.pair_filter is not None
    assert spec.open_writer is not None
    ratings = _ratings(job.campaign, job.plan.criteria)
    source = ImageSource(image_storage(), job.folder, skip_missing=job.options.skip_missing)
    writer = spec.open_writer(
        WriterContext(
            folder=job.folder,
            splits=job.plan.splits,
            load_image=source.read,
            hasher=job.hasher,
            shown_images=partial(selectors.iter_shown_images, campaign=job.campaign),
            split_of=partial(split_for, validation_fraction=job.options.validation_fraction),
            progress=job.progress,
        )
    )
    kinds = selectors.count_votes(campaign=job.campaign, criterion_ids=[c.pk for c in job.plan.criteria])
    held = {"flagged_participants"} if job.options.include_flagged else set()
    held |= {"simulated"} if job.options.include_simulated else set()
    tally = PairTally()
    copy = spec.copies_images and job.options.copy_images
    bar = job.progress(kinds["counted"] + sum(kinds[kind] for kind in held), "vote")
    try:
        for group in iter_pair_rows(
            campaign=job.campaign,
            criteria=job.plan.criteria,
            pair_filter=job.plan.pair_filter,
            ratings=ratings,
            validation_fraction=job.options.validation_fraction,
            include_flagged=job.options.include_flagged,
            include_simulated=job.options.include_simulated,
            not_worse_on=job.plan.not_worse_on,
            generator_ids=job.plan.generators,
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
            if kept:
                writer.write_group(kept)
    finally:
        bar.close()
        source.close()
    _refuse_a_filter_that_left_nothing(job.plan, tally)
    counts = export_counts(
        votes=vote_counts(kinds, held=held, read=tally.votes_read),
        pairs=pair_counts(tally, job.plan),
        rows=writer.close(),
        format_counts=writer.extra_counts(),
        images_copied=source.copied,
    )
    warnings = []
    if not tally.votes_read:
        warnings.append(_no_votes(job.campaign, job.plan))
    elif not counts["pairs"]["kept"]:
        dropped = ", ".join(f"{n} {why}" for why, n in counts["pairs"]["dropped"].items() if n)
        warnings.append(f"no judged pair passed the filters ({dropped}): the dataset is empty")
    warnings += writer.warnings()
    missing = dict(source.missing)
    if missing:
        shown = "; ".join(f"{name} ({why})" for name, why in list(missing.items())[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        warnings.append(
            f"{len(missing)} image file(s) could not be used, so the "
            f"{counts['pairs']['dropped'][DROP_MISSING_IMAGE]} pair(s) that show them were left out: {shown}{more}"
        )
    return Written(counts, ratings, warnings, missing, writer.hf_layout())


def _refuse_a_filter_that_left_nothing(plan: ExportPlan, tally: PairTally) -> None:
    """`--generators` or `--not-worse-on` leaving no pair is refused, naming it (nothing is written).

    The filters apply in order (manifests.drop_reasons); the one after which no judged pair is left is the one
    that left nothing. The vote filters (min_votes, ties, min_margin) and missing images only warn, as before.
    """
    if not tally.pairs_judged or tally.outcomes:
        return
    left = tally.pairs_judged
    for reason in drop_reasons(plan):
        left -= tally.dropped.get(reason, 0)
        if left:
            continue
        criteria = ", ".join(c.key for c in plan.criteria)
        if reason == DROP_GENERATORS:
            names = ", ".join(plan.generators.values())
            raise ExportError(
                f"{OPTION} {names} leaves nothing to export: none of the {tally.pairs_judged} judged pair(s) on "
                f"{criteria} has both of its sides from these generators",
                option="generators",
            )
        for key in plan.not_worse_on.values():
            if reason == drop_worse_on(key):
                raise ExportError(
                    f"{OPTION} {key} leaves nothing to export: the winner of every pair on {criteria} that the "
                    f"other filters kept ({tally.dropped[reason]} of {tally.pairs_judged} judged) lost on {key}",
                    option="not_worse_on",
                )
        return


# --- the raw vote log and the leaderboard -----------------------------------------------------------------

# The kinds of votes the raw log holds besides the counted ones: every vote of people, each marked, except
# those of participants who withdrew (they leave every export); a simulated crowd's only when asked for.
VOTE_LOG_HOLDS = frozenset({"flagged_participants", "unreconciled", "gold", "repeats"})


def _votes_export(job: _Job) -> Written:
    ids = [c.pk for c in job.plan.criteria]
    kinds = selectors.count_votes(campaign=job.campaign, criterion_ids=ids)
    held = VOTE_LOG_HOLDS | ({"simulated"} if job.options.include_simulated else set())
    attributes = readable_attribute_specs(job.campaign)
    writer = VotesCsvWriter(
        job.folder, job.hasher, selectors.measure_columns(attributes), consent=consent_lookup(job.campaign)
    )
    bar = job.progress(kinds["counted"] + sum(kinds[kind] for kind in held), "vote")
    try:
        votes = selectors.iter_vote_log(
            campaign=job.campaign, criterion_ids=ids, include_simulated=job.options.include_simulated
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
    counts = export_counts(votes=vote_counts(kinds, held=held), rows=rows)
    return Written(counts, warnings=[] if rows[TRAIN] else [_no_votes(job.campaign, job.plan)])


def _leaderboard_export(job: _Job) -> Written:
    boards = [(c.key, get_leaderboard(campaign=job.campaign, criterion=c.key)) for c in job.plan.criteria]
    rows = write_leaderboard(job.folder, [(key, board["rows"]) for key, board in boards])
    ratings = {key: {r["generator"]: r["rating"] for r in board["rows"]} for key, board in boards}
    # The board ranks the counted votes only.
    kinds = selectors.count_votes(campaign=job.campaign, criterion_ids=[c.pk for c in job.plan.criteria])
    counts = export_counts(votes=vote_counts(kinds, held=()), rows=rows)
    ranked = sum(int(board["votes"]) for _, board in boards)
    return Written(counts, ratings, warnings=[] if ranked else [_no_votes(job.campaign, job.plan)])


# A format's `source` -> what writes it.
_EXPORTS: dict[str, Callable[[_Job], Written]] = {
    "pairs": _pair_export,
    "votes": _votes_export,
    "leaderboard": _leaderboard_export,
}
