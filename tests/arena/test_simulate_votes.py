"""The simulated crowd: a metric votes through the arena's services, by its rules, and is kept apart from people."""

from __future__ import annotations

import io
import random
import re
from collections import Counter

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Participant
from arena.issuing import issue_comparison
from arena.models import Comparison, PairTally, Vote
from arena.selectors import get_leaderboard
from arena.selectors.metrics import get_agreement
from arena.selectors.progress import get_campaign_progress
from arena.simulation import judged_choice, plan_simulation, simulate_votes
from arena.voting import VoteInput, cast_votes
from generation.models import Population
from quality.selectors import get_quality_reports
from tests.arena.simulated import BEST_FIRST, generator_kind, measured_campaign
from tests.metrics.conftest import PALETTES

pytestmark = pytest.mark.django_db


def simulate(*args: str) -> str:
    out = io.StringIO()
    call_command("simulate_votes", *args, "--no-progress", stdout=out, stderr=io.StringIO())
    return out.getvalue()


def judged_votes(campaign, criterion: str = "diversity") -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    """(left generator kind, right generator kind, choice) of every simulated vote on `criterion`, in order cast."""
    votes = (
        Vote.objects.simulated()
        .filter(comparison__campaign=campaign, criterion__key=criterion)
        .order_by("comparison_id")
        .values_list(
            "comparison__left_population__generator__name", "comparison__right_population__generator__name", "choice"
        )
    )
    return [(generator_kind(left), generator_kind(right), choice) for left, right, choice in votes]


def better(left: str, right: str) -> str:
    return "left" if BEST_FIRST.index(left) < BEST_FIRST.index(right) else "right"


# --- the vote decision ------------------------------------------------------------------------------------


def test_the_judged_side_wins_and_noise_flips_it_at_its_rate() -> None:
    rng = random.Random(0)
    assert judged_choice("left", 0.0, rng) == ("left", False)
    assert judged_choice("right", 1.0, rng) == ("left", True)
    assert judged_choice(None, 1.0, rng) == ("tie", False), "no preference is a tie, never flipped"
    flips = sum(judged_choice("left", 0.3, rng)[1] for _ in range(4000))
    assert 0.27 < flips / 4000 < 0.33


# --- votes cast through the services ---------------------------------------------------------------------


def test_with_no_noise_the_side_the_metric_prefers_wins_every_vote():
    campaign = measured_campaign()

    output = simulate(
        "--campaign", "sim", "--criterion", "diversity", "--judge", "discrepancy:colour", "--comparisons", "12"
    )

    votes = judged_votes(campaign)
    assert len(votes) == 12
    assert all(choice == better(left, right) for left, right, choice in votes), votes
    # The criterion the judge does not speak to is answered tie, for every comparison.
    assert set(
        Vote.objects.filter(comparison__campaign=campaign, criterion__key="quality").values_list("choice", flat=True)
    ) == {"tie"}
    assert "12 comparisons voted" in output
    assert "0 flipped by noise" in output
    wins = Counter(choice for _, _, choice in votes)
    assert f"left {wins['left']}, right {wins['right']}, tie 0" in output


def test_an_attribute_judge_abstains_on_prompts_that_name_its_attribute():
    # "a red shape": the all-red set is what was asked, so discrepancy from uniform colour is no skew there.
    campaign = measured_campaign(caption="a red shape")

    output = simulate(
        "--campaign", "sim", "--criterion", "diversity", "--judge", "discrepancy:colour", "--comparisons", "6",
        "--noise", "0.5",
    )  # fmt: skip

    assert [choice for _, _, choice in judged_votes(campaign)] == ["tie"] * 6
    assert "0 flipped by noise" in output
    assert "preferred neither side in 6, 6 of them on prompts naming colour" in output
    # A set measure speaks to every prompt: faithfulness is a question a named colour asks.
    assert plan_simulation(campaign_slug="sim", criterion="quality", judge="vendi", comparisons=1).judge.speaks_to(
        "a red shape", ["red", "green"]
    )


def test_with_noise_one_every_vote_goes_to_the_other_side():
    campaign = measured_campaign()

    output = simulate(
        "--campaign", "sim", "--criterion", "diversity", "--judge", "discrepancy:colour", "--comparisons", "9",
        "--noise", "1",
    )  # fmt: skip

    votes = judged_votes(campaign)
    assert len(votes) == 9
    assert all(choice != better(left, right) and choice != "tie" for left, right, choice in votes)
    assert "9 flipped by noise" in output


