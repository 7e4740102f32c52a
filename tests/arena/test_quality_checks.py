"""Quality checks mixed into the stream: gold comparisons, side-swapped repeats, and the server's dwell floor."""

from __future__ import annotations

import io
import random
from datetime import timedelta

import pytest
from PIL import Image as PILImage
from scipy.stats import binomtest

from annotation.models import Participant
from arena.issuing import REPEAT_MIN_GAP, issue_comparison
from arena.models import Comparison, PairTally, Vote
from arena.voting import VoteInput, cast_votes
from core.errors import ApplicationError
from generation.models import Population
from generation.services import DECOY_GENERATOR, get_or_create_decoy
from quality.selectors import get_quality_reports

pytestmark = pytest.mark.django_db

BOTH_LEFT = [VoteInput("diversity", "left"), VoteInput("quality", "left")]


def vote_through(campaign, participant, answer, *, rng, rounds: int) -> list[Comparison]:
    """Issue and vote `rounds` comparisons; `answer(comparison)` gives the choice for both criteria."""
    done = []
    for _ in range(rounds):
        comparison = issue_comparison(campaign=campaign, participant=participant, rng=rng)
        choice = answer(comparison)
        votes = [VoteInput("diversity", choice), VoteInput("quality", choice)]
        at = comparison.issued_at + timedelta(seconds=5)
        cast_votes(token=comparison.token, participant=participant, votes=votes, dwell_ms=4000, now=at)
        done.append(comparison)
    return done


def colours(image: PILImage.Image) -> int:
    return len(image.convert("RGB").getcolors(maxcolors=1 << 16) or [])


def correct_side(comparison: Comparison) -> str:
    decoy_left = Population.objects.get(pk=comparison.left_population_id).decoy_of_id is not None
    return "right" if decoy_left else "left"


def test_gold_comparisons_come_at_the_campaigns_rate_with_the_decoy_on_either_side(arena_campaign):
    campaign = arena_campaign(generators=3, prompts=4, per_queue=12, votes_per_pair=6)
    campaign.gold_rate = 0.3
    campaign.save()
    rng = random.Random(7)
    issued: list[Comparison] = []
    for _ in range(12):
        issued += vote_through(campaign, Participant.objects.create(), lambda c: "left", rng=rng, rounds=12)
    gold = [c for c in issued if c.is_gold]
    # The share of gold is what the campaign asked for (exact binomial test, not a fixed band).
    assert binomtest(len(gold), len(issued), 0.3).pvalue > 0.001, (len(gold), len(issued))
    decoy_on_left = sum(correct_side(c) == "right" for c in gold)
    assert 0 < decoy_on_left < len(gold), "the degraded copy appears on both sides"
    for comparison in gold:
        left = Population.objects.get(pk=comparison.left_population_id)
        right = Population.objects.get(pk=comparison.right_population_id)
        decoy, real = (left, right) if left.decoy_of_id else (right, left)
        assert decoy.decoy_of_id == real.pk
        assert decoy.generator.name == DECOY_GENERATOR
        assert decoy.prompt_id == real.prompt_id
        assert decoy.size == real.size
        assert real.generator in campaign.generators.all()


def test_a_decoy_is_a_visibly_degraded_copy_of_the_same_size_made_once(arena_campaign):
    campaign = arena_campaign()
    real = Population.objects.filter(generator__in=campaign.generators.all()).first()
    decoy = get_or_create_decoy(population=real)
    assert get_or_create_decoy(population=real) == decoy
    assert decoy.status == "ready"
    assert decoy.images.count() == real.images.count()
    for original, copy in zip(real.images.order_by("index"), decoy.images.order_by("index"), strict=True):
        assert copy.sha256 != original.sha256
        assert copy.file.name != original.file.name
        with original.file.open("rb") as a, copy.file.open("rb") as b:
            before, after = PILImage.open(io.BytesIO(a.read())), PILImage.open(io.BytesIO(b.read()))
            assert after.size == before.size == (copy.width, copy.height)
            # Uniform test images turn noisy: many distinct colours where there was one.
            assert colours(after) > 50 * colours(before)


def test_a_decoy_of_a_population_that_is_not_ready_is_refused(arena_campaign):
    campaign = arena_campaign()
    pending = Population.objects.create(
        generator=campaign.generators.first(), prompt=campaign.prompts.first(), size=6, seeds=list(range(6))
    )
    with pytest.raises(ValueError, match="not ready"):
        get_or_create_decoy(population=pending)


