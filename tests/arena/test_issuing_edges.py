"""issue_comparison and lease renewal at their edges: the exact refusals, the rate boundaries, what a lease bars and
reserves, when lapsed leases are expired, and how the next pair is chosen (issue 31: issuing's mutation survivors)."""

from __future__ import annotations

import random
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from annotation.models import Campaign, Participant, ParticipantKind
from arena import issuing
from arena.issuing import NothingReady, check_campaign_takes_answers, extend_lease, issue_comparison
from arena.models import Comparison, PairTally
from arena.voting import VoteInput, cast_votes
from core.errors import ApplicationError
from generation.models import Population

pytestmark = pytest.mark.django_db

BOTH = [VoteInput("diversity", "left"), VoteInput("quality", "tie")]


class Rolls(random.Random):
    """A seeded rng whose first random() calls return the given values (the issue's roll comes first)."""

    def __init__(self, *rolls: float, seed: int = 0) -> None:
        self.rolls = list(rolls)
        super().__init__(seed)

    def random(self) -> float:
        return self.rolls.pop(0) if self.rolls else super().random()

    def getrandbits(self, k: int) -> int:  # keeps shuffle on getrandbits, not on the rolls
        return super().getrandbits(k)


@pytest.fixture(autouse=True)
def fresh_expiry_clock(monkeypatch):  # type: ignore[no-untyped-def]
    # The time of each campaign's last expiry is kept per process: a campaign id reused by an earlier test
    # must not make this one skip its first expiry.
    monkeypatch.setattr(issuing, "_last_expiry", {})


def participant(kind: str = ParticipantKind.ANONYMOUS) -> Participant:
    if kind == ParticipantKind.SIMULATED:  # a simulated judge is known by an identity of its own
        return Participant.objects.create(kind=kind, external_id_hash="judge-0")
    return Participant.objects.create(kind=kind)


def sets(comparison: Comparison) -> set[int]:
    return {comparison.left_population_id, comparison.right_population_id}


def generators_of(comparison: Comparison) -> set[int]:
    return set(Population.objects.filter(pk__in=sets(comparison)).values_list("generator_id", flat=True))


# --- refusals, word for word ----------------------------------------------------------------------------------


def test_a_third_open_comparison_is_refused_as_too_many_open(arena_campaign):
    campaign = arena_campaign(per_queue=3, votes_per_pair=5)
    voter = participant()
    first = issue_comparison(campaign=campaign, participant=voter)
    second = issue_comparison(campaign=campaign, participant=voter, exclude_tokens=(first.token,))
    with pytest.raises(
        ApplicationError, match="^you already hold the comparisons you can vote on; vote on them first$"
    ) as refused:
        issue_comparison(campaign=campaign, participant=voter, exclude_tokens=(first.token, second.token))
    assert (refused.value.code, refused.value.status) == ("too_many_open", 409)


def test_nothing_ready_is_said_in_full(arena_campaign):
    campaign = arena_campaign(per_queue=0)
    with pytest.raises(
        NothingReady,
        match="^no comparison is ready yet: the generation service is still making image sets for this campaign$",
    ) as refused:
        issue_comparison(campaign=campaign, participant=participant())
    assert (refused.value.code, refused.value.status) == ("nothing_ready", 409)


@pytest.mark.parametrize(
    ("status", "renewing", "code", "message"),
    [
        ("paused", True, "campaign_paused", "campaign 'study' is paused: no lease is renewed"),
        ("closed", False, "campaign_closed", "campaign 'study' is closed: it takes no more votes"),
        ("closed", True, "campaign_closed", "campaign 'study' is closed: it takes no more votes"),
        ("draft", False, "campaign_closed", "campaign 'study' is draft: it takes no more votes"),
    ],
)
def test_a_campaign_that_takes_no_answer_says_which_and_why(status, renewing, code, message):
    campaign = Campaign(slug="study", title="A study", status=status)
    with pytest.raises(ApplicationError, match=f"^{message}$") as refused:
        check_campaign_takes_answers(campaign, renewing=renewing)
    assert (refused.value.code, refused.value.status) == (code, 409)


def test_renewing_a_lease_under_a_forged_token_is_a_404(arena_campaign):
    arena_campaign()
    with pytest.raises(ApplicationError, match="^no comparison with this token$") as refused:
        extend_lease(token="forged-token", participant=participant())
    assert (refused.value.code, refused.value.status) == ("not_found", 404)