def test_the_same_seed_casts_the_same_votes_on_the_same_campaign():
    # Two campaigns built alike (their own generators, prompts and populations), one crowd each.
    first, second = measured_campaign(slug="one", prefix="a-"), measured_campaign(slug="two", prefix="b-")
    for slug in ("one", "two"):
        plan = plan_simulation(
            campaign_slug=slug, criterion="diversity", judge="discrepancy:colour", comparisons=15, noise=0.4, seed=11
        )
        simulate_votes(plan=plan)

    assert judged_votes(first) == judged_votes(second)
    assert len(judged_votes(first)) == 15
    assert {"left", "right"} <= {choice for *_, choice in judged_votes(first)}


def test_a_seed_is_drawn_and_printed_when_none_is_given():
    measured_campaign()
    output = simulate("--campaign", "sim", "--criterion", "diversity", "--judge", "vendi", "--comparisons", "1")
    assert "seed " in output
    participant = Participant.objects.get(kind="simulated", comparisons__isnull=False)
    assert f"seed {participant.entry_params['seed']}," in output


def test_simulated_participants_obey_the_quota_and_stop_saying_why():
    campaign = measured_campaign(quota=2)

    output = simulate(
        "--campaign", "sim", "--criterion", "diversity", "--judge", "discrepancy:colour", "--comparisons", "50",
        "--participants", "3", "--seed", "1",
    )  # fmt: skip

    per_participant = Counter(
        Comparison.objects.filter(campaign=campaign, status="voted").values_list("participant_id", flat=True)
    )
    assert sorted(per_participant.values()) == [2, 2, 2]
    assert "Stopped after 6 of 50 comparisons" in output
    assert "3 reached the campaign's quota of 2" in output


def test_simulated_votes_obey_pair_uses_and_exactly_once():
    # Two prompts x three pairs of generators, two populations per queue, two votes wanted per pair.
    campaign = measured_campaign(votes_per_pair=2)

    output = simulate(
        "--campaign", "sim", "--criterion", "diversity", "--judge", "discrepancy:colour", "--comparisons", "500",
        "--seed", "3",
    )  # fmt: skip

    comparisons = list(Comparison.objects.filter(campaign=campaign))
    assert comparisons
    assert all(c.status == "voted" for c in comparisons), "each comparison issued is voted"
    assert not any(c.is_gold or c.repeat_of_id for c in comparisons)
    for comparison in comparisons:
        assert comparison.votes.count() == 2, "one vote per criterion, once"
    # No population is used beyond the votes wanted, and its uses are the comparisons it is in.
    shown = Counter(pk for c in comparisons for pk in (c.left_population_id, c.right_population_id))
    for population in Population.objects.filter(pk__in=shown):
        assert population.uses == shown[population.pk] <= 2
    # No participant sees the same pair twice.
    seen = Counter((c.participant_id, frozenset((c.left_population_id, c.right_population_id))) for c in comparisons)
    assert max(seen.values()) == 1
    # It stopped because nothing more could be issued, and said so.
    assert f"Stopped after {len(comparisons)} of 500" in output
    assert "nothing left to vote on" in output
    # A second vote on a comparison is refused, as a person's is.
    from core.errors import Conflict

    with pytest.raises(Conflict, match="already been voted"):
        cast_votes(
            token=comparisons[0].token,
            participant=comparisons[0].participant,
            votes=[VoteInput("diversity", "left"), VoteInput("quality", "left")],
            dwell_ms=0,
        )


def test_participants_are_marked_simulated_with_their_judge_noise_and_seed_and_reused_by_the_same_crowd():
    measured_campaign()
    args = ("--campaign", "sim", "--criterion", "diversity", "--judge", "discrepancy:colour", "--seed", "5")
    simulate(*args, "--comparisons", "4", "--noise", "0.25", "--participants", "4")

    crowd = list(Participant.objects.filter(kind="simulated").order_by("pk"))
    assert len(crowd) == 4
    assert crowd[0].entry_params == {
        "campaign": "sim",
        "criterion": "diversity",
        "judge": "discrepancy:colour",
        "noise": 0.25,
        "seed": 5,
        "index": 0,
    }
    # The same crowd run again continues with the same participants; another noise is another crowd.
    simulate(*args, "--comparisons", "4", "--noise", "0.25", "--participants", "4")
    assert Participant.objects.filter(kind="simulated").count() == 4
    simulate(*args, "--comparisons", "4", "--noise", "0.5", "--participants", "4")
    assert Participant.objects.filter(kind="simulated").count() == 8


