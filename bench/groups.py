"""Benchmark: the group test's power and calibration, raking's recovery of a target population, and timings.

Targets (issue 33):
- two groups that prefer different generators (one judges colour spread, wide > base > narrow; the other
  prefers base) are told apart at p < 0.01 with at most 150 comparisons per group;
- two groups drawn from the same judge give p < 0.05 in about 5% of 200 seeded runs;
- raking a crowd whose group shares differ from the target by 30 points recovers the target population's
  ranking (Kendall tau against the truth) better than the unweighted board;
- boards per group and the test on 100,000 votes from 2,000 participants: time to compute, and that the page
  stays responsive (cached, as the board is).

Sections (`--skip` leaves any out):
- power, calibration, raking, timing: arena.groups on simulated participants (no database, no HTTP): each
  participant has their own taste, the group's strengths plus N(0, spread^2) per generator, so their votes are
  correlated as real participants' are.
- database: the same payloads as the API serves them (arena.group_boards: the read of the counted votes with
  their participants, the fits, the cache) on a campaign of 100,000 votes from 2,000 participants in 4 answer
  groups, written with bulk inserts into a scratch database (SQLite, or PostgreSQL with --database-url;
  --redis-url for the cache): each payload on a cache miss and cached, and GET .../leaderboard/groups through
  Django's whole stack once cached.
- api: scripted crowds through the JSON API (Django's test client: every middleware, throttle and the
  questionnaire gate): per run a campaign of three generators whose sets are samples of colours (wide: all six
  alike; base: 70% red; narrow: 90% blue), 15 + 15 participants who are refused a comparison until they answer
  the questionnaire ("taste") through the API, then look at every picture of each comparison they are issued
  and vote 10 times; one group judges colour spread, the other likes base's look (its red share), or, for
  calibration, both judge colour spread. Each run ends with GET .../leaderboard/groups?question=taste. The
  dwell floor and the new-session throttle are lifted in this process (scripted participants vote at once and
  each is a new session from its own address).

Run (all of it: about 30 minutes on one core of a quiet machine):
    .venv/bin/python bench/groups.py [--database-url postgres://postgres@127.0.0.1:5432] [--redis-url URL]
A short version:
    .venv/bin/python bench/groups.py --runs 40 --power-runs 10 --raking-runs 10 --timing-rounds 50 \
        --database-votes 20000 --database-participants 400 --api-power-runs 2 --api-null-runs 4
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arena.groups import (  # noqa: E402 (after the path is set)
    ParticipantVotes,
    board,
    compare_groups,
    parse_targets,
    weighted_board,
)
from arena.ranking import FIRST_WINS, SECOND_WINS, TIE, PairCounts, fit_ratings  # noqa: E402

NAMES3 = ("wide", "base", "narrow")


def simulate(
    group_means: list[np.ndarray],
    people: list[int],
    votes_each: int,
    spread: float,
    rng: np.random.Generator,
    names: tuple[str, ...],
    ties: float = 0.05,
) -> tuple[ParticipantVotes, list[str]]:
    """Votes of `people[g]` participants in each group g, `votes_each` each on uniform random pairs."""
    k = len(names)
    who, first, second, outcome, labels = [], [], [], [], []
    n = 0
    for g, (mean, count) in enumerate(zip(group_means, people, strict=True)):
        for _ in range(count):
            taste = mean + rng.normal(0, spread, k)
            i = rng.integers(0, k, votes_each)
            j = (i + rng.integers(1, k, votes_each)) % k
            p = 1 / (1 + np.exp(taste[j] - taste[i]))
            draw = rng.random(votes_each)
            tied = rng.random(votes_each) < ties
            o = np.where(tied, TIE, np.where(draw < p, FIRST_WINS, SECOND_WINS))
            who.append(np.full(votes_each, n))
            first.append(i)
            second.append(j)
            outcome.append(o)
            labels.append(f"g{g}")
            n += 1
    votes = ParticipantVotes(
        names,
        tuple(f"p{x:05d}" for x in range(n)),
        np.concatenate(who),
        np.concatenate(first),
        np.concatenate(second),
        np.concatenate(outcome),
    )
    return votes, labels


def power(runs: int, permutations: int) -> None:
    # 15 participants x 10 comparisons = 150 per group.
    diverse = np.array([1.0, 0.0, -1.0])
    plain = np.array([-0.5, 1.0, -0.5])
    below = []
    started = time.perf_counter()
    for run in range(runs):
        rng = np.random.default_rng(run)
        votes, labels = simulate([diverse, plain], [15, 15], 10, 0.5, rng, NAMES3)
        result = compare_groups(votes, labels, permutations=permutations, rounds=0, seed=run)
        below.append(result.p_value < 0.01)
    took = time.perf_counter() - started
    print(
        f"power: two groups (wide > base > narrow vs base first), 150 comparisons each, {permutations} permutations: "
        f"p < 0.01 in {sum(below)} of {runs} runs ({100 * sum(below) / runs:.0f}%); {took / runs:.2f} s a test"
    )


def calibration(runs: int, permutations: int) -> None:
    judge = np.array([0.6, 0.0, -0.6])
    rejected = []
    started = time.perf_counter()
    for run in range(runs):
        rng = np.random.default_rng(10_000 + run)
        votes, _ = simulate([judge], [30], 10, 1.0, rng, NAMES3)
        labels = [f"g{g}" for g in rng.permutation([0] * 15 + [1] * 15)]
        result = compare_groups(votes, labels, permutations=permutations, rounds=0, seed=run)
        rejected.append(result.p_value < 0.05)
    rate = sum(rejected) / runs
    sd = math.sqrt(0.05 * 0.95 / runs)
    took = time.perf_counter() - started
    print(
        f"calibration: two groups of 15 from the same judge (participant spread 1.0), {permutations} permutations: "
        f"p < 0.05 in {sum(rejected)} of {runs} runs = {100 * rate:.1f}% (5% +- {200 * sd:.1f} at 2 sd); "
        f"{took / runs:.2f} s a test"
    )


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-a between two score vectors (no ties expected)."""
    n = len(a)
    concordant = 0
    for i in range(n):
        for j in range(i + 1, n):
            concordant += np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
    return float(concordant / (n * (n - 1) / 2))


