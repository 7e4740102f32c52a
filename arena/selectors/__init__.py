"""Reads for the arena: what a participant sees of a comparison, and how full the queues are."""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from django.core.cache import cache
from django.db.models import Count, F, Max, QuerySet, Sum

from annotation.demand import demand_owner
from annotation.models import Campaign, Criterion, Participant
from annotation.selectors import first_criterion
from arena.image_urls import Side, mint_image_url
from arena.models import Comparison, PairTally, Vote
from arena.ranking import INTERVAL_METHODS, INTERVALS_BOOTSTRAP, PairCounts, Standing, fit_ratings, win_rate_matrix
from arena.statements import fetch_caption_and_images
from core import choices
from core.errors import ApplicationError, NotFound
from generation.planning import images_before_first_comparison
from generation.selectors import get_generation_rate, get_queue_states


def _caption_and_image_urls(comparison: Comparison) -> tuple[str, list[str], list[str]]:
    """The prompt's caption and each side's image URLs in generation order, in one query.

    The URLs are minted for this comparison (arena.image_urls), never the storage names: the same set has
    other URLs in every other comparison, so a set seen revealed once is not recognised by its address.
    """
    left_id, right_id = comparison.left_population_id, comparison.right_population_id
    side_of: dict[int, Side] = {left_id: "l", right_id: "r"}
    urls: dict[int, list[str]] = {left_id: [], right_id: []}
    caption: str | None = None
    for population_id, index, prompt_caption in fetch_caption_and_images(comparison.prompt_id, left_id, right_id):
        urls[population_id].append(mint_image_url(token=comparison.token, side=side_of[population_id], index=index))
        caption = prompt_caption
    if caption is None:  # no images at all: never for a ready population, but say the prompt anyway
        caption = comparison.prompt.caption
    return caption, urls[left_id], urls[right_id]


def count_votes_cast(*, campaign: Campaign, participant: Participant) -> int:
    return Comparison.objects.voted_by(campaign=campaign, participant=participant).count()


def get_comparison_payload(
    *, comparison: Comparison, participant: Participant, votes_cast: int | None = None
) -> dict[str, Any]:
    """What the page and the API show before the vote: nothing that tells the sides apart.

    `votes_cast`: the participant's count, where the caller has just read it (the vote before this one); else the
    count issuing read with the comparison (Comparison.holder_votes_cast), or a count of its own.
    """
    campaign = comparison.campaign
    if votes_cast is None:
        votes_cast = comparison.holder_votes_cast
    caption, left, right = _caption_and_image_urls(comparison)
    return {
        "token": comparison.token,
        "prompt": caption,
        "criteria": [{"key": c.key, "question": c.question} for c in campaign.criteria.all()],
        "left": {"images": left},
        "right": {"images": right},
        "expires_at": comparison.lease_until.isoformat(),
        "progress": {
            "votes_cast": (
                count_votes_cast(campaign=campaign, participant=participant) if votes_cast is None else votes_cast
            ),
            "quota": campaign.participant_quota,
        },
    }


@dataclass(frozen=True)
class QueueSummary:
    """How far generation is for a campaign, without naming generators.

    Counts are image sets (populations): `ready` of `wanted` are made, `in_progress` are being
    made by a worker now, `waiting` are still to make after those (queued for a worker). The estimates (seconds,
    None without a measured speed) come from how fast the workers made this campaign's sets
    lately: until two generators have a set of one prompt ready, and until every queue is full.
    """

    ready: int
    wanted: int
    in_progress: int
    waiting: int
    images_per_s: float | None
    first_comparison_s: int | None
    all_ready_s: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def get_queue_summary(*, campaign: Campaign) -> QueueSummary:
    states = get_queue_states(owner=demand_owner(campaign))
    rate = get_generation_rate(generator_ids={s.generator_id for s in states})
    to_first = images_before_first_comparison(((s.generator_id, s.prompt_id, s.size), s.available) for s in states)
    to_full = sum(max(0, s.high_watermark - s.available) * s.size for s in states)

    def eta(images: int | None) -> int | None:
        return None if rate is None or images is None else math.ceil(images / rate)

    return QueueSummary(
        ready=sum(min(s.available, s.high_watermark) for s in states),
        wanted=sum(s.high_watermark for s in states),
        in_progress=sum(s.generating for s in states),
        # Still to make beyond what a worker holds, planned yet or not (a worker plans when it starts).
        waiting=sum(max(0, s.high_watermark - min(s.available, s.high_watermark) - s.generating) for s in states),
        images_per_s=None if rate is None else round(rate, 2),
        first_comparison_s=eta(to_first),
        all_ready_s=eta(to_full),
    )