def test_the_dwell_floor_for_people_holds_and_simulated_votes_still_land(settings):
    settings.VOTE_MIN_DWELL_MS = 700
    campaign = measured_campaign()

    simulate("--campaign", "sim", "--criterion", "diversity", "--judge", "discrepancy:colour", "--comparisons", "3")

    assert set(Vote.objects.filter(comparison__campaign=campaign).values_list("dwell_ms", flat=True)) == {700}
    for comparison in Comparison.objects.filter(campaign=campaign):
        assert (comparison.voted_at - comparison.issued_at).total_seconds() >= 0.7
    # A person voting at once is still refused.
    person = Participant.objects.create()
    comparison = issue_comparison(campaign=campaign, participant=person)
    from core.errors import Conflict

    with pytest.raises(Conflict, match="at least 700 ms"):
        cast_votes(
            token=comparison.token,
            participant=person,
            votes=[VoteInput("diversity", "left"), VoteInput("quality", "left")],
            dwell_ms=5000,
        )


# --- several criteria, each judged by its own measure ------------------------------------------------------


# The share of red in each palette: faithfulness to "a red shape" (a set measure that speaks to every prompt).
RED_SHARE = {kind: PALETTES[kind].count("red") / len(PALETTES[kind]) for kind in PALETTES}


def side_by(values: dict[str, float], left: str, right: str) -> str:
    """The side with the higher value, or tie."""
    if values[left] == values[right]:
        return "tie"
    return "left" if values[left] > values[right] else "right"


def test_each_criterion_is_answered_by_its_own_judge_in_the_same_comparison():
    # "a red shape": the colour judge abstains (red is what was asked) while faithfulness prefers the redder set.
    campaign = measured_campaign(caption="a red shape")

    output = simulate(
        "--campaign", "sim", "--judge", "diversity=discrepancy:colour", "--judge", "quality=faithfulness",
        "--comparisons", "12", "--seed", "2",
    )  # fmt: skip

    diversity, quality = judged_votes(campaign, "diversity"), judged_votes(campaign, "quality")
    assert len(diversity) == len(quality) == 12
    assert {choice for *_, choice in diversity} == {"tie"}
    assert [choice for *_, choice in quality] == [side_by(RED_SHARE, left, right) for left, right, _ in quality]
    assert {"left", "right"} <= {choice for *_, choice in quality}
    # One comparison carries both answers.
    assert all(c.votes.count() == 2 for c in Comparison.objects.filter(campaign=campaign))
    assert "judged by diversity=discrepancy:colour, quality=faithfulness" in output
    assert "diversity (discrepancy:colour): left 0, right 0, tie 12" in output
    assert "12 of them on prompts naming colour" in output
    wins = Counter(choice for *_, choice in quality)
    assert f"quality (faithfulness): left {wins['left']}, right {wins['right']}, tie {wins['tie']}" in output


def test_two_judges_agree_with_a_recount_of_the_stored_measures():
    from metrics.selectors import measures_by_population

    campaign = measured_campaign()

    simulate(
        "--campaign", "sim", "--judge", "quality=vendi", "--judge", "diversity=discrepancy:colour",
        "--comparisons", "10", "--seed", "4",
    )  # fmt: skip

    comparisons = list(Comparison.objects.filter(campaign=campaign).prefetch_related("votes__criterion"))
    assert len(comparisons) == 10
    measured = measures_by_population(
        [pk for c in comparisons for pk in (c.left_population_id, c.right_population_id)],
        attributes=campaign.attribute_specs(),
    )
    for comparison in comparisons:
        left, right = measured[comparison.left_population_id], measured[comparison.right_population_id]
        gap = right["attributes"]["colour"]["discrepancy"] - left["attributes"]["colour"]["discrepancy"]
        expected_diversity = "tie" if abs(gap) < 1e-9 else ("left" if gap > 0 else "right")
        vendi_gap = left["vendi"] - right["vendi"]
        expected_quality = "tie" if abs(vendi_gap) < 1e-9 else ("left" if vendi_gap > 0 else "right")
        cast = {vote.criterion.key: vote.choice for vote in comparison.votes.all()}
        assert cast == {"diversity": expected_diversity, "quality": expected_quality}, comparison.pk