def test_renewing_someone_else_s_a_voted_or_an_expired_comparison_is_refused_word_for_word(arena_campaign):
    campaign = arena_campaign(per_queue=3, votes_per_pair=5)
    voter = participant()
    comparison = issue_comparison(campaign=campaign, participant=voter)
    with pytest.raises(ApplicationError, match="^this comparison was issued to another participant$") as foreign:
        extend_lease(token=comparison.token, participant=participant())
    assert (foreign.value.code, foreign.value.status) == ("forbidden", 403)
    # A lease runs until lease_until, not through it: at that very instant it is over.
    with pytest.raises(ApplicationError, match="^this comparison expired; ask for the next one$") as lapsed:
        extend_lease(token=comparison.token, participant=voter, now=comparison.lease_until)
    assert (lapsed.value.code, lapsed.value.status) == ("expired", 410)
    # A microsecond before, it is renewed for another lease from then.
    just_before = comparison.lease_until - timedelta(microseconds=1)
    assert extend_lease(token=comparison.token, participant=voter, now=just_before).lease_until == (
        just_before + issuing.LEASE
    )
    cast_votes(token=comparison.token, participant=voter, votes=BOTH, dwell_ms=10)
    with pytest.raises(ApplicationError, match="^this comparison has already been voted on$") as voted:
        extend_lease(token=comparison.token, participant=voter)
    assert (voted.value.code, voted.value.status) == ("already_voted", 409)
    other = issue_comparison(campaign=campaign, participant=voter)
    Comparison.objects.filter(pk=other.pk).update(status=Comparison.Status.EXPIRED)
    with pytest.raises(ApplicationError, match="^this comparison expired; ask for the next one$") as expired:
        extend_lease(token=other.token, participant=voter)
    assert (expired.value.code, expired.value.status) == ("expired", 410)


# --- what a held comparison bars, and what a lapsed one gives back ----------------------------------------------


def test_a_held_comparison_s_sets_are_barred_from_the_prefetch_and_an_expired_one_s_are_not(arena_campaign):
    # Given three generators with one set each (A, B, C) and room for many votes, and a participant holding A-B,
    campaign = arena_campaign(generators=3, prompts=1, per_queue=1, votes_per_pair=5)
    voter = participant()
    now = timezone.now()
    held = issue_comparison(campaign=campaign, participant=voter, now=now)
    # when they prefetch, every other pair holds A or B, which are on their screen: nothing is ready;
    with pytest.raises(NothingReady):
        issue_comparison(campaign=campaign, participant=voter, exclude_tokens=(held.token,), now=now)
    # once that lease ran out and was expired, A and B were never revealed: a pair with one of them and C is issued
    # (not A-B again, which they saw).
    later = now + issuing.LEASE + timedelta(seconds=1)
    following = issue_comparison(campaign=campaign, participant=voter, now=later)
    assert Comparison.objects.get(pk=held.pk).status == Comparison.Status.EXPIRED
    assert len(sets(following) & sets(held)) == 1


# --- the roll: gold checks and repeats at their rates' boundaries ---------------------------------------------


def test_a_simulated_participant_gets_preference_comparisons_only_and_a_person_the_gold_check(arena_campaign):
    campaign = arena_campaign(per_queue=3, votes_per_pair=5)
    campaign.gold_rate = 0.5
    campaign.save()
    # A roll of 0 is a gold check for a person; a simulated judge is never quality-scored, so never given one.
    judged = issue_comparison(campaign=campaign, participant=participant(ParticipantKind.SIMULATED), rng=Rolls(0.0))
    assert not judged.is_gold
    assert judged.repeat_of_id is None
    assert issue_comparison(campaign=campaign, participant=participant(), rng=Rolls(0.0)).is_gold


def test_a_gold_rate_of_0_gives_no_gold_check_even_on_a_roll_of_0(arena_campaign):
    campaign = arena_campaign(per_queue=3, votes_per_pair=5)
    campaign.gold_rate = 0.0
    campaign.save()
    comparison = issue_comparison(campaign=campaign, participant=participant(), rng=Rolls(0.0))
    assert not comparison.is_gold
    assert not Population.objects.filter(decoy_of__isnull=False).exists()


