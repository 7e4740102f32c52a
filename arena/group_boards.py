"""Reads for boards per group of participants, the test of whether groups disagree, and the weighted board.

The math is arena.groups (pure); this module reads what it needs and shapes the payloads. Counted votes are
read with their participant (`Vote.objects.counted()`: flagged, unreconciled, withdrawn and simulated
participants are out, as on the board), answers through annotation.selectors.get_participant_answers. Each
payload is cached like the board (arena.selectors.get_leaderboard): by the pair tallies' version, the
participants' standing and the answers' version, so a burst of readers computes once.

Small groups: a group with fewer than the campaign's `min_group_size` (k) participants who have counted votes on
the board is never shown. Asking for one answers 403 `group_too_small`, the same whether the group is small or
empty, so the refusal tells nothing of its size; the group test leaves such groups out and counts them, never
naming them; the weighted board's composition shows no count or share for a cell of 1 to k-1 participants.
Nothing here is pushed over the WebSocket or written to an export.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

import numpy as np
from django.core.cache import cache
from django.db.models import Count, F, Max, Sum

from annotation.models import Answer, Campaign, CampaignParticipation, Criterion, Question
from annotation.selectors import get_participant_answers
from arena import groups
from arena.models import PairTally, Vote
from arena.ranking import FIRST_WINS, SECOND_WINS, TIE, Leaderboard
from arena.selectors import _criterion, standing_row
from core.errors import ApplicationError, Forbidden, NotFound
from generation.models import Generator

GROUP_ROUNDS = 200
GROUP_PERMUTATIONS = 199
GROUP_CACHE_S = 600


def parse_group(group: str) -> tuple[str, str]:
    """`QUESTION:VALUE` as (question key, value); the value may itself hold colons."""
    key, colon, value = group.partition(":")
    if not colon or not key or not value:
        raise ApplicationError(f"group must be QUESTION:VALUE (a question key and one of its answers), not {group!r}")
    return key, value


def answer_label(value: object) -> str | None:
    """An answer as a group label: text as given, a number without a needless ".0"; None for several choices."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else f"{value:g}"
    return None


def _in_group(value: object, label: str) -> bool:
    if isinstance(value, list):  # several choices: everyone who ticked it
        return label in (str(v) for v in value)
    return answer_label(value) == label


def _question(campaign: Campaign, key: str) -> Question:
    question = Question.objects.filter(campaign=campaign, key=key, is_current=True).first()
    if question is None:
        asked = ", ".join(
            Question.objects.filter(campaign=campaign, is_current=True)
            .order_by("position")
            .values_list("key", flat=True)
        )
        raise NotFound(f"unknown question {key!r} (this campaign asks: {asked or 'nothing'})")
    return question


def _version(campaign: Campaign, criterion: Criterion, category: str) -> str:
    """What the payloads depend on: counted votes (the tallies), participants' standing, answers, k and targets."""
    tallies = PairTally.objects.filter(criterion=criterion, category=category).aggregate(
        rows=Count("id"), changed=Max("updated_at"), votes=Sum(F("a_wins") + F("b_wins") + F("ties") + F("both_bad"))
    )
    return _joined([tallies["rows"], tallies["votes"], tallies["changed"]]) + ":" + groups_version(campaign)


def groups_version(campaign: Campaign) -> str:
    """What decides who is in which group beside the votes: participants' standing, answers, k and targets."""
    standing = CampaignParticipation.objects.filter(campaign=campaign).aggregate(
        n=Count("id"), changed=Max("updated_at")
    )
    answers = Answer.objects.filter(response__campaign=campaign).aggregate(n=Count("id"), changed=Max("answered_at"))
    settings = json.dumps([campaign.min_group_size, campaign.population_targets, campaign.count_only_reconciled])
    parts = [standing["n"], standing["changed"], answers["n"], answers["changed"]]
    return _joined(parts) + ":" + hashlib.sha256(settings.encode()).hexdigest()[:16]


def _joined(parts: list[Any]) -> str:
    return ":".join("-" if p is None else p.isoformat() if hasattr(p, "isoformat") else str(p) for p in parts)