LEADERBOARD_BOOTSTRAP = 1000
LEADERBOARD_CACHE_S = 600


def _criterion(campaign: Campaign, key: str) -> Criterion:
    criterion = campaign.criteria.filter(key=key).first()
    if criterion is None:
        asked = ", ".join(campaign.criteria.values_list("key", flat=True))
        raise NotFound(f"unknown criterion {key!r} (this campaign asks: {asked})")
    return criterion


# (generator_a_id, generator_b_id, a_wins, b_wins, ties, both_bad) with generator_a_id < generator_b_id.
TallyRow = tuple[int, int, int, int, int, int]


def _tally_rows(criterion: Criterion, category: str) -> list[TallyRow]:
    """The running tallies: every counted vote, without flagged or simulated participants, gold checks or repeats."""
    return list(
        PairTally.objects.filter(criterion=criterion, category=category).values_list(
            "generator_a_id", "generator_b_id", "a_wins", "b_wins", "ties", "both_bad"
        )
    )


def _votes_for_board(criterion: Criterion, category: str) -> QuerySet[Vote]:
    votes = Vote.objects.counted(include_flagged=True).filter(criterion=criterion)
    return votes.filter(comparison__prompt__category=category) if category else votes


def _tally_rows_with_flagged(criterion: Criterion, category: str) -> list[TallyRow]:
    """The same counts recomputed from the votes themselves, flagged participants included."""
    counts: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    rows = (
        _votes_for_board(criterion, category)
        .values_list(
            "comparison__left_population__generator_id", "comparison__right_population__generator_id", "choice"
        )
        .annotate(n=Count("id"))
        .order_by()
    )
    for left, right, choice, n in rows:
        a, b, added = choices.tally_counts(left, right, choice, n)
        counts[(a, b)] = [kept + more for kept, more in zip(counts[(a, b)], added, strict=True)]
    return [(a, b, values[0], values[1], values[2], values[3]) for (a, b), values in counts.items()]


def _counts(campaign: Campaign, rows: list[TallyRow]) -> tuple[PairCounts, dict[str, int], list[Any]]:
    generators = list(campaign.generators.order_by("name"))
    names = {g.pk: g.name for g in generators}
    mine = [row for row in rows if row[0] in names and row[1] in names]
    counts = PairCounts.from_tallies(
        [g.name for g in generators],
        ((names[a], names[b], a_wins, b_wins, ties + both) for a, b, a_wins, b_wins, ties, both in mine),
    )
    both_bad: dict[str, int] = defaultdict(int)
    for a, b, _, _, _, both in mine:
        both_bad[names[a]] += both
        both_bad[names[b]] += both
    return counts, both_bad, generators