def checked_campaign(arena_campaign, *, gold_rate: float, repeat_rate: float):  # type: ignore[no-untyped-def]
    """A three-generator campaign with these gold and repeat rates, and a participant who has not voted yet."""
    campaign = arena_campaign(generators=3, per_queue=4, votes_per_pair=5)
    campaign.gold_rate, campaign.repeat_rate = gold_rate, repeat_rate
    campaign.save()
    return campaign, participant()


def test_a_roll_equal_to_the_gold_rate_is_neither_gold_nor_a_repeat_when_repeats_are_off(arena_campaign):
    # Given a campaign with gold checks (30%) but no repeats, and a participant with three votes (a repeat could be
    # due),
    campaign, voter = checked_campaign(arena_campaign, gold_rate=0.3, repeat_rate=0.0)
    for _ in range(3):
        comparison = issue_comparison(campaign=campaign, participant=voter, rng=Rolls(0.9))
        cast_votes(token=comparison.token, participant=voter, votes=BOTH, dwell_ms=10)
    # when the roll lands exactly on the gold rate (gold is a roll below 0.3, a repeat one below 0.3 + 0),
    comparison = issue_comparison(campaign=campaign, participant=voter, rng=Rolls(0.3))
    # then it is a preference comparison.
    assert not comparison.is_gold
    assert comparison.repeat_of_id is None


def test_a_gold_check_reserves_no_use_of_its_sets_and_is_kept_under_its_client(arena_campaign):
    campaign = arena_campaign(per_queue=3, votes_per_pair=5)
    campaign.gold_rate = 0.5
    campaign.save()
    gold = issue_comparison(campaign=campaign, participant=participant(), rng=Rolls(0.0), client="browser")
    assert gold.is_gold
    # Its client is kept: once voted on, its sets are revealed to the browser's other sessions too.
    assert Comparison.objects.get(pk=gold.pk).client_hash == "browser"
    assert list(Population.objects.filter(pk__in=sets(gold)).values_list("reserved", "uses")) == [(0, 0), (0, 0)]


def test_a_repeat_is_kept_under_its_client(arena_campaign):
    # Given a campaign with repeats and a participant with three votes in one browser (a repeat is due),
    campaign = arena_campaign(generators=3, per_queue=4, votes_per_pair=5)
    campaign.repeat_rate = 0.5
    campaign.save()
    voter = participant()
    for _ in range(3):
        comparison = issue_comparison(campaign=campaign, participant=voter, rng=Rolls(0.9), client="browser")
        cast_votes(token=comparison.token, participant=voter, votes=BOTH, dwell_ms=10)
    # when the roll asks for a repeat, it is issued under that browser like the comparisons before it.
    repeat = issue_comparison(campaign=campaign, participant=voter, rng=Rolls(0.0), client="browser")
    assert repeat.repeat_of_id is not None
    assert Comparison.objects.get(pk=repeat.pk).client_hash == "browser"


def test_a_gold_check_is_never_repeated(arena_campaign):
    # Given a campaign with gold checks and repeats, and a participant whose only comparison old enough to repeat
    # (REPEAT_MIN_GAP votes ago) was a gold check,
    campaign, voter = checked_campaign(arena_campaign, gold_rate=0.3, repeat_rate=0.5)
    rolls = [0.0] + [0.9] * issuing.REPEAT_MIN_GAP  # a gold check, then preference comparisons
    for roll in rolls:
        comparison = issue_comparison(campaign=campaign, participant=voter, rng=Rolls(roll))
        cast_votes(token=comparison.token, participant=voter, votes=BOTH, dwell_ms=10)
    assert Comparison.objects.filter(participant=voter, is_gold=True, status="voted").count() == 1
    # when the roll asks for a repeat (0.3 <= roll < 0.3 + 0.5), none is due: the gold check measured the
    # participant, not the generators, and is not shown again; a preference comparison comes instead.
    comparison = issue_comparison(campaign=campaign, participant=voter, rng=Rolls(0.5))
    assert comparison.repeat_of_id is None
    assert not comparison.is_gold


# --- expiry of lapsed leases: at most once a second, and once before "nothing ready" -------------------------


