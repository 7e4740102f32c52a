"""Pure row building: votes folded into judged pairs, outcomes, filters, splits and hashed ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exports.rows import (
    DROP_MIN_MARGIN,
    DROP_MIN_VOTES,
    DROP_TIE,
    TRAIN,
    VALIDATION,
    PairFilter,
    PairRow,
    PairStreamVote,
    ParticipantHasher,
    PromptInfo,
    group_pairs,
    iso_moment,
    moment,
    split_for,
)
from tests.exports.helpers import T0, judged, population


def vote(vote_id: int, left: int, right: int, choice: str, *, criterion: int = 1, prompt: int = 1, who: int = 1):
    return PairStreamVote(
        vote_id, criterion, prompt, vote_id, left, right, choice, T0 + timedelta(seconds=vote_id), who
    )


def test_displayed_sides_are_mapped_back_to_the_populations():
    # Given one pair of populations shown three times, sides swapped on the later comparisons
    votes = [
        vote(1, 10, 20, "left", who=1),  # population 10 shown left, chosen
        vote(2, 20, 10, "right", who=2),  # population 10 shown right, chosen
        vote(3, 20, 10, "left", who=3),  # population 20 chosen
        vote(4, 10, 20, "tie", who=3),
        vote(5, 20, 10, "both_bad", who=4),
    ]
    # When they are folded
    (folded,) = list(group_pairs(votes))
    # Then the sides are the first display's, and every vote counts for the population it chose
    assert (folded.left_population_id, folded.right_population_id) == (10, 20)
    assert (folded.left_wins, folded.right_wins, folded.ties, folded.both_bad) == (2, 1, 1, 1)
    assert folded.total == 5
    assert folded.margin == 1
    assert folded.outcome == "left"
    assert folded.first_vote_id == 1
    assert folded.last_vote_at == T0 + timedelta(seconds=5)
    assert folded.participants == {1, 2, 3, 4}


def test_pairs_are_split_by_criterion_prompt_and_populations():
    votes = [
        vote(1, 10, 20, "left", criterion=1),
        vote(3, 10, 20, "right", criterion=2),
        vote(2, 10, 30, "left", criterion=1),
        vote(4, 10, 20, "left", prompt=2),
    ]
    keys = [(p.prompt_id, p.low_high, p.criterion_id) for p in group_pairs(votes)]
    assert keys == [(1, (10, 20), 1), (1, (10, 20), 2), (1, (10, 30), 1), (2, (10, 20), 1)]


def test_an_unordered_stream_is_refused_rather_than_split_silently():
    with pytest.raises(ValueError, match="ordered"):
        list(group_pairs([vote(1, 10, 30, "left"), vote(2, 10, 20, "left")]))


@pytest.mark.parametrize(
    ("counts", "outcome"),
    [
        ({"left": 2, "right": 1}, "left"),
        ({"left": 1, "right": 3, "ties": 5}, "right"),
        ({"left": 1, "right": 1}, "tie"),
        ({"ties": 1, "both_bad": 2}, "both_bad"),
        ({"ties": 2, "both_bad": 2}, "tie"),
    ],
)
def test_the_outcome_is_the_population_with_more_wins_else_a_tie(counts, outcome):
    assert judged(**counts).outcome == outcome


def test_filters_drop_ties_thin_pairs_and_narrow_wins():
    drop = PairFilter(ties="drop", min_votes=3, min_margin=2)
    assert drop.drop_reason(judged(left=1, right=0)) == DROP_MIN_VOTES
    assert drop.drop_reason(judged(left=2, right=2)) == DROP_TIE
    assert drop.drop_reason(judged(left=2, right=1)) == DROP_MIN_MARGIN
    assert drop.drop_reason(judged(left=3, right=1)) is None
    soft = PairFilter(ties="soft", min_margin=2)
    # The margin is about decided pairs; a kept tie is governed by `ties` alone.
    assert soft.drop_reason(judged(ties=1)) is None
    with pytest.raises(ValueError, match="ties"):
        PairFilter(ties="keep")


def test_the_split_follows_the_caption_so_no_caption_is_in_both():
    captions = [f"caption {i}" for i in range(2000)]
    assert {split_for(c, 0.0) for c in captions} == {TRAIN}
    splits = [split_for(c, 0.2) for c in captions]
    assert splits == [split_for(c, 0.2) for c in captions]
    assert 0.15 < splits.count(VALIDATION) / len(splits) < 0.25


@pytest.mark.parametrize(
    "raw",
    [
        "2025-01-01 10:00:00.250000",  # SQLite's text
        "2025-01-01 10:00:00.25+00",  # PostgreSQL's text in a UTC session
        "2025-01-01T10:00:00.250000+00:00",
        datetime(2025, 1, 1, 10, 0, 0, 250000, tzinfo=UTC),
    ],
)
def test_vote_times_read_as_text_or_datetimes_come_out_as_the_same_instant(raw):
    expected = datetime(2025, 1, 1, 10, 0, 0, 250000, tzinfo=UTC)
    assert moment(raw) == expected
    assert datetime.fromisoformat(iso_moment(raw)) == expected


def test_participant_hashes_are_keyed_stable_and_not_the_id():
    hasher = ParticipantHasher(b"key one")
    assert hasher.hex(42) == ParticipantHasher(b"key one").hex(42)
    assert hasher.hex(42) != ParticipantHasher(b"key two").hex(42)
    assert hasher.hex(42) != hasher.hex(43)
    assert len(hasher.hex(42)) == 32
    assert 0 <= hasher.int64(42) < 2**63


def test_sample_pairs_put_the_winner_first_and_paths_are_named_by_content():
    row = PairRow(
        criterion="diversity",
        prompt=PromptInfo(1, "a cat", ""),
        pair=judged(left=0, right=2),
        left=population(10, "a"),
        right=population(20, "b"),
        left_rating=990.0,
        right_rating=1010.0,
    )
    winner_first = row.sample_pairs(winner_first=True)
    assert [(w.sha256[:2], lo.sha256[:2]) for w, lo in winner_first] == [("20", "10")] * 3
    assert [w.index for w, _ in winner_first] == [0, 1, 2]
    assert row.sample_pairs(winner_first=False)[0][0].sha256.startswith("10")
    image = row.left.images[0]
    assert image.path == f"images/{image.sha256[:2]}/{image.sha256}.png"
    data = row.as_dict()
    assert data["winner"] == "right"
    assert data["votes"] == {"left": 0, "right": 2, "tie": 0, "both_bad": 0, "total": 2}
    assert data["pair_id"] == "diversity:10-20"


def test_a_winner_lost_on_another_criterion_only_where_the_other_side_has_more_wins_there():
    from exports.rows import JudgedPair, winner_lost_on

    def pair(left_id: int, right_id: int, left: int, right: int) -> JudgedPair:
        return JudgedPair(1, 1, left_id, right_id, 1, 1, 1, "t", "t", left_wins=left, right_wins=right)

    won = pair(10, 20, left=3, right=1)  # population 10 won
    assert winner_lost_on(won, pair(10, 20, left=0, right=2))
    assert winner_lost_on(won, pair(20, 10, left=2, right=0)), "sides shown the other way round"
    assert not winner_lost_on(won, pair(20, 10, left=0, right=2))
    assert not winner_lost_on(won, pair(10, 20, left=1, right=1)), "a tie is no loss"
    assert winner_lost_on(pair(10, 20, left=0, right=1), pair(10, 20, left=5, right=0)), "population 20 won, lost"
