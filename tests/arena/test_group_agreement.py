"""The metrics' agreement with the crowd for one group of participants (GET .../metrics?group=QUESTION:VALUE)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from annotation.models import Answer, Criterion, Participant, Question, QuestionnaireResponse, WithdrawnBy
from arena.models import Comparison, Vote
from arena.participation import withdraw_participant
from arena.tallies import recount_tallies
from tests.metrics.conftest import study  # noqa: F401  (the fixture: narrow, middle, wide on four prompts)

pytestmark = pytest.mark.django_db

URL = "/api/v1/campaigns/study/metrics"


def person(campaign, taste: str) -> Participant:  # type: ignore[no-untyped-def]
    participant = Participant.objects.create()
    response = QuestionnaireResponse.objects.create(campaign=campaign, participant=participant, asked_at=timezone.now())
    question = Question.objects.get(campaign=campaign, key="taste", is_current=True)
    Answer.objects.create(response=response, question=question, value=taste, answered_at=timezone.now())
    return participant


def cast(campaign, participant, prompt, left, right, choice: str, criterion: str = "diversity") -> None:  # type: ignore[no-untyped-def]
    comparison = Comparison.objects.create(
        campaign=campaign,
        participant=participant,
        prompt=prompt,
        left_population=left,
        right_population=right,
        lease_until=timezone.now() + timezone.timedelta(minutes=5),
        status="voted",
        voted_at=timezone.now(),
    )
    Vote.objects.create(
        comparison=comparison, criterion=campaign.criteria.get(key=criterion), choice=choice, dwell_ms=3000
    )


@pytest.fixture
def crowd(study):  # type: ignore[no-untyped-def]  # noqa: F811
    """6 participants who answer "varied" and always pick the more varied set; 5 "plain" who pick the narrower set
    in 3 of their 4 votes; 2 "other". All on the open prompt "a circle"."""
    campaign, prompts, populations = study
    Question.objects.create(
        campaign=campaign, key="taste", text="Your taste?", kind="single", choices=["varied", "plain", "other"]
    )
    circle = prompts[0]
    narrow, middle, wide = (populations[(name, circle.pk)] for name in ("narrow", "middle", "wide"))
    # Discrepancy from the uniform target: wide 0 < middle < narrow, so the measure prefers the more varied set.
    pairs = [(narrow, wide), (wide, middle), (middle, narrow), (wide, narrow)]
    varied_choice = ["right", "left", "left", "left"]  # the more varied of each pair
    plain_choice = ["left", "right", "right", "left"]  # the narrower, but wide over narrow in the last
    people: dict[str, list[Participant]] = {"varied": [], "plain": [], "other": []}
    for taste, count, choices in (("varied", 6, varied_choice), ("plain", 5, plain_choice), ("other", 2, plain_choice)):
        for _ in range(count):
            who = person(campaign, taste)
            people[taste].append(who)
            for (left, right), choice in zip(pairs, choices, strict=True):
                cast(campaign, who, circle, left, right, choice)
    recount_tallies(campaign=campaign)
    return campaign, people


def discrepancy(body: dict, criterion: str = "diversity") -> dict:
    return next(a for a in body["agreement"] if (a["criterion"], a["measure"]) == (criterion, "discrepancy:colour"))


def test_a_groups_agreement_is_computed_on_its_votes_with_participant_bootstrap_intervals(crowd):  # type: ignore[no-untyped-def]
    client = Client()
    varied = client.get(URL, {"group": "taste:varied"})
    plain = client.get(URL, {"group": "taste:plain"})
    everyone = client.get(URL).json()

    assert varied.status_code == plain.status_code == 200, (varied.content, plain.content)
    assert varied.json()["group"] == {"question": "taste", "value": "varied", "participants": 6, "min_group_size": 5}
    # The varied group agrees on all 24 of its judged votes; the plain group on 5 of 20 (one in four each).
    mine, theirs = discrepancy(varied.json()), discrepancy(plain.json())
    assert (mine["votes"], mine["agree"], mine["share"]) == (24, 24, 1.0)
    assert (theirs["votes"], theirs["agree"], theirs["share"]) == (20, 5, 0.25)
    # Every participant of a group agrees alike, so redrawing them never moves the share: the interval is the
    # point (a vote-level interval on 5 of 20 would be about 0.11 to 0.47).
    assert mine["intervals"] == theirs["intervals"] == "participant bootstrap"
    assert (theirs["ci_low"], theirs["ci_high"]) == (pytest.approx(0.25), pytest.approx(0.25))
    # The rank correlation is with the group's own board: wide first for the varied, narrow first for the plain.
    assert mine["spearman"] == pytest.approx(1.0)
    assert theirs["spearman"] == pytest.approx(-1.0)
    # The whole crowd's agreement is unchanged: 24 + 5 + 2 of 52, with a Wilson interval.
    whole = discrepancy(everyone)
    assert (whole["votes"], whole["agree"]) == (52, 31)
    assert whole["intervals"] == "wilson"
    assert "group" not in everyone
    # The metrics table itself is every set's, whoever voted.
    assert varied.json()["rows"] == everyone["rows"]


def test_a_group_under_k_is_refused_alike_whether_small_or_empty_and_a_withdrawal_counts_at_once(crowd):  # type: ignore[no-untyped-def]
    campaign, people = crowd
    client = Client()
    small = client.get(URL, {"group": "taste:other"})
    empty = client.get(URL, {"group": "taste:nobody"})
    assert small.status_code == empty.status_code == 403
    assert small.json() == empty.json()
    assert small.json()["error"]["code"] == "group_too_small"
    assert client.get(URL, {"group": "taste:plain"}).status_code == 200  # now cached
    # One of the 5 plain participants withdraws: the group is under k at once, not when the cache expires.
    withdraw_participant(campaign=campaign, participant=people["plain"][0], by=WithdrawnBy.PARTICIPANT)
    assert client.get(URL, {"group": "taste:plain"}).json()["error"]["code"] == "group_too_small"


def test_a_criterion_fewer_than_k_of_the_group_voted_on_shows_no_figure(crowd):  # type: ignore[no-untyped-def]
    campaign, people = crowd
    Criterion.objects.create(campaign=campaign, key="quality", question="Which looks better?", position=1)
    prompt = campaign.prompts.get(caption="a circle")
    narrow, wide = (campaign.generators.get(name=n).populations.get(prompt=prompt) for n in ("narrow", "wide"))
    for who in people["varied"][:3]:
        cast(campaign, who, prompt, narrow, wide, "right", criterion="quality")
    recount_tallies(campaign=campaign)

    body = Client().get(URL, {"group": "taste:varied"}).json()

    quality = discrepancy(body, "quality")
    assert quality["suppressed"] is True
    assert quality["share"] is None
    assert quality["votes"] is None
    assert discrepancy(body)["votes"] == 24


def test_a_group_of_a_question_not_asked_is_not_found(crowd):  # type: ignore[no-untyped-def]
    response = Client().get(URL, {"group": "age:30"})
    assert response.status_code == 404
    assert "taste" in response.json()["error"]["message"]
    bad = Client().get(URL, {"group": "taste"})
    assert bad.status_code == 400
    assert "QUESTION:VALUE" in bad.json()["error"]["message"]