def lapse_at(comparison: Comparison, when) -> None:  # type: ignore[no-untyped-def]
    Comparison.objects.filter(pk=comparison.pk).update(lease_until=when)


def test_lapsed_leases_are_expired_again_exactly_one_interval_after_the_last_expiry(arena_campaign):
    campaign = arena_campaign(per_queue=4, votes_per_pair=5)
    now = timezone.now()
    held = issue_comparison(campaign=campaign, participant=participant(), now=now)  # expiry ran at `now`
    lapse_at(held, now + timedelta(seconds=0.5))
    issue_comparison(campaign=campaign, participant=participant(), now=now + issuing.EXPIRY_INTERVAL)
    assert Comparison.objects.get(pk=held.pk).status == Comparison.Status.EXPIRED


def test_a_second_issue_at_the_same_instant_leaves_expiry_to_the_first(arena_campaign):
    campaign = arena_campaign(per_queue=4, votes_per_pair=5)
    now = timezone.now()
    held = issue_comparison(campaign=campaign, participant=participant(), now=now)  # expiry ran at `now`
    lapse_at(held, now)
    issue_comparison(campaign=campaign, participant=participant(), now=now)  # something is ready: no expiry
    assert Comparison.objects.get(pk=held.pk).status == Comparison.Status.ISSUED


def test_nothing_ready_right_after_an_expiry_runs_no_second_one(arena_campaign, monkeypatch):
    campaign = arena_campaign(per_queue=0)
    runs: list[int] = []
    expire = issuing.expire_leases
    monkeypatch.setattr(issuing, "expire_leases", lambda **kw: runs.append(kw["campaign_id"]) or expire(**kw))
    with pytest.raises(NothingReady):
        issue_comparison(campaign=campaign, participant=participant())
    assert runs == [campaign.pk]


# --- which pair comes next ------------------------------------------------------------------------------------


def three_generators(arena_campaign, policy: str):  # type: ignore[no-untyped-def]
    campaign = arena_campaign(generators=3, prompts=1, per_queue=6, votes_per_pair=5)
    campaign.sampling_policy = policy
    campaign.save()
    return campaign, list(campaign.generators.order_by("pk").values_list("pk", flat=True))


def test_the_balanced_policy_takes_the_pair_with_the_fewest_votes_of_the_first_criterion(arena_campaign):
    # Given three generators whose tallies (first criterion, all prompts) hold 4 votes on two of the three pairs,
    campaign, (g0, g1, g2) = three_generators(arena_campaign, "balanced")
    diversity = campaign.criteria.get(key="diversity")
    for a, b in ((g0, g1), (g0, g2)):
        PairTally.objects.create(
            campaign=campaign, criterion=diversity, category="", generator_a_id=a, generator_b_id=b, a_wins=4
        )
    # then whatever the draw, the next new pair is the unvoted one.
    for seed in range(6):
        comparison = issue_comparison(campaign=campaign, participant=participant(), rng=random.Random(seed))
        assert generators_of(comparison) == {g1, g2}, seed


def test_a_campaign_without_criteria_still_issues_new_pairs(arena_campaign):
    campaign, _ = three_generators(arena_campaign, "balanced")
    campaign.criteria.all().delete()
    comparison = issue_comparison(campaign=Campaign.objects.get(pk=campaign.pk), participant=participant())
    assert len(generators_of(comparison)) == 2


def test_the_active_policy_draws_pairs_by_the_active_weights(arena_campaign, monkeypatch):
    # Given active sampling whose weights put everything on one pair,
    campaign, (g0, g1, g2) = three_generators(arena_campaign, "active")
    monkeypatch.setattr(issuing, "_active_weights", lambda c: {(g0, g1): 0.0, (g0, g2): 1.0, (g1, g2): 0.0})
    # then every new pair is that pair.
    for seed in range(6):
        comparison = issue_comparison(campaign=campaign, participant=participant(), rng=random.Random(seed))
        assert generators_of(comparison) == {g0, g2}, seed