def test_a_crowd_of_several_judges_is_named_by_them_and_the_one_criterion_form_is_unchanged():
    measured_campaign()
    simulate(
        "--campaign", "sim", "--judge", "diversity=discrepancy:colour", "--judge", "quality=vendi",
        "--comparisons", "2", "--seed", "7", "--participants", "1",
    )  # fmt: skip
    # The one-criterion form spelt either way is the same crowd.
    simulate("--campaign", "sim", "--judge", "diversity=discrepancy:colour", "--comparisons", "1", "--seed", "7")
    simulate(
        "--campaign", "sim", "--criterion", "diversity", "--judge", "discrepancy:colour", "--comparisons", "1",
        "--seed", "7",
    )  # fmt: skip

    crowds = [p.entry_params for p in Participant.objects.filter(kind="simulated", entry_params__index=0)]
    assert {
        "campaign": "sim",
        "judges": {"diversity": "discrepancy:colour", "quality": "vendi"},
        "noise": 0.0,
        "seed": 7,
        "index": 0,
    } in crowds
    assert len(crowds) == 2


# --- kept apart from people ------------------------------------------------------------------------------


def test_simulated_votes_stay_off_the_leaderboard_quality_report_agreement_and_progress():
    campaign = measured_campaign()
    simulate("--campaign", "sim", "--criterion", "diversity", "--judge", "discrepancy:colour", "--comparisons", "10")
    assert Vote.objects.simulated().filter(comparison__campaign=campaign).count() == 20

    assert not PairTally.objects.filter(campaign=campaign).exists()
    assert get_leaderboard(campaign=campaign, criterion="diversity")["votes"] == 0
    assert get_leaderboard(campaign=campaign, criterion="diversity", include_flagged=True)["votes"] == 0
    assert get_quality_reports(campaign=campaign).reports == []
    assert all(row["votes"] == 0 for row in get_agreement(campaign=campaign, category="", rows=[]))
    progress = get_campaign_progress(campaign=campaign)
    assert (progress.comparisons_voted, progress.simulated_voted, progress.active_participants) == (0, 10, 0)
    assert all(row.votes == 0 for row in progress.criteria)

    # Given one person's vote, only that one counts.
    person = Participant.objects.create()
    comparison = issue_comparison(campaign=campaign, participant=person)
    cast_votes(
        token=comparison.token,
        participant=person,
        votes=[VoteInput("diversity", "left"), VoteInput("quality", "tie")],
        dwell_ms=1000,
    )
    assert get_leaderboard(campaign=campaign, criterion="diversity")["votes"] == 1
    assert [int(r.participant) for r in get_quality_reports(campaign=campaign).reports] == [person.pk]  # type: ignore[call-overload]
    assert get_campaign_progress(campaign=campaign).comparisons_voted == 1
    assert Vote.objects.counted().filter(comparison__campaign=campaign).count() == 2
    assert Vote.objects.counted(include_simulated=True).filter(comparison__campaign=campaign).count() == 22


def test_recounting_the_tallies_leaves_simulated_votes_out():
    from arena.tallies import recount_tallies

    campaign = measured_campaign()
    simulate("--campaign", "sim", "--criterion", "diversity", "--judge", "discrepancy:colour", "--comparisons", "6")
    assert recount_tallies(campaign=campaign) == 0
    assert not PairTally.objects.filter(campaign=campaign).exists()


def test_a_simulated_participant_is_given_no_gold_checks_or_repeats():
    campaign = measured_campaign()
    campaign.gold_rate, campaign.repeat_rate = 0.5, 0.5
    campaign.save()

    simulate("--campaign", "sim", "--criterion", "diversity", "--judge", "discrepancy:colour", "--comparisons", "12")

    comparisons = Comparison.objects.filter(campaign=campaign)
    assert comparisons.count() == 12
    assert not comparisons.filter(is_gold=True).exists()
    assert not comparisons.filter(repeat_of__isnull=False).exists()


# --- bad input -------------------------------------------------------------------------------------------