def get_leaderboard(
    *,
    campaign: Campaign,
    criterion: str,
    category: str = "",
    include_flagged: bool = False,
    intervals: str = INTERVALS_BOOTSTRAP,
) -> dict[str, Any]:
    """The campaign's Bradley-Terry leaderboard on one criterion (all prompts, or one category).

    Read from the running pair tallies, fitted, and cached until the tallies change, so a burst of
    readers fits once. `intervals`: "bootstrap" (1,000 rounds, tenths of a second; the default, for
    reads on request and exports) or "sandwich" (closed form, milliseconds; what live pushes carry,
    arena.ranking says how); the payload's "intervals" says which.
    `include_flagged` recounts from the votes with flagged participants' votes in (for staff
    checking what quality control changed); gold checks and repeats are never counted.
    """
    if intervals not in INTERVAL_METHODS:
        raise ApplicationError(f"intervals must be one of {', '.join(INTERVAL_METHODS)}, not {intervals!r}")
    criterion_row = _criterion(campaign, criterion)
    if include_flagged:
        state = _votes_for_board(criterion_row, category).aggregate(
            rows=Count("id"), votes=Max("id"), changed=Max("created_at")
        )
    else:
        state = PairTally.objects.filter(criterion=criterion_row, category=category).aggregate(
            rows=Count("id"),
            changed=Max("updated_at"),
            votes=Sum(F("a_wins") + F("b_wins") + F("ties") + F("both_bad")),
        )
    # Every vote adds one to a counter, so the sum alone already tells a changed board apart.
    version = f"{state['rows']}:{state['votes']}:{state['changed'].isoformat() if state['changed'] else '-'}"
    # The category is the caller's text: hashed, so any value makes a valid cache key.
    category_key = hashlib.sha256(category.encode()).hexdigest()[:16]
    key = (
        f"leaderboard:{campaign.pk}:{campaign.generators.count()}:{criterion_row.pk}:{category_key}:"
        f"{int(include_flagged)}:{intervals}:{version}"
    )
    cached = cache.get(key)
    if cached is not None:
        return dict(cached)
    rows_in = (_tally_rows_with_flagged if include_flagged else _tally_rows)(criterion_row, category)
    counts, both_bad, generators = _counts(campaign, rows_in)
    board = fit_ratings(counts, bootstrap=LEADERBOARD_BOOTSTRAP, seed=0, intervals=intervals)
    labels = {g.name: g.label for g in generators}
    rows = []
    for standing in board.standings:
        rows.append(
            {
                **standing_row(standing, labels[standing.name]),
                # The fit counts both_bad as a tie; the table shows the two apart.
                "ties": int(standing.ties) - both_bad[standing.name],
                "both_bad": both_bad[standing.name],
                "both_bad_rate": both_bad[standing.name] / standing.votes if standing.votes else 0.0,
            }
        )
    rates = win_rate_matrix(counts)
    payload = {
        "criterion": criterion,
        "category": category,
        "includes_flagged": include_flagged,
        "votes": int(counts.total),
        "updated_at": state["changed"].isoformat() if state["changed"] else None,
        "method": board.method_note,
        "intervals": board.intervals,
        "interval_level": board.level,
        "bootstrap_rounds": board.bootstrap_rounds,
        "rows": rows,
        "pairwise": {
            "generators": list(counts.names),
            "display_names": [labels[name] for name in counts.names],
            "win_rate": [[None if math.isnan(v) else round(float(v), 4) for v in line] for line in rates],
        },
    }
    cache.set(key, payload, LEADERBOARD_CACHE_S)
    return payload


def standing_row(standing: Standing, display_name: str) -> dict[str, Any]:
    """One generator's row of a board as the API gives it (ties: tie and both-bad votes, as the fit counts them)."""
    row = standing.as_row()
    return {
        "generator": standing.name,
        "display_name": display_name,
        "rating": row["rating"],
        "ci_low": row["ci_low"],
        "ci_high": row["ci_high"],
        "rank": standing.rank,
        "votes": int(standing.votes),
        "wins": int(standing.wins),
        "losses": int(standing.losses),
        "ties": int(standing.ties),
    }


def default_criterion(campaign: Campaign) -> str:
    first = first_criterion(campaign)
    if first is None:
        raise NotFound(f"campaign {campaign.slug!r} has no criteria yet")
    return first.key


def get_categories(*, campaign: Campaign) -> list[str]:
    return sorted(set(campaign.prompts.exclude(category="").values_list("category", flat=True)))


def get_generator_ratings(*, campaign: Campaign, criterion: str) -> dict[str, float]:
    """Bradley-Terry ratings on the Elo scale (mean 1000) of the campaign's generators on one criterion."""
    counts, _, _ = _counts(campaign, _tally_rows(_criterion(campaign, criterion), ""))
    return fit_ratings(counts, bootstrap=0).ratings()