def test_active_weights_come_from_the_sandwich_intervals_of_the_first_criterion(arena_campaign):
    from arena.sampling import active_weights
    from arena.selectors import get_leaderboard

    # Given three generators with votes on every pair (one vote a pair, so the pairs spread), each rated,
    campaign = arena_campaign(generators=3, prompts=1, per_queue=8, votes_per_pair=1)
    campaign.sampling_policy = "active"
    campaign.save()
    rng = random.Random(3)
    for index in range(8):
        voter = participant()
        comparison = issue_comparison(campaign=campaign, participant=voter, rng=rng)
        choice = ("left", "right", "tie", "left")[index % 4]
        votes = [VoteInput("diversity", choice), VoteInput("quality", "left")]
        cast_votes(token=comparison.token, participant=voter, votes=votes, dwell_ms=10)
    board = get_leaderboard(campaign=campaign, criterion="diversity", intervals="sandwich")
    ids = dict(campaign.generators.values_list("name", "pk"))
    assert sorted(row["generator"] for row in board["rows"] if row["votes"]) == sorted(ids)
    # then the weights are those of active sampling on that board (an unbounded end, None in JSON, is infinite).
    inf = float("inf")
    standings = {
        ids[row["generator"]]: SimpleNamespace(
            rating=row["rating"],
            ci_low=-inf if row["ci_low"] is None else row["ci_low"],
            ci_high=inf if row["ci_high"] is None else row["ci_high"],
            votes=row["votes"],
        )
        for row in board["rows"]
    }
    expected = active_weights(standings)
    weights = issuing._active_weights(campaign)
    assert weights.keys() == expected.keys()
    assert weights == pytest.approx(expected, rel=1e-12)
    assert len({round(w, 12) for w in weights.values()}) == 3  # three different pairs: three different weights


def test_a_prompt_after_the_first_two_tried_is_served_when_only_it_can_be(arena_campaign):
    # Given three prompts of which only one has sets of both generators,
    campaign = arena_campaign(generators=2, prompts=3, per_queue=3, votes_per_pair=5)
    lone, *others = campaign.prompts.order_by("pk")
    second_generator = campaign.generators.order_by("pk").last()
    Population.objects.filter(prompt__in=others, generator=second_generator).delete()
    # then every participant is served on it, whatever order the prompts are tried in.
    for seed in range(8):
        comparison = issue_comparison(campaign=campaign, participant=participant(), rng=random.Random(seed))
        assert comparison.prompt_id == lone.pk, seed


def test_a_new_pair_skips_a_barred_first_set_for_the_next_one(arena_campaign):
    # Given one prompt with sets A1, A2 and B1, B2 of two generators, a participant holding A1-B1 (the first sets
    # in serving order), and A2 and B2 used as much as A1 and B1 (so A1 and B1 still come first),
    campaign = arena_campaign(generators=2, prompts=1, per_queue=2, votes_per_pair=5)
    voter = participant()
    held = issue_comparison(campaign=campaign, participant=voter)
    Population.objects.exclude(pk__in=sets(held)).update(uses=1)
    # when they prefetch, the candidates of each side start with a barred set:
    following = issue_comparison(campaign=campaign, participant=voter, exclude_tokens=(held.token,))
    # then the sets after them are taken.
    assert sets(following) == set(Population.objects.exclude(pk__in=sets(held)).values_list("pk", flat=True))


def test_a_pair_in_progress_with_a_set_revealed_to_the_participant_is_not_issued_to_them(arena_campaign):
    # Given sets A1, A2 and B1, B2, a participant who voted A1-B1 (both revealed to them), and another who voted
    # on the pair of A1 with the other B set (a pair in progress: 1 of 3 votes),
    campaign = arena_campaign(generators=2, prompts=1, per_queue=2, votes_per_pair=3)
    (a1, a2), (b1, b2) = (
        list(Population.objects.filter(generator=g).order_by("pk")) for g in campaign.generators.order_by("pk")
    )
    now = timezone.now()
    voter, other = participant(), participant()
    for person, left, right, at in ((voter, a1, b1, now), (other, a1, b2, now + timedelta(seconds=1))):
        Comparison.objects.create(
            campaign=campaign,
            participant=person,
            prompt=left.prompt,
            left_population=left,
            right_population=right,
            status=Comparison.Status.VOTED,
            issued_at=at,
            lease_until=at + issuing.LEASE,
            voted_at=at,
        )
    Population.objects.filter(pk=a1.pk).update(uses=2)
    Population.objects.filter(pk__in=[b1.pk, b2.pk]).update(uses=1)
    # when the first participant asks, then A1 is not shown to them again: they get the new pair A2-B2.
    comparison = issue_comparison(campaign=campaign, participant=voter, now=now + timedelta(seconds=2))
    assert sets(comparison) == {a2.pk, b2.pk}