def test_gold_votes_score_the_participant_and_never_reach_the_leaderboard(arena_campaign, admin_client):
    campaign = arena_campaign(generators=2, prompts=3, per_queue=10, votes_per_pair=10)
    campaign.gold_rate = 0.5
    campaign.save()
    rng = random.Random(3)
    good, bad = Participant.objects.create(), Participant.objects.create()
    good_run = vote_through(campaign, good, correct_side, rng=rng, rounds=16)
    bad_run = vote_through(
        campaign, bad, lambda c: "right" if correct_side(c) == "left" else "left", rng=rng, rounds=16
    )
    reports = {r.participant: r for r in get_quality_reports(campaign=campaign)[0]}
    assert reports[good.pk].signals.gold.accuracy == 1.0
    assert reports[bad.pk].signals.gold.n_checks == sum(c.is_gold for c in bad_run) >= 2
    assert reports[bad.pk].signals.gold.accuracy is not None
    assert reports[bad.pk].flagged
    assert not reports[good.pk].flagged
    ordinary = sum(not c.is_gold for c in good_run + bad_run)
    tallied = sum(t.total for t in PairTally.objects.filter(criterion__key="diversity", category=""))
    assert tallied == ordinary
    board = admin_client.get("/api/v1/campaigns/study/leaderboard?criterion=diversity").json()
    assert DECOY_GENERATOR not in {row["generator"] for row in board["rows"]}


def test_side_swapped_repeats_come_back_mirrored_once_each_and_measure_consistency(arena_campaign):
    campaign = arena_campaign(generators=3, prompts=4, per_queue=10, votes_per_pair=10)
    campaign.repeat_rate = 0.3
    campaign.save()
    rng = random.Random(11)
    steady, erratic = Participant.objects.create(), Participant.objects.create()

    def mirror_of_original(comparison: Comparison) -> str:
        if comparison.repeat_of_id is None:
            return "left"
        return "right"  # the original was answered "left"; the mirror of it is "right"

    steady_run = vote_through(campaign, steady, mirror_of_original, rng=rng, rounds=20)
    erratic_run = vote_through(campaign, erratic, lambda c: "left", rng=rng, rounds=20)
    for run in (steady_run, erratic_run):
        repeats = [c for c in run if c.repeat_of_id is not None]
        assert repeats, "a 30% repeat rate over 20 comparisons brings some repeats"
        originals = [c.repeat_of_id for c in repeats]
        assert len(originals) == len(set(originals)), "each comparison is repeated at most once"
        position = {c.pk: i for i, c in enumerate(run)}
        for repeat in repeats:
            original = Comparison.objects.get(pk=repeat.repeat_of_id)
            assert (repeat.left_population_id, repeat.right_population_id) == (
                original.right_population_id,
                original.left_population_id,
            )
            assert original.repeat_of_id is None
            assert not original.is_gold
            assert position[repeat.pk] - position[original.pk] > REPEAT_MIN_GAP
    reports = {r.participant: r for r in get_quality_reports(campaign=campaign)[0]}
    assert reports[steady.pk].signals.repeats.rate == 1.0
    assert reports[erratic.pk].signals.repeats.rate == 0.0
    # Repeats measure the participant, not the generators: they are left out of the tallies.
    tallied = sum(t.total for t in PairTally.objects.filter(criterion__key="diversity", category=""))
    assert tallied == sum(c.repeat_of_id is None for c in steady_run + erratic_run)


def test_a_vote_sooner_than_the_dwell_floor_after_issue_is_refused_and_changes_nothing(arena_campaign, settings):
    settings.VOTE_MIN_DWELL_MS = 500
    campaign = arena_campaign()
    participant = Participant.objects.create()
    comparison = issue_comparison(campaign=campaign, participant=participant)
    with pytest.raises(ApplicationError, match=r"issued \d+ ms ago.*at least 500 ms") as refused:
        cast_votes(
            token=comparison.token,
            participant=participant,
            votes=BOTH_LEFT,
            dwell_ms=3000,
            now=comparison.issued_at + timedelta(milliseconds=100),
        )
    assert refused.value.code == "too_early"
    assert refused.value.status == 409
    assert not Vote.objects.exists()
    comparison.refresh_from_db()
    assert comparison.status == Comparison.Status.ISSUED
    # Later the same vote goes through; the client's claimed 3 s is capped by the server's 0.8 s.
    cast_votes(
        token=comparison.token,
        participant=participant,
        votes=BOTH_LEFT,
        dwell_ms=3000,
        now=comparison.issued_at + timedelta(milliseconds=800),
    )
    assert set(Vote.objects.values_list("dwell_ms", flat=True)) == {800}