def _cache_key(kind: str, campaign: Campaign, criterion: Criterion, category: str, *detail: str) -> str:
    # The category and the group are the caller's text: hashed, so any value makes a valid cache key.
    text = hashlib.sha256(json.dumps([category, *detail]).encode()).hexdigest()[:24]
    return f"groups:{kind}:{campaign.pk}:{campaign.generators.count()}:{criterion.pk}:{text}:" + _version(
        campaign, criterion, category
    )


# The last few reads of counted votes with their participants, in this process: the boards of several groups,
# the test and the weighted board of one state of the votes share one read (on 100,000 votes it costs more
# than their fits). Keyed by what the payloads' cache keys hold, so a read is never older than the answer.
_READS: dict[tuple[int, int, int, str, str], tuple[groups.ParticipantVotes, dict[str, str]]] = {}
_READS_KEPT = 4
_READS_LOCK = threading.Lock()
_OUTCOME: dict[str, int] = {Vote.Choice.LEFT.value: FIRST_WINS, Vote.Choice.RIGHT.value: SECOND_WINS}


def _participant_votes(
    campaign: Campaign, criterion: Criterion, category: str
) -> tuple[groups.ParticipantVotes, dict[str, str]]:
    """Every counted vote on the criterion with its participant, and the generators' display names."""
    generators = list(campaign.generators.order_by("name"))
    key = (campaign.pk, len(generators), criterion.pk, category, _version(campaign, criterion, category))
    with _READS_LOCK:
        kept = _READS.get(key)
    if kept is not None:
        return kept
    votes = Vote.objects.counted().filter(criterion=criterion)
    if category:
        votes = votes.filter(comparison__prompt__category=category)
    rows = list(
        votes.values_list(
            "comparison__participant_id",
            "comparison__left_population__generator_id",
            "comparison__right_population__generator_id",
            "choice",
        ).order_by()
    )
    read = (_votes_from_rows(generators, rows), {g.name: g.label for g in generators})
    with _READS_LOCK:
        _READS[key] = read
        while len(_READS) > _READS_KEPT:
            del _READS[next(iter(_READS))]
    return read


def _votes_from_rows(generators: list[Generator], rows: list[tuple[int, int, int, str]]) -> groups.ParticipantVotes:
    """ParticipantVotes from `(participant id, left generator id, right generator id, choice)` rows, in array
    steps (participants in the order of their ids); a vote naming a generator no longer in the campaign is out."""
    names = tuple(g.name for g in generators)
    if not rows:
        return groups.ParticipantVotes.from_rows(names, [])
    who, left, right = (
        np.fromiter(column, dtype=np.int64, count=len(rows)) for column in list(zip(*rows, strict=True))[:3]
    )
    outcome = np.fromiter((_OUTCOME.get(row[3], TIE) for row in rows), dtype=np.int64, count=len(rows))
    pks = np.array([g.pk for g in generators], dtype=np.int64)
    order = np.argsort(pks)  # the position in `names` of each id in increasing order
    ids = pks[order]
    where_left = np.clip(np.searchsorted(ids, left), 0, len(ids) - 1)
    where_right = np.clip(np.searchsorted(ids, right), 0, len(ids) - 1)
    known = (ids[where_left] == left) & (ids[where_right] == right)
    participants, position = np.unique(who[known], return_inverse=True)
    return groups.ParticipantVotes(
        names,
        tuple(str(p) for p in participants.tolist()),
        position.astype(np.int64),
        order[where_left[known]],
        order[where_right[known]],
        outcome[known],
    )


def _rows(board: Leaderboard, labels: dict[str, str]) -> list[dict[str, Any]]:
    # Tie and both_bad together: the fit counts both as half a win each way.
    return [standing_row(standing, labels[standing.name]) for standing in board.standings]


def _board(board: Leaderboard, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "votes": round(board.total_votes, 3),
        "method": board.method_note,
        "intervals": board.intervals,
        "interval_level": board.level,
        "bootstrap_rounds": board.bootstrap_rounds,
        "rows": _rows(board, labels),
    }