def shown(campaign, person, left, right, status, at):  # type: ignore[no-untyped-def]
    """A comparison of two sets as a past issue left it: voted, expired, or issued under a lease from `at`."""
    comparison = Comparison.objects.create(
        campaign=campaign,
        participant=person,
        prompt=left.prompt,
        left_population=left,
        right_population=right,
        status=status,
        lease_until=timezone.now() + issuing.LEASE,
        voted_at=at if status == Comparison.Status.VOTED else None,
    )
    # issued_at is set on creation (auto_now_add): backdated afterwards.
    Comparison.objects.filter(pk=comparison.pk).update(issued_at=at, lease_until=at + issuing.LEASE)
    return comparison


def two_sides(campaign):  # type: ignore[no-untyped-def]
    return [list(Population.objects.filter(generator=g).order_by("pk")) for g in campaign.generators.order_by("pk")]


def test_pairs_in_progress_are_taken_by_their_first_issue_a_live_lease_included(arena_campaign):
    # Given two pairs in progress (1 vote of 3): A1-B1, first issued 30 s ago to someone who still holds it (a live
    # lease) and voted on 10 s ago by another, and A2-B2, voted on 20 s ago,
    campaign = arena_campaign(generators=2, prompts=1, per_queue=3, votes_per_pair=3)
    (a1, a2, _), (b1, b2, _) = two_sides(campaign)
    now = timezone.now()
    shown(campaign, participant(), a1, b1, Comparison.Status.ISSUED, now - timedelta(seconds=30))
    shown(campaign, participant(), a1, b1, Comparison.Status.VOTED, now - timedelta(seconds=10))
    shown(campaign, participant(), a2, b2, Comparison.Status.VOTED, now - timedelta(seconds=20))
    Population.objects.filter(pk__in=[a1.pk, b1.pk]).update(uses=1, reserved=1)
    Population.objects.filter(pk__in=[a2.pk, b2.pk]).update(uses=1)
    # when a new participant asks, then they get the pair first issued earliest: A1-B1.
    comparison = issue_comparison(campaign=campaign, participant=participant(), now=now)
    assert sets(comparison) == {a1.pk, b1.pk}


def test_the_pairs_in_progress_read_reaches_past_every_pair_a_participant_may_not_get(arena_campaign):
    # Given sets A1..A4 and B1..B4 (2 votes wanted a pair), pairs in progress A1-B1 (voted by Z, oldest), A2-B2 and
    # A4-B4 (voted by others), and Z's lapsed comparisons A2-B2 and A3-B3 (seen by Z, not revealed); and Y, whose
    # only comparison, A2-B2, lapsed,
    campaign = arena_campaign(generators=2, prompts=1, per_queue=4, votes_per_pair=2)
    (a1, a2, a3, a4), (b1, b2, b3, b4) = two_sides(campaign)
    now = timezone.now()
    z, y = participant(), participant()
    past = now - timedelta(minutes=30)
    for person, left, right, status in (
        (z, a1, b1, Comparison.Status.VOTED),
        (participant(), a2, b2, Comparison.Status.VOTED),
        (participant(), a4, b4, Comparison.Status.VOTED),
        (z, a2, b2, Comparison.Status.EXPIRED),
        (z, a3, b3, Comparison.Status.EXPIRED),
        (y, a2, b2, Comparison.Status.EXPIRED),
    ):
        shown(campaign, person, left, right, status, past)
        past += timedelta(seconds=1)
    Population.objects.filter(pk__in=[a1.pk, b1.pk, a2.pk, b2.pk, a4.pk, b4.pk]).update(uses=1)
    # when Z asks (3 pairs seen, 2 sets revealed), they are given the one pair in progress left to them, A4-B4;
    assert sets(issue_comparison(campaign=campaign, participant=z, now=now)) == {a4.pk, b4.pk}
    # and when Y asks (1 pair seen, no set revealed), the oldest pair in progress they have not seen, A1-B1.
    assert sets(issue_comparison(campaign=campaign, participant=y, now=now)) == {a1.pk, b1.pk}