def raking(runs: int, rounds: int) -> None:
    # Six generators; men and women rank them in opposite orders (with an offset so the mixture is not flat).
    k = 6
    names = tuple(f"gen{i}" for i in range(k))
    men = np.linspace(1.2, -1.2, k)
    women = np.linspace(-1.0, 1.4, k)
    target_women = 0.7  # the target population: 70% women; the crowd: 40% women (30 points off)
    # The truth: the fit on the target population's expected outcomes (every pair, mixed by the target shares).
    wins = np.zeros((k, k))
    for share, s in ((1 - target_women, men), (target_women, women)):
        wins += share * 1000 / (1 + np.exp(s[None, :] - s[:, None]))
    np.fill_diagonal(wins, 0)
    truth = fit_ratings(PairCounts(names, wins, np.zeros((k, k))), bootstrap=0).ratings()
    truth_vector = np.array([truth[n] for n in names])
    targets = parse_targets(
        {"margins": [{"questions": ["gender"], "shares": {"man": 1 - target_women, "woman": target_women}}]}
    )
    taus_weighted, taus_plain, sizes = [], [], []
    for run in range(runs):
        rng = np.random.default_rng(20_000 + run)
        votes, labels = simulate([men, women], [120, 80], 15, 0.5, rng, names)
        answers = [{"gender": "man" if label == "g0" else "woman"} for label in labels]
        result = weighted_board(votes, answers, targets.margins, cap=targets.cap, rounds=rounds, seed=run)
        weighted = result.weighted.ratings()
        plain = result.unweighted.ratings()
        taus_weighted.append(kendall_tau(np.array([weighted[n] for n in names]), truth_vector))
        taus_plain.append(kendall_tau(np.array([plain[n] for n in names]), truth_vector))
        sizes.append(result.raking.effective_size)
    print(
        f"raking: crowd 40% women, target 70% (30 points), 200 participants x 15 votes, 6 generators, {runs} runs: "
        f"Kendall tau vs the target population's ranking: weighted {np.mean(taus_weighted):.2f} "
        f"(min {np.min(taus_weighted):.2f}), unweighted {np.mean(taus_plain):.2f} (min {np.min(taus_plain):.2f}); "
        f"effective sample size {np.mean(sizes):.0f} of 200"
    )