def group_too_small(campaign: Campaign) -> Forbidden:
    """The refusal of a group under k: the same whether it is small or empty, so it tells nothing of its size."""
    return Forbidden(
        f"groups of fewer than {campaign.min_group_size} participants are never shown, to protect who is in them",
        code="group_too_small",
    )


def get_group_members(*, campaign: Campaign, group: str) -> tuple[str, str, set[int]]:
    """The question key, the value and the ids of the participants who gave that answer (or ticked it) in
    `group` (`QUESTION:VALUE`); withdrawn participants are in no group. NotFound for a question not asked."""
    key, value = parse_group(group)
    _question(campaign, key)
    answers = get_participant_answers(campaign)
    return key, value, {who for who, given in answers.items() if _in_group(given.get(key), value)}


def get_group_questions(*, campaign: Campaign) -> list[dict[str, Any]]:
    """The choice questions a page offers groups of: each with its options (public: no counts, so nothing of any
    group's size; a group under k answers group_too_small when asked for). `testable`: single choice."""
    questions = Question.objects.filter(
        campaign=campaign, is_current=True, kind__in=[Question.Kind.SINGLE, Question.Kind.MULTIPLE]
    ).order_by("position", "id")
    return [
        {
            "key": q.key,
            "text": q.text,
            "values": q.offered_choices,
            "testable": q.kind == Question.Kind.SINGLE,
        }
        for q in questions
    ]


def get_group_leaderboard(*, campaign: Campaign, criterion: str, group: str, category: str = "") -> dict[str, Any]:
    """The board of one group (`QUESTION:VALUE`): the participants who gave that answer (or ticked it)."""
    key, value = parse_group(group)
    criterion_row = _criterion(campaign, criterion)
    _question(campaign, key)
    cache_key = _cache_key("board", campaign, criterion_row, category, key, value)
    cached = cache.get(cache_key)
    if cached is None:
        votes, labels = _participant_votes(campaign, criterion_row, category)
        answers = get_participant_answers(campaign)
        members = [
            i for i, who in enumerate(votes.participants) if _in_group(answers.get(int(who), {}).get(key), value)
        ]
        if len(members) < campaign.min_group_size:
            cached = {"too_small": True}
        else:
            board = groups.board(votes, members=members, rounds=GROUP_ROUNDS, seed=0)
            cached = {
                "criterion": criterion,
                "category": category,
                "group": {"question": key, "value": value, "participants": len(members)},
                "includes_flagged": False,
                "updated_at": None,
                **_board(board, labels),
            }
        cache.set(cache_key, cached, GROUP_CACHE_S)
    if cached.get("too_small"):
        raise group_too_small(campaign)
    return dict(cached)


def get_group_test(*, campaign: Campaign, criterion: str, question: str, category: str = "") -> dict[str, Any]:
    """Whether the groups of one question rank the generators differently, with each group's board."""
    criterion_row = _criterion(campaign, criterion)
    asked = _question(campaign, question)
    if asked.kind == Question.Kind.MULTIPLE:
        raise ApplicationError(
            f"question {question!r} allows several choices, so its groups overlap and cannot be tested against "
            "each other; ask for one group's board with ?group=QUESTION:VALUE",
            code="question_not_groupable",
        )
    cache_key = _cache_key("test", campaign, criterion_row, category, question)
    cached = cache.get(cache_key)
    if cached is not None:
        return dict(cached)
    votes, labels = _participant_votes(campaign, criterion_row, category)
    answers = get_participant_answers(campaign)
    by_participant = [answer_label(answers.get(int(who), {}).get(question)) for who in votes.participants]
    try:
        result = groups.compare_groups(
            votes,
            by_participant,
            min_size=campaign.min_group_size,
            permutations=GROUP_PERMUTATIONS,
            rounds=GROUP_ROUNDS,
            seed=0,
        )
    except groups.GroupsError as exc:
        raise ApplicationError(str(exc), code="too_few_groups", status=409) from None
    payload = {
        "criterion": criterion,
        "category": category,
        "question": question,
        "statistic": round(result.statistic, 6),
        "p_value": result.p_value,
        "permutations": result.permutations,
        "min_group_size": result.min_size,
        "suppressed_groups": result.suppressed_groups,
        "reference": result.reference,
        "groups": [
            {"value": g.label, "participants": g.participants, "votes": g.votes, **_board(g.board, labels)}
            for g in result.groups
        ],
        "differences": [{**d.as_row(), "display_name": labels[d.generator]} for d in result.differences],
    }
    cache.set(cache_key, payload, GROUP_CACHE_S)
    return payload