GOOD = {
    "--campaign": "sim",
    "--criterion": "diversity",
    "--judge": "discrepancy:colour",
    "--comparisons": "5",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--campaign": "nope"}, "no campaign with slug 'nope'"),
        ({"--criterion": "beauty"}, "unknown criterion 'beauty' (campaign 'sim' asks: diversity, quality)"),
        ({"--judge": "sharpness"}, "unknown measure 'sharpness'"),
        ({"--judge": "discrepancy:shape"}, "unknown attribute 'shape'; the campaign measures colour"),
        ({"--judge": "vendi:colour"}, "vendi is a measure of the whole set and takes no attribute"),
        ({"--judge": "clip_score"}, "clip_score needs a CLIP attribute"),
        ({"--comparisons": "0"}, "--comparisons must be at least 1, not 0"),
        ({"--comparisons": "-3"}, "--comparisons must be at least 1"),
        ({"--noise": "1.5"}, "--noise must be a probability from 0 to 1, not 1.5"),
        ({"--noise": "-0.1"}, "--noise must be a probability from 0 to 1"),
        ({"--noise": "nan"}, "--noise must be a probability from 0 to 1"),
        ({"--participants": "0"}, "--participants must be at least 1"),
        ({"--criterion": "quality", "--judge": "diversity=vendi"}, "names criterion 'diversity', but --criterion"),
    ],
)
def test_bad_input_is_refused_naming_it_and_nothing_is_stored(change, message):
    measured_campaign()
    args = [part for key, value in {**GOOD, **change}.items() for part in (key, value)]

    with pytest.raises(CommandError) as refused:
        simulate(*args)

    assert message in str(refused.value)
    assert not Participant.objects.exists()
    assert not Comparison.objects.exists()


@pytest.mark.parametrize(
    ("judges", "message"),
    [
        (["discrepancy:colour"], "say which criterion it judges, CRITERION=MEASURE[:ATTRIBUTE]"),
        (["diversity=vendi", "diversity=discrepancy:colour"], "criterion 'diversity' is judged twice"),
        (["diversity=", "quality=vendi"], "say which criterion it judges"),
        (["diversity=vendi", "quality=sharpness"], "--judge 'sharpness': unknown measure 'sharpness'"),
        (["beauty=vendi"], "unknown criterion 'beauty' (campaign 'sim' asks: diversity, quality)"),
    ],
)
def test_several_judges_each_name_their_criterion_once(judges, message):
    measured_campaign()
    with pytest.raises(CommandError, match=re.escape(message)):
        simulate("--campaign", "sim", *[part for judge in judges for part in ("--judge", judge)], "--comparisons", "2")
    with pytest.raises(CommandError, match="--criterion takes one --judge"):
        simulate(
            "--campaign", "sim", "--criterion", "diversity", "--judge", "vendi", "--judge", "entropy:colour",
            "--comparisons", "2",
        )  # fmt: skip
    assert not Participant.objects.exists()
    assert not Comparison.objects.exists()


def test_a_campaign_that_is_not_open_is_refused_before_anything_is_stored():
    campaign = measured_campaign()
    campaign.status = "paused"
    campaign.save()
    with pytest.raises(CommandError, match="campaign 'sim' is paused, not open"):
        simulate(*[part for item in GOOD.items() for part in item])
    assert not Participant.objects.exists()


def test_a_judge_needs_a_campaign_that_measures_something(arena_campaign):
    arena_campaign()  # slug "study", no metrics configured
    with pytest.raises(CommandError, match="unknown attribute 'colour'; the campaign measures none"):
        simulate(
            "--campaign", "study", "--criterion", "diversity", "--judge", "discrepancy:colour", "--comparisons", "1"
        )
    with pytest.raises(CommandError, match="measures no attribute, so no set measure"):
        simulate("--campaign", "study", "--criterion", "diversity", "--judge", "vendi", "--comparisons", "1")
    assert not Participant.objects.exists()


def test_unmeasured_populations_give_ties_and_a_warning():
    campaign = measured_campaign()
    from metrics.models import AttributeMeasure

    AttributeMeasure.objects.all().delete()
    err = io.StringIO()
    out = io.StringIO()
    call_command(
        "simulate_votes", *[part for item in GOOD.items() for part in item], "--no-progress", stdout=out, stderr=err
    )
    assert set(judged_votes(campaign)) == {(left, right, "tie") for left, right, _ in judged_votes(campaign)}
    assert "the metric preferred neither side in 5" in out.getvalue()
    assert "compute_metrics --campaign sim" in err.getvalue()


def test_a_campaign_whose_clip_folder_moved_is_refused_naming_the_attribute(settings):
    from pathlib import Path

    campaign = measured_campaign()
    folder = Path(settings.METRICS_MODELS_DIR) / "clip-moved"
    folder.mkdir(parents=True)
    campaign.metrics_attributes = {
        **campaign.metrics_attributes,
        "gender": {"backend": "clip", "model": "clip-moved", "classes": ["a man", "a woman"]},
    }
    campaign.save()
    folder.rmdir()
    # The message names the attribute and where models may come from, never a server folder.
    with pytest.raises(
        CommandError, match="metrics_attributes.gender.model: not a model this server offers"
    ) as refused:
        simulate(*[part for item in GOOD.items() for part in item])
    assert str(folder) not in str(refused.value)
    assert not Participant.objects.exists()