def timing(rounds: int, permutations: int) -> None:
    k = 8
    names = tuple(f"gen{i}" for i in range(k))
    rng = np.random.default_rng(7)
    # Warm-up: pay the imports (SciPy's sparse matrices, choix and scipy.stats) outside the timings.
    warm, _ = simulate([np.zeros(k)], [3], 20, 0.5, rng, names)
    board(warm, rounds=1)
    means = [rng.normal(0, 0.7, k) for _ in range(4)]
    started = time.perf_counter()
    votes, labels = simulate(means, [500, 500, 500, 500], 50, 0.5, rng, names)
    built = time.perf_counter() - started
    answers = [{"group": label} for label in labels]
    started = time.perf_counter()
    votes.counts()  # builds the participant table once, as the first board of a request does
    table = time.perf_counter() - started
    started = time.perf_counter()
    members = [i for i, label in enumerate(labels) if label == "g0"]
    board(votes, members=members, rounds=rounds, seed=0)
    one_group = time.perf_counter() - started
    started = time.perf_counter()
    result = compare_groups(votes, labels, permutations=permutations, rounds=rounds, seed=0, min_size=5)
    test = time.perf_counter() - started
    targets = parse_targets({"margins": [{"questions": ["group"], "shares": {f"g{g}": 0.25 for g in range(4)}}]})
    started = time.perf_counter()
    weighted_board(votes, answers, targets.margins, rounds=rounds, seed=0)
    weighted = time.perf_counter() - started
    print(
        f"timing: {len(votes.participant):,} votes, {votes.size:,} participants, {k} generators, 4 groups, "
        f"{rounds} bootstrap rounds, {permutations} permutations: simulated in {built:.2f} s, participant table "
        f"{table:.2f} s; one group's board {one_group:.2f} s; the test with 4 boards and the differences "
        f"{test:.2f} s (p = {result.p_value:.3f}); the weighted board beside the unweighted {weighted:.2f} s"
    )


# --- the same reads through the database, as the page and API make them ----------------------------------------


