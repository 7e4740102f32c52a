"""Pair reading: a campaign's votes streamed into judged pairs, filtered, and resolved into export rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from annotation.measuring import readable_attribute_specs
from annotation.models import Campaign, Criterion
from exports import selectors
from exports.rows import JudgedPair, PairFilter, PairRow, PopulationInfo, drop_reason, group_pairs, split_for
from exports.writers.contract import Progress, no_progress
from metrics.config import AttributeSpec

# Judged pairs resolved (populations and images fetched) per round trip.
PAIR_BATCH = 500


@dataclass
class PairTally:
    """What the pair stream read and why it left pairs out; the manifest's `counts.pairs` is made from it."""

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
    generator_ids: Collection[int] = (),
    tally: PairTally | None = None,
    progress: Progress | None = None,
) -> Iterator[list[PairRow]]:
    """Kept pair rows, one list per prompt, streamed: populations and images are fetched a batch of pairs at a time.

    A prompt's rows are never split across lists, so a writer can count them (Pick-a-Pic's
    `num_example_per_prompt`); memory is bounded by the largest prompt, not the campaign.
    `not_worse_on` (criterion id -> key): a decided pair whose winner lost on one of these criteria (the same
    two populations' votes there, filtered and folded as the exported ones) is dropped as `worse_on_KEY`.
    `generator_ids`: when given, a pair with a side from any other generator is dropped as `generators`.
    """
    tally = tally if tally is not None else PairTally()
    progress = progress or no_progress(None, "vote")
    keys = {c.pk: c.key for c in criteria}
    guards = dict(not_worse_on or {})
    populations = (
        selectors.shown_population_ids(campaign=campaign, generator_ids=generator_ids) if generator_ids else None
    )
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
        reason = drop_reason(
            pair, pair_filter=pair_filter, guards=guards, guard_pairs=pair_guards, populations=populations
        )
        if reason is not None:
            tally.dropped[reason] += 1
            continue
        group.append(pair)
    if group:
        batch.append(group)
    if batch:
        yield from _resolve_batch(batch, keys, ratings, validation_fraction, attributes)
