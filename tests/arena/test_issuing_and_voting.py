"""issue_comparison and cast_votes: who sees what, and what is never counted."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Participant
from arena.issuing import NothingReady, issue_comparison
from arena.models import Comparison, Vote
from arena.voting import MAX_DWELL_MS, VoteInput, cast_votes
from core.errors import ApplicationError
from generation.models import Population

pytestmark = pytest.mark.django_db

BOTH = [VoteInput("diversity", "left"), VoteInput("quality", "tie")]


def participant() -> Participant:
    return Participant.objects.create()


def test_a_comparison_shows_two_generators_on_one_prompt_and_reveals_them_after_the_vote(arena_campaign):
    campaign = arena_campaign()
    voter = participant()
    comparison = issue_comparison(campaign=campaign, participant=voter)
    left, right = comparison.left_population, comparison.right_population
    assert left.prompt_id == right.prompt_id == comparison.prompt_id
    assert left.generator_id != right.generator_id
    assert comparison.lease_until > timezone.now() + timedelta(minutes=9)
    reveal = cast_votes(token=comparison.token, participant=voter, votes=BOTH, dwell_ms=3000)
    assert (reveal.left.generator, reveal.right.generator) == (left.generator.name, right.generator.name)
    assert dict(Vote.objects.values_list("criterion__key", "choice")) == {"diversity": "left", "quality": "tie"}
    comparison.refresh_from_db()
    assert comparison.status == "voted"


def test_sides_are_randomised(arena_campaign):
    campaign = arena_campaign(per_queue=40, votes_per_pair=1)
    from scipy.stats import binomtest

    rng = random.Random(4)
    first = campaign.generators.order_by("pk").first()
    on_left = 0
    for _ in range(30):
        comparison = issue_comparison(campaign=campaign, participant=participant(), rng=rng)
        on_left += comparison.left_population.generator_id == first.pk
    # Either side equally likely: an exact test that a 29:1 split (p < 1e-6) fails, not "both were seen".
    assert binomtest(on_left, 30, 0.5).pvalue > 0.001, on_left


def test_a_reload_gets_the_same_comparison_and_a_prefetch_gets_another(arena_campaign):
    campaign = arena_campaign()
    voter = participant()
    first = issue_comparison(campaign=campaign, participant=voter)
    assert issue_comparison(campaign=campaign, participant=voter).pk == first.pk
    second = issue_comparison(campaign=campaign, participant=voter, exclude_tokens=(first.token,))
    assert second.pk != first.pk
    with pytest.raises(ApplicationError, match="vote on them first"):
        issue_comparison(campaign=campaign, participant=voter, exclude_tokens=(first.token, second.token))


def test_a_participant_never_sees_a_revealed_set_again_and_is_given_every_fresh_one(arena_campaign):
    # A vote reveals both sets' generators, so neither is shown to the voter again: with 4 sets a side, 4
    # comparisons, no set twice. The new-pair search reads only the first len(seen) + len(barred) + 1 sets of each
    # side per prompt: the last fresh pair must still be found when the other sets are all barred.
    campaign = arena_campaign(per_queue=4, votes_per_pair=10)
    voter = participant()
    shown: list[int] = []
    for _ in range(4):
        comparison = issue_comparison(campaign=campaign, participant=voter, rng=random.Random(len(shown)))
        shown += [comparison.left_population_id, comparison.right_population_id]
        cast_votes(token=comparison.token, participant=voter, votes=BOTH, dwell_ms=10)
    assert len(set(shown)) == 8 == Population.objects.filter(status=Population.Status.READY).count()
    with pytest.raises(NothingReady):
        issue_comparison(campaign=campaign, participant=voter)


def test_partly_voted_pairs_are_finished_first_and_full_ones_are_not_issued_again(arena_campaign):
    campaign = arena_campaign(per_queue=3, votes_per_pair=2)
    first_voter = participant()
    started = issue_comparison(campaign=campaign, participant=first_voter)
    cast_votes(token=started.token, participant=first_voter, votes=BOTH, dwell_ms=10)
    pair = {started.left_population_id, started.right_population_id}
    # The next participant gets the started pair (sides drawn again), which then has its 2 votes.
    second_voter = participant()
    finishing = issue_comparison(campaign=campaign, participant=second_voter)
    assert {finishing.left_population_id, finishing.right_population_id} == pair
    cast_votes(token=finishing.token, participant=second_voter, votes=BOTH, dwell_ms=10)
    third = issue_comparison(campaign=campaign, participant=participant())
    assert {third.left_population_id, third.right_population_id} != pair


def test_nothing_ready_when_generation_is_behind(arena_campaign):
    campaign = arena_campaign(per_queue=0)
    with pytest.raises(NothingReady, match="still making image sets"):
        issue_comparison(campaign=campaign, participant=participant())
    assert not Comparison.objects.exists()


@pytest.mark.parametrize(
    ("votes", "dwell_ms", "message"),
    [
        ([VoteInput("diversity", "left")], 10, "missing: quality"),
        (
            [*BOTH, VoteInput("novelty", "left")],
            10,
            "unknown criterion 'novelty' (this campaign asks: diversity, quality)",
        ),
        ([VoteInput("diversity", "up"), VoteInput("quality", "tie")], 10, "unknown choice 'up'"),
        ([*BOTH, VoteInput("quality", "left")], 10, "'quality' is answered twice"),
        ([], 10, "every criterion needs an answer; missing: diversity, quality"),
        (BOTH, -5, "dwell_ms must be"),
        (BOTH, -1, "dwell_ms must be"),
        (BOTH, MAX_DWELL_MS + 1, "dwell_ms must be"),
        (BOTH, 10**12, "dwell_ms must be"),
        (BOTH, True, "dwell_ms must be"),
        (BOTH, 2.5, "dwell_ms must be"),
    ],
)
def test_bad_votes_are_refused_with_a_clear_message_and_change_nothing(arena_campaign, votes, dwell_ms, message):
    campaign = arena_campaign()
    voter = participant()
    comparison = issue_comparison(campaign=campaign, participant=voter)
    with pytest.raises(ApplicationError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        cast_votes(token=comparison.token, participant=voter, votes=votes, dwell_ms=dwell_ms)
    assert error.value.status == 400
    assert not Vote.objects.exists()
    comparison.refresh_from_db()
    assert comparison.status == "issued"


@pytest.mark.parametrize("dwell_ms", [0, MAX_DWELL_MS], ids=["zero", "a-day"])
def test_a_dwell_time_at_either_end_of_its_range_is_taken(arena_campaign, dwell_ms):
    # The range is 0 to a day inclusive; the server then caps the time at how long the comparison has existed.
    campaign = arena_campaign()
    voter = participant()
    comparison = issue_comparison(campaign=campaign, participant=voter)
    cast_votes(token=comparison.token, participant=voter, votes=BOTH, dwell_ms=dwell_ms)
    existed_ms = (timezone.now() - comparison.issued_at).total_seconds() * 1000
    dwells = list(Vote.objects.values_list("dwell_ms", flat=True))
    assert len(dwells) == 2
    assert all(0 <= d <= min(dwell_ms, existed_ms + 1) for d in dwells)
    assert len(set(dwells)) == 1


def test_the_reveal_names_each_side_by_generator_label_and_stand_in_flag(arena_campaign):
    # Given a campaign whose second generator has no display name and is an offline stand-in,
    campaign = arena_campaign()
    stand_in = campaign.generators.get(name="secret-generator-1")
    stand_in.display_name = ""
    stand_in.is_offline_standin = True
    stand_in.save()
    voter = participant()
    comparison = issue_comparison(campaign=campaign, participant=voter)
    # when the participant votes, the reveal shows each side as it stood: its generator's name, its label (the
    # display name, else the name) and whether it was a stand-in, and the votes cast so far.
    shown = cast_votes(token=comparison.token, participant=voter, votes=BOTH, dwell_ms=10).as_dict()
    expected = {
        "secret-generator-0": {
            "generator": "secret-generator-0",
            "display_name": "Model 0",
            "is_offline_standin": False,
        },
        "secret-generator-1": {
            "generator": "secret-generator-1",
            "display_name": "secret-generator-1",
            "is_offline_standin": True,
        },
    }
    left, right = comparison.left_population.generator.name, comparison.right_population.generator.name
    assert shown == {"left": expected[left], "right": expected[right], "votes_cast": 1}


def test_second_vote_foreign_participant_expired_and_forged_tokens_are_refused(arena_campaign):
    campaign = arena_campaign()
    voter, stranger = participant(), participant()
    comparison = issue_comparison(campaign=campaign, participant=voter)
    with pytest.raises(ApplicationError, match="issued to another participant") as foreign:
        cast_votes(token=comparison.token, participant=stranger, votes=BOTH, dwell_ms=10)
    assert foreign.value.status == 403
    with pytest.raises(ApplicationError, match="^no comparison with this token$") as forged:
        cast_votes(token="forged-token", participant=voter, votes=BOTH, dwell_ms=10)
    assert forged.value.status == 404
    later = timezone.now() + timedelta(minutes=11)
    with pytest.raises(ApplicationError, match="expired") as expired:
        cast_votes(token=comparison.token, participant=voter, votes=BOTH, dwell_ms=10, now=later)
    assert expired.value.status == 410
    assert not Vote.objects.exists()
    cast_votes(token=comparison.token, participant=voter, votes=BOTH, dwell_ms=10)
    with pytest.raises(ApplicationError, match="already been voted on") as replay:
        cast_votes(token=comparison.token, participant=voter, votes=BOTH, dwell_ms=10)
    assert replay.value.status == 409
    assert Vote.objects.count() == 2


def test_a_closed_campaign_issues_nothing(arena_campaign):
    campaign = arena_campaign()
    campaign.status = "paused"
    campaign.save()
    with pytest.raises(ApplicationError, match="is paused, not open"):
        issue_comparison(campaign=campaign, participant=participant())


def test_a_participant_stops_at_the_quota_and_cannot_overshoot_it_with_held_comparisons(arena_campaign):
    campaign = arena_campaign(per_queue=4, votes_per_pair=5)
    campaign.participant_quota = 1
    campaign.save()
    voter = participant()
    first = issue_comparison(campaign=campaign, participant=voter)
    second = issue_comparison(campaign=campaign, participant=voter, exclude_tokens=(first.token,))
    cast_votes(token=first.token, participant=voter, votes=BOTH, dwell_ms=10)
    with pytest.raises(ApplicationError, match="quota of 1") as error:
        cast_votes(token=second.token, participant=voter, votes=BOTH, dwell_ms=10)
    assert error.value.status == 409
    with pytest.raises(ApplicationError, match="quota of 1"):
        issue_comparison(campaign=campaign, participant=voter)
    assert Vote.objects.count() == 2


def test_a_campaign_needs_two_generators_to_open(arena_campaign):
    from annotation.services import set_campaign_status

    campaign = arena_campaign(generators=1)
    campaign.status = "draft"
    campaign.save()
    with pytest.raises(ApplicationError, match="at least two active generators"):
        set_campaign_status(campaign=campaign, status="open")


def test_active_sampling_gives_a_generator_nobody_has_judged_yet_the_top_weight(arena_campaign):
    from arena.issuing import _active_weights
    from tests.factories import GeneratorFactory

    campaign = arena_campaign(generators=2, per_queue=30, votes_per_pair=1)
    campaign.sampling_policy = "active"
    campaign.save()
    rng = random.Random(7)
    for _ in range(12):
        voter = participant()
        comparison = issue_comparison(campaign=campaign, participant=voter, rng=rng)
        cast_votes(token=comparison.token, participant=voter, votes=BOTH, dwell_ms=10)
    newcomer = GeneratorFactory(name="newcomer")
    campaign.generators.add(newcomer)
    weights = _active_weights(campaign)
    established = [w for pair, w in weights.items() if newcomer.pk not in pair]
    with_newcomer = [w for pair, w in weights.items() if newcomer.pk in pair]
    assert len(established) == 1
    assert len(with_newcomer) == 2
    assert min(with_newcomer) >= established[0] > 0
    assert sum(weights.values()) == pytest.approx(1.0)


def test_on_postgresql_the_vote_path_s_statements_are_prepared_after_a_few_runs(arena_campaign):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's (run with DATABASE_URL)")
    # Given six participants who each were issued a comparison and voted on it,
    campaign = arena_campaign(per_queue=4, votes_per_pair=10)
    for _ in range(6):
        voter = participant()
        comparison = issue_comparison(campaign=campaign, participant=voter)
        cast_votes(token=comparison.token, participant=voter, votes=BOTH, dwell_ms=10)
    # then the connection holds the hot path's statements prepared: PostgreSQL no longer plans them anew.
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = " ".join(row[0] for row in cursor.fetchall())
    assert "arena_comparison" in prepared
    assert "generation_population" in prepared


def _comparison_rows_read(plan: dict) -> int:
    """Rows a plan read from arena_comparison: kept or filtered out, in every loop."""
    read = 0
    if plan.get("Relation Name") == "arena_comparison":
        kept = (
            plan["Actual Rows"] + plan.get("Rows Removed by Filter", 0) + plan.get("Rows Removed by Index Recheck", 0)
        )
        read += kept * plan["Actual Loops"]
    return read + sum(_comparison_rows_read(child) for child in plan.get("Plans", ()))


def _rows_handled(plan: dict) -> int:
    """Rows every node of a plan produced or threw away, over all its loops: the work the plan did."""
    handled = plan["Actual Rows"] + sum(
        plan.get(key, 0) for key in ("Rows Removed by Filter", "Rows Removed by Join Filter")
    )
    return handled * plan["Actual Loops"] + sum(_rows_handled(child) for child in plan.get("Plans", ()))


def _generic_plan(statement: str, params: dict) -> tuple[dict, list]:
    """EXPLAIN ANALYZE of `statement` as PostgreSQL runs a prepared statement planned for any parameters."""
    import json
    import re

    from django.db import connection
    from psycopg import sql

    order = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))  # each name once, first use first
    text = re.sub(r"%\((\w+)\)s", lambda m: f"${order.index(m[1]) + 1}", statement)
    raw = connection.connection
    with connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        try:
            cursor.execute(f"PREPARE generic AS {text}")
            values = ", ".join(sql.Literal(params[name]).as_string(raw) for name in order)
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE generic({values})")
            plan = cursor.fetchone()[0]
            cursor.execute(f"EXECUTE generic({values})")
            rows = cursor.fetchall()
        finally:
            cursor.execute("DEALLOCATE ALL")
            cursor.execute("RESET plan_cache_mode")
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return plan[0]["Plan"], rows


def test_on_postgresql_the_pairs_in_progress_are_read_without_walking_the_campaign_s_history(arena_campaign):

    from django.db import connection

    from arena.statements import unfinished_pairs_statement

    if connection.vendor != "postgresql":
        pytest.skip("plans are PostgreSQL's (run with DATABASE_URL)")
    # Given a campaign whose first 40 comparisons finished their pairs (two votes each), and one pair half voted,
    campaign = arena_campaign(size=2, prompts=2, per_queue=12, votes_per_pair=2)
    for _ in range(41):
        voter = participant()
        comparison = issue_comparison(campaign=campaign, participant=voter)
        cast_votes(token=comparison.token, participant=voter, votes=BOTH, dwell_ms=10)
    assert Comparison.objects.filter(campaign=campaign).count() == 41
    # when PostgreSQL runs the pairs-in-progress read with a plan made for any parameters, as a prepared
    # statement gets, and before the tables have statistics (a new campaign's first minutes),
    plan, pairs = _generic_plan(*unfinished_pairs_statement(campaign, limit=5, now=timezone.now()))
    # then it finds the half-voted pair and reads only the comparisons of the sets in use, not all 41 (each
    # from both of its sets).
    assert len(pairs) == 1
    assert _comparison_rows_read(plan) <= 4


def test_on_postgresql_many_pairs_in_progress_cost_in_proportion_not_in_square(arena_campaign):
    from django.db import connection

    from arena.statements import unfinished_pairs_statement

    if connection.vendor != "postgresql":
        pytest.skip("plans are PostgreSQL's (run with DATABASE_URL)")
    # Given 60 pairs in progress at once (one vote each of the three wanted), on tables without statistics,
    campaign = arena_campaign(size=2, prompts=1, per_queue=60, votes_per_pair=3)
    first, second = campaign.generators.order_by("pk")
    lefts, rights = (list(g.populations.order_by("pk")) for g in (first, second))
    voter = participant()
    now = timezone.now()
    for left, right in zip(lefts, rights, strict=True):
        Comparison.objects.create(
            campaign=campaign,
            participant=voter,
            prompt=left.prompt,
            left_population=left,
            right_population=right,
            status=Comparison.Status.VOTED,
            issued_at=now,
            lease_until=now + timedelta(minutes=10),
            voted_at=now,
        )
    Population.objects.filter(pk__in=[p.pk for p in lefts + rights]).update(uses=1)
    # when the pairs-in-progress read runs under a plan made for any parameters,
    plan, pairs = _generic_plan(*unfinished_pairs_statement(campaign, limit=5, now=now))
    # then it finds them, and its work grows with the 120 sets and 60 comparisons in use, not with their product:
    # checking each comparison's other side against the list of sets in use handled about 12,000 rows (the
    # statement here about 1,400).
    assert len(pairs) == 5
    assert _rows_handled(plan) < 12 * (120 + 60)


def test_a_set_held_only_by_a_lapsed_lease_is_served_even_within_a_second_of_the_last_expiry(arena_campaign):
    # Given one pair of sets with room for one comparison, issued to A (leases were expired then),
    campaign = arena_campaign(generators=2, prompts=1, per_queue=1, votes_per_pair=1)
    now = timezone.now()
    held = issue_comparison(campaign=campaign, participant=participant(), now=now)
    # and A's lease ran out a moment later (a short lease stands in for ten minutes),
    Comparison.objects.filter(pk=held.pk).update(lease_until=now + timedelta(seconds=0.1))
    # when B asks half a second after that expiry ran, when nothing else is ready,
    comparison = issue_comparison(campaign=campaign, participant=participant(), now=now + timedelta(seconds=0.5))
    # then the lapsed lease is expired after all and B gets its sets, each reserved once (B's), none spent.
    assert Comparison.objects.get(pk=held.pk).status == Comparison.Status.EXPIRED
    assert {comparison.left_population_id, comparison.right_population_id} == {
        held.left_population_id,
        held.right_population_id,
    }
    sets = Population.objects.filter(pk__in=[held.left_population_id, held.right_population_id])
    assert sorted(sets.values_list("reserved", "uses")) == [(1, 0), (1, 0)]


def test_the_issue_and_vote_paths_make_a_pinned_number_of_queries(arena_campaign, django_assert_num_queries):
    # Pinned so that a change that adds a round trip to the hot path is seen (and BENCHMARKS.md measured again).
    from annotation.selectors import get_live_campaign

    campaign = get_live_campaign(pk=arena_campaign(generators=2, prompts=1, per_queue=2).pk)  # as the API reads it
    voter = participant()
    now = timezone.now()
    # A new pair: lapsed leases expired (1, in a savepoint: 2 more), the history (1), pairs in progress (1), the
    # active generators (1), pair votes (1), the prompts (1), the candidates of one prompt (1), the insert (1) and
    # the reservation of both sets (1), in the issue's own savepoint (2).
    with django_assert_num_queries(13):
        comparison = issue_comparison(campaign=campaign, participant=voter, client="c", now=now)
    # The next issue within a second leaves expiry to the first (3 fewer).
    other = participant()
    with django_assert_num_queries(10):
        issue_comparison(campaign=campaign, participant=other, client="d", now=now + timedelta(seconds=0.5))
    later = now + timedelta(seconds=5)
    # The vote: the held comparison with everything around it (1), the votes and the status (2), both sets' uses
    # (1), the pair tallies of both criteria (1), in a savepoint (2).
    with django_assert_num_queries(7):
        cast_votes(token=comparison.token, participant=voter, votes=BOTH, dwell_ms=10, now=later)