def _setup_django(database_url: str, redis_url: str, work: Path) -> str:
    """Point Django at a scratch database (SQLite under `work`, or a new PostgreSQL database) and set it up."""
    import os

    os.environ["POPARENA_VAR_DIR"] = str(work)
    os.environ["MEDIA_ROOT"] = str(work / "media")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    name = ""
    if database_url:
        import psycopg

        name = f"h_groups_bench_{os.getpid()}"
        with psycopg.connect(f"{database_url}/postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        os.environ["DATABASE_URL"] = f"{database_url}/{name}"
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    import django

    django.setup()
    import logging

    from django.core.management import call_command

    # The scripted participants' expected refusals (questionnaire_required) would each log a warning.
    logging.getLogger("django.request").setLevel(logging.ERROR)

    call_command("migrate", verbosity=0)
    return name


def _drop_database(database_url: str, name: str) -> None:
    from django.db import connections

    connections.close_all()
    import psycopg

    with psycopg.connect(f"{database_url}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def build_campaign(votes_wanted: int, people: int, generators: int, seed: int) -> Any:
    """A finished campaign written with bulk inserts: `people` participants in 4 answer groups of different
    tastes, one criterion, `votes_wanted` counted votes on random pairs, its tallies recounted."""
    from datetime import timedelta

    from django.utils import timezone

    from annotation.models import Answer, Campaign, Criterion, Participant, Question, QuestionnaireResponse
    from arena.models import Comparison, Vote
    from arena.tallies import recount_tallies
    from generation.models import Generator, Population, Prompt

    rng = np.random.default_rng(seed)
    now = timezone.now()
    campaign = Campaign.objects.create(slug="groups-bench", title="Groups benchmark", status="open")
    criterion = Criterion.objects.create(campaign=campaign, key="diversity", question="Which is more varied?")
    made = [Generator.objects.create(name=f"gen{g}", source="builtin:tiny-random") for g in range(generators)]
    prompts = Prompt.objects.bulk_create([Prompt(caption=f"a benchmark prompt {p}") for p in range(20)])
    campaign.generators.set(made)
    campaign.prompts.set(prompts)
    populations = Population.objects.bulk_create(
        [
            Population(generator=g, prompt=p, size=6, seeds=list(range(6)), status="ready", ready_at=now)
            for p in prompts
            for g in made
        ]
    )
    by_cell = {(p.prompt_id, p.generator_id): p for p in populations}
    labels = [f"g{g}" for g in range(4)]
    question = Question.objects.create(
        campaign=campaign, key="group", text="Your group?", kind="single", choices=labels
    )
    participants = Participant.objects.bulk_create([Participant() for _ in range(people)])
    group_of = rng.integers(0, 4, people)
    responses = QuestionnaireResponse.objects.bulk_create(
        [QuestionnaireResponse(campaign=campaign, participant=p, asked_at=now) for p in participants]
    )
    Answer.objects.bulk_create(
        [
            Answer(response=r, question=question, value=labels[group_of[i]], answered_at=now)
            for i, r in enumerate(responses)
        ],
        batch_size=5000,
    )
    means = rng.normal(0, 0.7, (4, generators))
    tastes = means[group_of] + rng.normal(0, 0.5, (people, generators))
    who = rng.integers(0, people, votes_wanted)
    first = rng.integers(0, generators, votes_wanted)
    second = (first + rng.integers(1, generators, votes_wanted)) % generators
    prompt_of = rng.integers(0, len(prompts), votes_wanted)
    p_first = 1 / (1 + np.exp(tastes[who, second] - tastes[who, first]))
    draw = rng.random(votes_wanted)
    choice = np.where(rng.random(votes_wanted) < 0.05, "tie", np.where(draw < p_first, "left", "right"))
    for start in range(0, votes_wanted, 20_000):
        end = min(votes_wanted, start + 20_000)
        comparisons = Comparison.objects.bulk_create(
            [
                Comparison(
                    campaign=campaign,
                    participant=participants[who[v]],
                    prompt=prompts[prompt_of[v]],
                    left_population=by_cell[(prompts[prompt_of[v]].pk, made[first[v]].pk)],
                    right_population=by_cell[(prompts[prompt_of[v]].pk, made[second[v]].pk)],
                    status="voted",
                    lease_until=now + timedelta(minutes=5),
                    voted_at=now,
                )
                for v in range(start, end)
            ],
            batch_size=5000,
        )
        Vote.objects.bulk_create(
            [
                Vote(comparison=c, criterion=criterion, choice=str(choice[start + i]), dwell_ms=3000)
                for i, c in enumerate(comparisons)
            ],
            batch_size=5000,
        )
    recount_tallies(campaign=campaign)
    return campaign


def _clock(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def database_timing(votes: int, people: int, kind: str, redis: bool) -> None:
    from django.core.cache import cache
    from django.test import Client

    from arena import group_boards

    started = time.perf_counter()
    campaign = build_campaign(votes, people, 8, seed=11)
    built = time.perf_counter() - started
    targets = {"margins": [{"questions": ["group"], "shares": {f"g{g}": 0.25 for g in range(4)}}]}
    campaign.population_targets = targets
    campaign.save(update_fields=["population_targets"])
    criterion = campaign.criteria.get()
    board_of = lambda: group_boards.get_group_leaderboard(  # noqa: E731
        campaign=campaign, criterion="diversity", group="group:g0"
    )
    test_of = lambda: group_boards.get_group_test(  # noqa: E731
        campaign=campaign, criterion="diversity", question="group"
    )
    weighted_of = lambda: group_boards.get_weighted_leaderboard(campaign=campaign, criterion="diversity")  # noqa: E731

    def forget(reads: bool) -> None:
        cache.clear()
        if reads:  # the process's kept reads of the counted votes (none before they were kept)
            getattr(group_boards, "_READS", {}).clear()

    forget(True)
    read = _clock(lambda: group_boards._participant_votes(campaign, criterion, ""))
    rows = []
    for label, call in (("one group's board", board_of), ("the group test", test_of), ("weighted board", weighted_of)):
        forget(True)
        cold = _clock(call)  # as after a new vote: read and fit
        forget(False)
        warm = _clock(call)  # another payload of the same votes read them already
        hit = min(_clock(call) for _ in range(5))
        rows.append(f"{label} {cold:.2f} s on a miss ({warm:.2f} s with the votes read), {1000 * hit:.1f} ms cached")
    # The page stays responsive: the API's answer once cached, through Django's whole stack (median of 20).
    client = Client(HTTP_HOST="localhost")
    url = "/api/v1/campaigns/groups-bench/leaderboard/groups?question=group"
    client.get(url)
    answers = []
    for _ in range(20):
        started = time.perf_counter()
        response = client.get(url)
        answers.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
    print(
        f"database ({kind}, cache {'Redis' if redis else 'in-process'}): {votes:,} votes, {people:,} participants, "
        f"8 generators, 4 groups, {group_boards.GROUP_ROUNDS} rounds, {group_boards.GROUP_PERMUTATIONS} "
        f"permutations; built in {built:.0f} s; reading the votes with their participants {read:.2f} s; "
        + "; ".join(rows)
        + f"; GET .../leaderboard/groups cached: median {1000 * float(np.median(answers)):.1f} ms"
    )


# --- a scripted crowd through the JSON API -------------------------------------------------------------------

# Each image is one flat colour; a set of SET_SIZE is a sample of its generator's palette.
PALETTE = {
    "red": (220, 30, 30),
    "orange": (250, 140, 20),
    "yellow": (240, 220, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "purple": (140, 40, 170),
}
# wide: every colour alike; base: the demo's 70%-red skew; narrow: nearly always blue.
SKEW = {
    "wide": {c: 1 / 6 for c in PALETTE},
    "base": {c: (0.7 if c == "red" else 0.06) for c in PALETTE},
    "narrow": {c: (0.9 if c == "blue" else 0.02) for c in PALETTE},
}
SET_SIZE = 4


def build_api_campaign(slug: str, rng: np.random.Generator, sets_per_cell: int = 5) -> None:
    """An open public campaign asking "taste" before the first comparison, three generators on four prompts, each
    set a sample of its generator's colours, stored as the platform stores pictures (canonical PNGs)."""
    import hashlib
    import secrets

    from django.core.files.base import ContentFile
    from django.utils import timezone

    from annotation.models import Campaign, Criterion, Question
    from generation.image_files import canonical_png
    from generation.models import Generator, Image, Population, Prompt

    campaign = Campaign.objects.create(
        slug=slug, title=f"Groups {slug}", status="open", population_size=SET_SIZE, votes_per_pair=1000
    )
    Criterion.objects.create(campaign=campaign, key="diversity", question="Which set has more variety?")
    Question.objects.create(
        campaign=campaign, key="taste", text="Which do you prefer?", kind="single", choices=["varied", "base"]
    )
    generators = [Generator.objects.create(name=f"{name}-{slug}", source="builtin:tiny-random") for name in SKEW]
    prompts = [Prompt.objects.create(caption=f"a shape {p} ({slug})") for p in range(4)]
    campaign.generators.set(generators)
    campaign.prompts.set(prompts)
    pictures = {name: canonical_png(_png(colour)) for name, colour in PALETTE.items()}
    for generator, skew in zip(generators, SKEW.values(), strict=True):
        for prompt in prompts:
            for _ in range(sets_per_cell):
                population = Population.objects.create(
                    generator=generator,
                    prompt=prompt,
                    size=SET_SIZE,
                    seeds=list(range(SET_SIZE)),
                    status="ready",
                    ready_at=timezone.now(),
                )
                drawn = rng.choice(list(skew), SET_SIZE, p=list(skew.values()))
                for index, colour in enumerate(drawn):
                    picture = pictures[str(colour)]
                    image = Image(
                        population=population,
                        index=index,
                        seed=index,
                        generation_prompt=prompt.caption,
                        width=picture.width,
                        height=picture.height,
                        sha256=hashlib.sha256(picture.data).hexdigest(),
                        byte_size=len(picture.data),
                    )
                    image.file.save(f"{secrets.token_hex(16)}.png", ContentFile(picture.data), save=False)
                    image.save()


def _png(colour: tuple[int, int, int]) -> bytes:
    import io

    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", (16, 16), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _colour_of(data: bytes) -> str:
    """The palette colour nearest a served picture's first pixel (what the scripted participant sees)."""
    import io

    from PIL import Image as PILImage

    pixel = np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"), dtype=np.int64)[0, 0]
    return min(PALETTE, key=lambda c: int(((np.array(PALETTE[c]) - pixel) ** 2).sum()))


def _body(response: Any) -> bytes:
    assert response.status_code == 200, response.status_code
    return b"".join(response.streaming_content) if response.streaming else bytes(response.content)


def _entropy(colours: list[str]) -> float:
    _, counts = np.unique(colours, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


# How each taste scores a set it sees: colour spread (entropy), or how much it looks like `base` (its red share).
JUDGES: dict[str, Callable[[list[str]], float]] = {
    "colour-spread": _entropy,
    "like-base": lambda colours: colours.count("red") / len(colours),
}


def scripted_participant(
    client: Any, slug: str, taste: str, judge: str, comparisons: int, rng: np.random.Generator
) -> int:
    """One participant through the JSON API: refused until the questionnaire is answered, answers it, then asks,
    looks at every picture, and votes `comparisons` times (each vote bringing the next comparison)."""
    base = f"/api/v1/campaigns/{slug}"
    refused = client.post(f"{base}/comparisons/next", {}, content_type="application/json")
    assert refused.status_code == 403, refused.status_code
    assert refused.json()["error"]["code"] == "questionnaire_required"
    answered = client.post(f"{base}/questionnaire", {"answers": {"taste": taste}}, content_type="application/json")
    assert answered.status_code == 200, answered.status_code
    sharpness = max(0.5, rng.normal(3.0, 1.0))  # this participant's own decisiveness
    current = client.post(f"{base}/comparisons/next", {}, content_type="application/json").json()
    cast = 0
    while cast < comparisons and current:
        scores = []
        for side in ("left", "right"):
            colours = [_colour_of(_body(client.get(url))) for url in current[side]["images"]]
            scores.append(JUDGES[judge](colours))
        p_left = 1 / (1 + np.exp(-sharpness * (scores[0] - scores[1])))
        choice = "left" if rng.random() < p_left else "right"
        body: dict[str, Any] = {"votes": [{"criterion": "diversity", "choice": choice}], "dwell_ms": 2000}
        if cast + 1 < comparisons:
            body["next"] = {}
        answer = client.post(f"/api/v1/comparisons/{current['token']}/votes", body, content_type="application/json")
        assert answer.status_code == 200, answer.status_code
        cast += 1
        current = answer.json().get("next")
    return cast


def api_crowd(runs: int, people: int, comparisons: int, null: bool, start: int) -> list[tuple[float, int, int]]:
    """`runs` campaigns, each with two groups of `people` scripted participants: (p-value, comparisons of each
    group) per run. `null`: both groups judge colour spread (labels at random); else one judges colour spread
    and the other likes `base`."""
    from django.test import Client

    results = []
    for run in range(start, start + runs):
        rng = np.random.default_rng(30_000 + run)
        slug = f"crowd-{'null' if null else 'split'}-{run}"
        build_api_campaign(slug, rng)
        tastes = ["varied"] * people + ["base"] * people
        counted = {"varied": 0, "base": 0}
        for n, taste in enumerate(tastes):
            judge = "colour-spread" if null or taste == "varied" else "like-base"
            client = Client(
                HTTP_HOST="localhost",
                REMOTE_ADDR=f"10.{run % 250}.{n // 250}.{n % 250 + 1}",
                HTTP_USER_AGENT=f"scripted participant {run}-{n}",
            )
            counted[taste] += scripted_participant(client, slug, taste, judge, comparisons, rng)
        test = Client(HTTP_HOST="localhost").get(
            f"/api/v1/campaigns/{slug}/leaderboard/groups", {"question": "taste", "criterion": "diversity"}
        )
        assert test.status_code == 200, test.status_code
        results.append((float(test.json()["p_value"]), counted["varied"], counted["base"]))
    return results


def api_benchmark(power_runs: int, null_runs: int, kind: str) -> None:
    for null, runs in ((False, power_runs), (True, null_runs)):
        if not runs:
            continue
        started = time.perf_counter()
        results = api_crowd(runs, 15, 10, null, 0)
        took = time.perf_counter() - started
        p = np.array([r[0] for r in results])
        most = max(max(r[1], r[2]) for r in results)
        if null:
            print(
                f"api calibration ({kind}): two groups of 15 scripted participants with one taste (colour spread), "
                f"10 comparisons each through the JSON API: p < 0.05 in {int((p < 0.05).sum())} of {runs} runs "
                f"({100 * float((p < 0.05).mean()):.1f}%); {took / runs:.1f} s a run"
            )
        else:
            print(
                f"api power ({kind}): 15 scripted participants judging colour spread against 15 who like base, "
                f"10 comparisons each through the JSON API (at most {most} per group): p < 0.01 in "
                f"{int((p < 0.01).sum())} of {runs} runs, median p {float(np.median(p)):.3f}; {took / runs:.1f} s a run"
            )


def with_database(args: argparse.Namespace, skip: set[str]) -> None:
    """The database and api sections on one scratch database (SQLite, or PostgreSQL with --database-url)."""
    import os
    import tempfile

    # A scripted participant votes as soon as it has looked at the pictures, and every participant is a new
    # session: the dwell floor and the new-session throttle (both for people) are lifted for this process.
    os.environ["VOTE_MIN_DWELL_MS"] = "0"
    os.environ["THROTTLE_NEW_SESSION"] = "100000/hour"
    kind = "postgresql" if args.database_url else "sqlite"
    with tempfile.TemporaryDirectory(prefix="groups-bench-") as tmp:
        name = _setup_django(args.database_url, args.redis_url, Path(tmp))
        try:
            if "database" not in skip:
                database_timing(args.database_votes, args.database_participants, kind, bool(args.redis_url))
            if "api" not in skip:
                api_benchmark(args.api_power_runs, args.api_null_runs, kind)
        finally:
            if name:
                _drop_database(args.database_url, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="calibration runs (default 200)")
    parser.add_argument("--permutations", type=int, default=199)
    parser.add_argument("--power-runs", type=int, default=50)
    parser.add_argument("--raking-runs", type=int, default=30)
    parser.add_argument("--raking-rounds", type=int, default=0, help="bootstrap rounds of the weighted board")
    parser.add_argument("--timing-rounds", type=int, default=200)
    parser.add_argument("--skip", default="", help="comma-separated: power, calibration, raking, timing, database, api")
    parser.add_argument("--api-power-runs", type=int, default=10, help="scripted crowds of two tastes (default 10)")
    parser.add_argument("--api-null-runs", type=int, default=20, help="scripted crowds of one taste (default 20)")
    parser.add_argument("--database-votes", type=int, default=100_000)
    parser.add_argument("--database-participants", type=int, default=2_000)
    parser.add_argument(
        "--database-url", default="", help="postgres://USER@HOST:PORT (a scratch database is made); default SQLite"
    )
    parser.add_argument("--redis-url", default="", help="redis://HOST:PORT/DB for the cache; default in-process")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    print(f"# bench/groups.py on {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    if "power" not in skip:
        power(args.power_runs, args.permutations)
    if "calibration" not in skip:
        calibration(args.runs, args.permutations)
    if "raking" not in skip:
        raking(args.raking_runs, args.raking_rounds)
    if "timing" not in skip:
        timing(args.timing_rounds, args.permutations)
    if not {"database", "api"} <= skip:
        with_database(args, skip)


if __name__ == "__main__":
    main()
