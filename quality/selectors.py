"""Quality control's reads: a campaign's votes adapted to the pure scoring core (quality.scoring)."""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

from annotation.models import Campaign
from arena.models import Vote
from core.choices import Choice, Side, parse_choice
from quality.scoring import (
    Agreement,
    GoldAnswer,
    GoldSummary,
    QualityReport,
    RepeatPair,
    ScoredVote,
    UnitVote,
    agreement_by_criterion,
    assess_participants,
    summarize_gold,
)


class QualityOverview(NamedTuple):
    reports: list[QualityReport]
    agreement: dict[str, Agreement]
    # Gold results per generator of the real side: a draw skewed to one generator shows here.
    gold_by_source: dict[str, GoldSummary]


def get_quality_reports(*, campaign: Campaign) -> QualityOverview:
    """Every participant's quality signals and flag by the stated rule, agreement per criterion, gold per source.

    Gold answers are scored against the side that is not the degraded copy; a side-swapped
    repeat is paired with the original answer to the same criterion. Agreement counts only
    ordinary comparisons (a gold or repeat vote would weigh one participant twice or say nothing).
    Simulated participants are left out: they are a metric, not people, and are never flagged.
    """
    votes: list[ScoredVote] = []
    units: list[UnitVote] = []
    gold: list[GoldAnswer] = []
    by_source: defaultdict[str, list[GoldAnswer]] = defaultdict(list)
    answers: dict[tuple[int, str], Choice] = {}
    repeats: list[tuple[int, int, str, Choice]] = []
    rows = (
        Vote.objects.by_people()
        .filter(comparison__campaign=campaign)
        .order_by("created_at", "pk")
        .values_list(
            "comparison__participant_id",
            "comparison_id",
            "criterion__key",
            "choice",
            "dwell_ms",
            "created_at",
            "comparison__left_population_id",
            "comparison__right_population_id",
            "comparison__is_gold",
            "comparison__left_population__decoy_of_id",
            "comparison__repeat_of_id",
            "comparison__left_population__generator__name",
            "comparison__right_population__generator__name",
        )
        .iterator(chunk_size=5000)
    )
    for (
        participant,
        comparison,
        criterion,
        choice,
        dwell_ms,
        created_at,
        left,
        right,
        is_gold,
        left_decoy,
        repeat_of,
        left_generator,
        right_generator,
    ) in rows:
        parsed = parse_choice(choice)
        votes.append(ScoredVote(participant, comparison, criterion, parsed, dwell_ms, created_at))
        answers[(comparison, criterion)] = parsed
        if is_gold:
            correct: Side = "right" if left_decoy is not None else "left"
            answer = GoldAnswer(participant, comparison, criterion, parsed, correct)
            gold.append(answer)
            by_source[right_generator if left_decoy is not None else left_generator].append(answer)
        elif repeat_of is not None:
            repeats.append((participant, repeat_of, criterion, parsed))
        else:
            # One unit per pair of populations, oriented by population id so side swaps line up.
            unit = (min(left, right), max(left, right))
            units.append(UnitVote(unit, criterion, participant, parsed, swapped=left != unit[0]))
    pairs = [
        RepeatPair(participant, criterion, answers[(original, criterion)], repeat)
        for participant, original, criterion, repeat in repeats
        if (original, criterion) in answers
    ]
    return QualityOverview(
        assess_participants(votes=votes, gold=gold, repeats=pairs),
        agreement_by_criterion(units),
        {name: summarize_gold(given) for name, given in sorted(by_source.items())},
    )
