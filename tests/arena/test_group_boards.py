"""Boards per group, the group test and the weighted board through the API: small groups never shown, caching."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Answer, CampaignParticipation, Participant, Question, QuestionnaireResponse
from arena import group_boards
from arena.models import Comparison, Vote
from arena.selectors import get_leaderboard
from arena.tallies import recount_tallies
from tests.factories import CampaignFactory, GeneratorFactory, PopulationFactory, PromptFactory

pytestmark = pytest.mark.django_db

NAMES = ("wide", "base", "narrow")


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    # Fewer rounds than the page's 200 / 199: these tests check the wiring, tests/arena/test_groups.py the math.
    monkeypatch.setattr(group_boards, "GROUP_ROUNDS", 20)
    monkeypatch.setattr(group_boards, "GROUP_PERMUTATIONS", 19)


@pytest.fixture
def study(db):
    return make_study()


def make_study():
    """An open public campaign of three generators, a question gender (with "prefer not to say") and hobbies."""
    campaign = CampaignFactory(slug="groups", status="open")
    campaign.criteria.create(key="diversity", question="Which set is more varied?", position=0)
    generators = {name: GeneratorFactory(name=name) for name in NAMES}
    prompt = PromptFactory()
    campaign.generators.set(generators.values())
    campaign.prompts.set([prompt])
    campaign.populations = {name: PopulationFactory(generator=g, prompt=prompt) for name, g in generators.items()}
    Question.objects.create(
        campaign=campaign, key="gender", text="Gender", kind="single", choices=["woman", "man"], sensitive=True
    )
    Question.objects.create(campaign=campaign, key="hobbies", text="Hobbies", kind="multiple", choices=["art", "sport"])
    return campaign


def voter(campaign, answers: dict, votes: list[tuple[str, str, str]]) -> Participant:
    """A participant with these answers who cast these (left, right, choice) votes on the diversity criterion."""
    participant = Participant.objects.create()
    response = QuestionnaireResponse.objects.create(campaign=campaign, participant=participant, asked_at=timezone.now())
    for key, value in answers.items():
        question = Question.objects.get(campaign=campaign, key=key, is_current=True)
        Answer.objects.create(response=response, question=question, value=value, answered_at=timezone.now())
    criterion = campaign.criteria.get(key="diversity")
    now = timezone.now()
    for left, right, choice in votes:
        comparison = Comparison.objects.create(
            campaign=campaign,
            participant=participant,
            prompt=campaign.populations[left].prompt,
            left_population=campaign.populations[left],
            right_population=campaign.populations[right],
            status=Comparison.Status.VOTED,
            lease_until=now + timedelta(minutes=5),
            voted_at=now,
        )
        Vote.objects.create(comparison=comparison, criterion=criterion, choice=choice, dwell_ms=500)
    return participant


def crowd(campaign, gender, people: int, favourite: str, rng: random.Random, votes: int = 8) -> list[Participant]:
    """`people` participants answering `gender` who pick `favourite` whenever it is shown (else a coin flip)."""
    made = []
    for _ in range(people):
        cast = []
        for _ in range(votes):
            left, right = rng.sample(NAMES, 2)
            if favourite in (left, right):
                choice = "left" if left == favourite else "right"
            else:
                choice = rng.choice(["left", "right", "tie"])
            cast.append((left, right, choice))
        made.append(voter(campaign, {"gender": gender, "hobbies": ["art"]}, cast))
    return made


def test_a_group_board_shows_only_its_participants_votes(client, study):
    # Given 6 women who prefer narrow and 6 men who prefer wide.
    rng = random.Random(1)
    crowd(study, "woman", 6, "narrow", rng)
    crowd(study, "man", 6, "wide", rng)
    recount_tallies(campaign=study)

    women = client.get("/api/v1/campaigns/groups/leaderboard", {"group": "gender:woman"})
    men = client.get("/api/v1/campaigns/groups/leaderboard", {"group": "gender:man"})
    everyone = get_leaderboard(campaign=study, criterion="diversity")

    assert women.status_code == 200, women.content
    assert women.json()["rows"][0]["generator"] == "narrow"
    assert men.json()["rows"][0]["generator"] == "wide"
    assert women.json()["group"] == {"question": "gender", "value": "woman", "participants": 6}
    assert women.json()["votes"] + men.json()["votes"] == everyone["votes"] == 96
    assert women.json()["intervals"] == "participant bootstrap"
    # Several choices: everyone who ticked it.
    art = client.get("/api/v1/campaigns/groups/leaderboard", {"group": "hobbies:art"})
    assert art.json()["votes"] == 96


def test_a_group_smaller_than_k_is_never_shown_and_its_refusal_says_nothing_of_its_size(client, study):
    # Given k = 5, 4 participants who prefer not to say, and a value nobody gave.
    rng = random.Random(2)
    crowd(study, "woman", 5, "narrow", rng)
    crowd(study, "prefer not to say", 4, "base", rng)
    recount_tallies(campaign=study)

    small = client.get("/api/v1/campaigns/groups/leaderboard", {"group": "gender:prefer not to say"})
    empty = client.get("/api/v1/campaigns/groups/leaderboard", {"group": "gender:nobody"})
    enough = client.get("/api/v1/campaigns/groups/leaderboard", {"group": "gender:woman"})

    assert small.status_code == empty.status_code == 403
    assert small.json() == empty.json()
    assert small.json()["error"]["code"] == "group_too_small"
    assert enough.status_code == 200
    # Raising k hides the group that was shown.
    study.min_group_size = 6
    study.save(update_fields=["min_group_size"])
    assert client.get("/api/v1/campaigns/groups/leaderboard", {"group": "gender:woman"}).status_code == 403


def test_a_group_counts_participants_with_counted_votes_only(client, study):
    # Given 5 women, one of whom is then flagged: her votes leave the board, and the group falls under k.
    rng = random.Random(3)
    women = crowd(study, "woman", 5, "narrow", rng)
    recount_tallies(campaign=study)
    assert client.get("/api/v1/campaigns/groups/leaderboard", {"group": "gender:woman"}).status_code == 200

    CampaignParticipation.objects.update_or_create(campaign=study, participant=women[0], defaults={"is_flagged": True})
    recount_tallies(campaign=study)

    assert client.get("/api/v1/campaigns/groups/leaderboard", {"group": "gender:woman"}).status_code == 403


@pytest.mark.parametrize(
    ("group", "status", "code"),
    [("gender", 400, "invalid"), ("age:30", 404, "not_found"), (":woman", 400, "invalid")],
)
def test_bad_groups_are_refused_naming_what_is_wrong(client, study, group, status, code):
    response = client.get("/api/v1/campaigns/groups/leaderboard", {"group": group})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_the_group_test_finds_groups_that_disagree_and_leaves_small_groups_out(client, study):
    rng = random.Random(4)
    crowd(study, "woman", 8, "narrow", rng, votes=10)
    crowd(study, "man", 8, "wide", rng, votes=10)
    crowd(study, "prefer not to say", 2, "base", rng)
    recount_tallies(campaign=study)

    response = client.get("/api/v1/campaigns/groups/leaderboard/groups", {"question": "gender"})

    assert response.status_code == 200, response.content
    body = response.json()
    # With 19 permutations the smallest p-value is 1/20.
    assert body["p_value"] == pytest.approx(0.05)
    assert body["suppressed_groups"] == 1
    assert sorted(g["value"] for g in body["groups"]) == ["man", "woman"]
    assert "prefer not to say" not in response.content.decode()
    narrow = next(d for d in body["differences"] if d["generator"] == "narrow")
    # The reference is the first of two equal groups ("man"): women rate narrow higher.
    assert body["reference"] == "man"
    assert narrow["difference"] > 0


def test_the_group_test_refuses_overlapping_groups_and_too_few_groups(client, study):
    rng = random.Random(5)
    crowd(study, "woman", 5, "narrow", rng)
    recount_tallies(campaign=study)

    overlapping = client.get("/api/v1/campaigns/groups/leaderboard/groups", {"question": "hobbies"})
    alone = client.get("/api/v1/campaigns/groups/leaderboard/groups", {"question": "gender"})
    missing = client.get("/api/v1/campaigns/groups/leaderboard/groups")

    assert overlapping.json()["error"]["code"] == "question_not_groupable"
    assert alone.status_code == 409
    assert alone.json()["error"]["code"] == "too_few_groups"
    assert missing.status_code == 400


def test_the_weighted_board_reports_composition_effective_size_and_empty_cells(client, study):
    # Given 15 men who prefer wide, 5 women who prefer narrow, 2 who prefer not to say; a target of 20% men, 70%
    # women and 10% "other", which nobody answered.
    rng = random.Random(6)
    crowd(study, "man", 15, "wide", rng)
    crowd(study, "woman", 5, "narrow", rng)
    crowd(study, "prefer not to say", 2, "base", rng)
    recount_tallies(campaign=study)
    study.population_targets = {
        "margins": [{"questions": ["gender"], "shares": {"man": 0.2, "woman": 0.7, "other": 0.1}}],
        "cap": 10,
    }
    study.save(update_fields=["population_targets"])

    response = client.get("/api/v1/campaigns/groups/leaderboard/weighted")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["unweighted"]["rows"][0]["generator"] == "wide"
    assert body["weighted"]["rows"][0]["generator"] == "narrow"
    assert body["empty_cells"] == [{"margin": "gender", "cell": ["other"]}]
    # "other" is empty, so men and women share the target 2:7. Men weigh (2/9)/(15/20), women (7/9)/(5/20):
    # 0.2963 and 3.1111; Kish = 20^2 / (15 * 0.2963^2 + 5 * 3.1111^2) = 400 / 49.71 = 8.05.
    assert body["effective_size"] == pytest.approx(8.05, abs=0.01)
    assert body["participants"] == 20
    # Two people preferred not to say: fewer than k, so the count is not shown.
    assert body["excluded"] is None
    cells = {tuple(c["cell"]): c for c in body["composition"]}
    assert cells[("man",)]["sample"] == pytest.approx(0.75)
    assert cells[("woman",)]["weighted"] == pytest.approx(7 / 9)


def test_the_weighted_board_needs_targets_and_says_what_is_wrong_with_them(client, study):
    crowd(study, "man", 5, "wide", random.Random(7))
    recount_tallies(campaign=study)

    none = client.get("/api/v1/campaigns/groups/leaderboard/weighted")
    study.population_targets = {"margins": [{"questions": ["gender"], "shares": {"man": 0.5}}]}
    study.save(update_fields=["population_targets"])
    bad = client.get("/api/v1/campaigns/groups/leaderboard/weighted")

    assert none.status_code == 404
    assert none.json()["error"]["code"] == "no_targets"
    assert bad.status_code == 400
    assert "sum to 0.5" in bad.json()["error"]["message"]


def test_a_group_board_is_cached_until_a_vote_or_an_answer_changes_it(client, study, django_assert_max_num_queries):
    rng = random.Random(8)
    crowd(study, "woman", 5, "narrow", rng)
    recount_tallies(campaign=study)
    first = client.get("/api/v1/campaigns/groups/leaderboard", {"group": "gender:woman"}).json()

    # Cached: no votes or answers are read again.
    with django_assert_max_num_queries(12) as queries:
        again = client.get("/api/v1/campaigns/groups/leaderboard", {"group": "gender:woman"}).json()
    assert again == first
    assert not any("arena_vote" in q["sql"] for q in queries.captured_queries)

    # A new woman's votes change the board.
    crowd(study, "woman", 1, "wide", rng)
    recount_tallies(campaign=study)
    after = client.get("/api/v1/campaigns/groups/leaderboard", {"group": "gender:woman"}).json()
    assert after["group"]["participants"] == 6


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_live_socket_never_pushes_a_group_board():
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator

    from config.asgi import application

    # Given a small group and a large one.
    def given():
        campaign = make_study()
        rng = random.Random(9)
        crowd(campaign, "woman", 5, "narrow", rng)
        crowd(campaign, "prefer not to say", 2, "base", rng)
        recount_tallies(campaign=campaign)

    await sync_to_async(given)()
    communicator = WebsocketCommunicator(
        application,
        "/ws/campaigns/groups/leaderboard/",
        headers=[(b"host", b"localhost"), (b"origin", b"http://localhost")],
    )
    connected, _ = await communicator.connect()
    assert connected

    # When the page asks the socket for a group, it gets the whole crowd's board: 7 participants' 56 votes.
    await communicator.send_json_to({"criterion": "diversity", "category": "", "group": "gender:prefer not to say"})
    pushed = await communicator.receive_json_from(timeout=10)
    assert pushed["votes"] == 56
    assert "group" not in pushed
    await communicator.disconnect()