def get_weighted_leaderboard(*, campaign: Campaign, criterion: str, category: str = "") -> dict[str, Any]:
    """The board raked to the campaign's target population beside the unweighted one, and the sample's composition."""
    if not campaign.population_targets:
        raise NotFound(
            "this campaign has no target population (population_targets) to weight its board to", code="no_targets"
        )
    try:
        targets = groups.parse_targets(campaign.population_targets)
    except groups.GroupsError as exc:
        raise ApplicationError(f"the campaign's population_targets: {exc}", code="invalid_targets") from None
    criterion_row = _criterion(campaign, criterion)
    for margin in targets.margins:
        for key in margin.questions:
            _question(campaign, key)
    cache_key = _cache_key("weighted", campaign, criterion_row, category)
    cached = cache.get(cache_key)
    if cached is None:
        cached = _weighted(campaign, criterion_row, category, targets)
        cache.set(cache_key, cached, GROUP_CACHE_S)
    if cached.get("too_small"):
        raise group_too_small(campaign)
    return dict(cached)


def _weighted(campaign: Campaign, criterion: Criterion, category: str, targets: groups.Targets) -> dict[str, Any]:
    votes, labels = _participant_votes(campaign, criterion, category)
    answers = get_participant_answers(campaign)
    keys = {key for margin in targets.margins for key in margin.questions}
    given: list[dict[str, str] | None] = []
    for who in votes.participants:
        mine = answers.get(int(who), {})
        given.append({k: label for k in keys if (label := answer_label(mine.get(k))) is not None})
    raking = groups.rake(given, targets.margins, cap=targets.cap)
    k = campaign.min_group_size
    if raking.included < k:
        return {"too_small": True}
    result = groups.weighted_board(votes, given, targets.margins, cap=targets.cap, rounds=GROUP_ROUNDS, seed=0)
    raking = result.raking

    hidden = _suppressed_cells(raking.cells, k)

    def shown(cell: groups.CellShare) -> bool:
        return (cell.margin, cell.cell) not in hidden

    return {
        "criterion": criterion.key,
        "category": category,
        "weighted": _board(result.weighted, labels),
        "unweighted": _board(result.unweighted, labels),
        "composition": [
            {
                "margin": cell.margin,
                "cell": list(cell.cell),
                "target": cell.target,
                "participants": cell.participants if shown(cell) else None,
                "sample": cell.sample if shown(cell) else None,
                "weighted": cell.weighted if shown(cell) else None,
                "suppressed": not shown(cell),
            }
            for cell in raking.cells
        ],
        "empty_cells": [{"margin": margin, "cell": list(cell)} for margin, cell in raking.empty_cells],
        "participants": raking.included,
        # How many gave no answer the targets name: a count of 1 to k-1 people is not shown either.
        "excluded": raking.excluded if raking.excluded == 0 or raking.excluded >= k else None,
        "effective_size": round(raking.effective_size, 2),
        "cap": raking.cap,
        "at_cap": raking.at_cap,
        "converged": raking.converged,
        "min_group_size": k,
    }


def _suppressed_cells(cells: tuple[groups.CellShare, ...], k: int) -> set[tuple[str, tuple[str, ...]]]:
    """Cells whose counts are not shown: those of 1 to k-1 participants, and where a margin would hide just one,
    the next smallest too (its count would otherwise follow from the total less the others)."""
    hidden: set[tuple[str, tuple[str, ...]]] = set()
    for margin in dict.fromkeys(cell.margin for cell in cells):
        mine = [cell for cell in cells if cell.margin == margin and cell.participants > 0]
        small = [cell for cell in mine if cell.participants < k]
        if len(small) == 1:
            rest = sorted((cell for cell in mine if cell.participants >= k), key=lambda c: c.participants)
            small += rest[:1]
        hidden.update((cell.margin, cell.cell) for cell in small)
    return hidden