def test_the_api_answers_a_too_early_vote_with_a_clear_409(arena_campaign, client, settings):
    settings.VOTE_MIN_DWELL_MS = 60_000
    arena_campaign()
    token = client.post("/api/v1/campaigns/study/comparisons/next", {}, content_type="application/json").json()["token"]
    body = {"votes": [{"criterion": "diversity", "choice": "left"}, {"criterion": "quality", "choice": "tie"}]}
    response = client.post(
        f"/api/v1/comparisons/{token}/votes", {**body, "dwell_ms": 900}, content_type="application/json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "too_early"
    assert "at least 60000 ms" in response.json()["error"]["message"]
    assert not Vote.objects.exists()


def test_gold_sources_spread_over_eligible_generators_and_prompts_never_noise_or_excluded(arena_campaign):
    from django.utils import timezone
    from scipy.stats import chisquare

    campaign = arena_campaign(generators=5, prompts=4, per_queue=4, votes_per_pair=30)
    g0, g1, g2, noise, excluded = campaign.generators.order_by("name")
    noise.gold_source = False
    noise.save()
    campaign.gold_excluded_generators.add(excluded)
    campaign.gold_rate = 0.5
    campaign.save()
    # The most recently ready sets are all one generator's: a draw from the newest would take only those.
    Population.objects.filter(generator=g0).update(ready_at=timezone.now() + timedelta(hours=1))
    rng = random.Random(11)
    gold: list[Comparison] = []
    for _ in range(12):
        run = vote_through(campaign, Participant.objects.create(), lambda c: "left", rng=rng, rounds=14)
        gold += [c for c in run if c.is_gold]
    assert len(gold) >= 60
    sources = [
        Population.objects.get(pk=c.right_population_id if correct_side(c) == "right" else c.left_population_id)
        for c in gold
    ]
    per_generator = [sum(s.generator_id == g.pk for s in sources) for g in (g0, g1, g2)]
    assert sum(per_generator) == len(gold), "never the noise stand-in or the excluded generator"
    assert chisquare(per_generator).pvalue > 0.001, per_generator
    assert {s.prompt_id for s in sources} == set(campaign.prompts.values_list("pk", flat=True))
    by_source = get_quality_reports(campaign=campaign).gold_by_source
    assert set(by_source) == {g0.name, g1.name, g2.name}
    assert sum(g.n_checks for g in by_source.values()) == len(gold)


def test_a_decoy_is_also_the_least_varied_set_every_picture_from_one(arena_campaign):
    import numpy as np

    campaign = arena_campaign()
    real = Population.objects.filter(generator__in=campaign.generators.all()).first()
    decoy = get_or_create_decoy(population=real)

    def mean_colours(population: Population) -> np.ndarray:
        means = []
        for image in population.images.order_by("index"):
            with image.file.open("rb") as handle:
                means.append(np.asarray(PILImage.open(io.BytesIO(handle.read())).convert("RGB"), float).mean((0, 1)))
        return np.array(means)

    # The test sets differ picture to picture (green steps by 20, 100 over six); the decoy's copies only
    # by their noise (sigma 70 over 1024 pixels: about 2 per mean, so 20 is far outside chance).
    assert np.ptp(mean_colours(real), axis=0).max() >= 100
    assert np.ptp(mean_colours(decoy), axis=0).max() < 20


def test_a_vote_exactly_at_the_dwell_floor_is_taken_and_one_millisecond_sooner_is_not(arena_campaign, settings):
    settings.VOTE_MIN_DWELL_MS = 500
    campaign = arena_campaign()
    participant = Participant.objects.create()
    comparison = issue_comparison(campaign=campaign, participant=participant)
    # Given a comparison issued at t, a vote at t + 499 ms is refused,
    with pytest.raises(ApplicationError, match="issued 499 ms ago") as refused:
        cast_votes(
            token=comparison.token,
            participant=participant,
            votes=BOTH_LEFT,
            dwell_ms=499,
            now=comparison.issued_at + timedelta(milliseconds=499),
        )
    assert refused.value.code == "too_early"
    assert not Vote.objects.exists()
    # and the same vote at t + 500 ms, exactly the floor, is stored with its 500 ms.
    cast_votes(
        token=comparison.token,
        participant=participant,
        votes=BOTH_LEFT,
        dwell_ms=500,
        now=comparison.issued_at + timedelta(milliseconds=500),
    )
    assert set(Vote.objects.values_list("dwell_ms", flat=True)) == {500}
    comparison.refresh_from_db()
    assert comparison.status == Comparison.Status.VOTED
