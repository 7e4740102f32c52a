"""Attacks on what a comparison spends and shows, tried through the JSON API as an outsider would.

Each one worked on the code before: asking without voting used a campaign's sets up for good, a set whose
generator was revealed came back (to the same session and to a fresh cookie of the same browser), a
deactivated generator's or a used-up set was issued on the far side of a pair in progress, a closed
campaign still took votes and lease renewals, and cookie-less requests could ask for comparisons without limit.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annotation.models import Campaign, Participant
from annotation.selectors import campaign_populations
from annotation.services import set_campaign_status
from arena.issuing import LEASE, issue_comparison
from arena.models import Comparison, PairTally
from arena.voting import VoteInput, cast_votes
from generation.models import Demand, Population
from generation.selectors import get_queue_states

pytestmark = pytest.mark.django_db

BOTH = {"votes": [{"criterion": "diversity", "choice": "tie"}, {"criterion": "quality", "choice": "tie"}]}
BROWSER = {"HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0", "REMOTE_ADDR": "203.0.113.7"}


def ask(client: Client, slug: str = "study") -> dict:
    response = client.post(f"/api/v1/campaigns/{slug}/comparisons/next", {}, content_type="application/json")
    return {"status": response.status_code, **response.json()}


def vote(client: Client, token: str) -> int:
    body = {**BOTH, "dwell_ms": 2000}
    return client.post(f"/api/v1/comparisons/{token}/votes", body, content_type="application/json").status_code


def sides(token: str) -> set[int]:
    comparison = Comparison.objects.get(token=token)
    return {comparison.left_population_id, comparison.right_population_id}


@pytest.fixture
def no_dwell_floor(settings):  # type: ignore[no-untyped-def]
    settings.VOTE_MIN_DWELL_MS = 0


def test_asking_without_voting_spends_nothing_once_the_leases_run_out(arena_campaign, settings, no_dwell_floor):
    # Given an open campaign with 3 generators x 2 prompts x 2 sets, and no limit on new sessions,
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "new_session": None},
    }
    campaign = arena_campaign(generators=3, prompts=2, per_queue=2, votes_per_pair=2, size=2)
    for generator in campaign.generators.all():
        for prompt in campaign.prompts.all():
            Demand.objects.create(
                owner="test", generator=generator, prompt=prompt, size=2, high_watermark=2, max_uses=2
            )
    servable_before = campaign_populations(campaign, servable=True).count()
    queues_before = [(q.generator_id, q.prompt_id, q.available) for q in get_queue_states()]
    assert [available for *_, available in queues_before] == [2] * 6
    # when cookie-less clients ask for 40 comparisons and never vote,
    for _ in range(40):
        ask(Client(**BROWSER))
    # then while their leases run the sets are reserved, not spent: no queue is asked for new sets,
    assert [(q.generator_id, q.prompt_id, q.available) for q in get_queue_states()] == queues_before
    assert Population.objects.filter(uses__gt=0).count() == 0
    # and once the leases ran out, every set can be served again and an honest participant is served.
    later = timezone.now() + LEASE + timedelta(seconds=1)
    honest = Participant.objects.create()
    comparison = issue_comparison(campaign=campaign, participant=honest, now=later)
    assert Population.objects.filter(reserved__gt=0).count() == 2  # the honest participant's two sets only
    assert campaign_populations(campaign, servable=True).count() == servable_before
    assert comparison.status == Comparison.Status.ISSUED


def test_cookie_less_requests_from_one_address_are_throttled_and_an_honest_participant_keeps_voting(
    arena_campaign, settings, no_dwell_floor
):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "new_session": "5/hour"},
    }
    arena_campaign(generators=3, prompts=2, per_queue=3, votes_per_pair=3, size=2)
    honest = Client(REMOTE_ADDR="198.51.100.1")
    first = ask(honest)
    answers = [ask(Client(**BROWSER)) for _ in range(30)]
    statuses = [a["status"] for a in answers]
    assert statuses[:5] == [200] * 5
    assert set(statuses[5:]) == {429}
    refused = answers[-1]["error"]
    assert refused["code"] == "throttled"
    assert "new sessions from this address" in refused["message"]
    # The participant who keeps their session is never counted, and is served throughout.
    token = first["token"]
    for _ in range(3):
        assert vote(honest, token) == 200
        following = ask(honest)
        assert following["status"] == 200, following
        token = following["token"]


def test_a_page_load_without_a_cookie_counts_as_a_new_session(arena_campaign, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "new_session": "2/hour"},
    }
    arena_campaign()
    assert [Client(**BROWSER).get("/c/study/").status_code for _ in range(3)] == [200, 200, 429]
    assert Comparison.objects.count() == 2


def test_a_set_revealed_to_a_browser_is_never_shown_to_it_again_even_under_a_new_cookie(arena_campaign, no_dwell_floor):
    # Given a campaign with plenty of sets, and a browser that votes "tie" to learn generators by their sets,
    arena_campaign(generators=3, prompts=2, per_queue=4, votes_per_pair=5, size=2)
    first = Client(**BROWSER)
    revealed: set[int] = set()
    for _ in range(6):
        answer = ask(first)
        if answer["status"] != 200:
            break
        assert not sides(answer["token"]) & revealed  # never within one session
        assert vote(first, answer["token"]) == 200
        revealed |= sides(answer["token"])
    assert len(revealed) >= 6
    # when the same browser comes back without its cookie,
    second = Client(**BROWSER)
    shown = []
    for _ in range(6):
        answer = ask(second)
        if answer["status"] != 200:
            break
        shown.append(sides(answer["token"]))
        assert vote(second, answer["token"]) == 200
    # then it is never shown a set it saw revealed, though another browser is.
    assert shown
    assert all(not s & revealed for s in shown)
    other = Client(REMOTE_ADDR="192.0.2.99", HTTP_USER_AGENT="another browser")
    assert ask(other)["status"] == 200


def test_a_pair_in_progress_is_not_finished_with_a_deactivated_generator_s_set(arena_campaign, no_dwell_floor):
    # Given a pair in progress (one vote of two wanted) between generators 0 and 1,
    campaign = arena_campaign(generators=3, prompts=1, per_queue=1, votes_per_pair=2, size=2)
    starter = Participant.objects.create()
    started = issue_comparison(campaign=campaign, participant=starter)
    later = timezone.now() + timedelta(seconds=2)
    cast_votes(
        token=started.token,
        participant=starter,
        votes=[VoteInput("diversity", "tie"), VoteInput("quality", "tie")],
        dwell_ms=10,
        now=later,
    )
    generators = {Population.objects.get(pk=pk).generator for pk in sides(started.token)}
    # when one of its generators is deactivated,
    gone = sorted(generators, key=lambda g: g.pk)[0]
    gone.is_active = False
    gone.save()
    # then nobody is issued that generator's sets, the pair in progress included.
    for _ in range(4):
        try:
            comparison = issue_comparison(
                campaign=Campaign.objects.get(pk=campaign.pk), participant=Participant.objects.create(), now=later
            )
        except Exception:  # nothing ready once the rest is used up
            break
        assert gone.pk not in {Population.objects.get(pk=pk).generator_id for pk in sides(comparison.token)}


def test_a_used_up_set_is_not_pushed_past_the_votes_wanted_on_the_far_side_of_a_pair(arena_campaign):
    # Given sets A, B, C of three generators (2 votes wanted a pair): A-B voted once, so in progress, and B-C
    # voted once, which used B up (each set serves at most 2 comparisons),
    campaign = arena_campaign(generators=3, prompts=1, per_queue=1, votes_per_pair=2, size=2)
    a, b, c = Population.objects.order_by("generator__name")
    now = timezone.now()
    for left, right in ((a, b), (b, c)):
        Comparison.objects.create(
            campaign=campaign,
            participant=Participant.objects.create(),
            prompt=left.prompt,
            left_population=left,
            right_population=right,
            status=Comparison.Status.VOTED,
            lease_until=now + LEASE,
            voted_at=now,
        )
    Population.objects.filter(pk=b.pk).update(uses=2)
    Population.objects.filter(pk__in=[a.pk, c.pk]).update(uses=1)
    # when a new participant asks,
    comparison = issue_comparison(campaign=campaign, participant=Participant.objects.create())
    # then they are not given the pair in progress through its used-up set: B is not shown a third time.
    assert b.pk not in sides(comparison.token)
    assert sides(comparison.token) == {a.pk, c.pk}


def test_a_closed_campaign_takes_no_vote_and_renews_no_lease(client, arena_campaign, no_dwell_floor):
    campaign = arena_campaign()
    held = ask(client)
    spare = ask(client)
    tallies_before = list(PairTally.objects.values_list("a_wins", "b_wins", "ties", "both_bad"))
    set_campaign_status(campaign=campaign, status=Campaign.Status.CLOSED)
    renewal = client.post(f"/api/v1/comparisons/{held['token']}/lease")
    assert renewal.status_code == 409
    assert renewal.json()["error"]["code"] == "campaign_closed"
    refused = client.post(
        f"/api/v1/comparisons/{spare['token']}/votes", {**BOTH, "dwell_ms": 2000}, content_type="application/json"
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "campaign_closed"
    assert list(PairTally.objects.values_list("a_wins", "b_wins", "ties", "both_bad")) == tallies_before
    assert Comparison.objects.get(token=spare["token"]).status == Comparison.Status.ISSUED


def test_a_paused_campaign_takes_the_vote_on_screen_but_renews_no_lease(client, arena_campaign, no_dwell_floor):
    campaign = arena_campaign()
    held = ask(client)
    set_campaign_status(campaign=campaign, status=Campaign.Status.PAUSED)
    renewal = client.post(f"/api/v1/comparisons/{held['token']}/lease")
    assert renewal.status_code == 409
    assert renewal.json()["error"]["code"] == "campaign_paused"
    assert vote(client, held["token"]) == 200
    assert ask(client)["error"]["code"] == "campaign_closed"  # and nothing new is issued


def test_a_new_session_of_the_same_browser_is_never_shown_a_set_revealed_to_it(arena_campaign, no_dwell_floor):
    # Given three generators with one set each, and a browser that voted once (two of the three sets revealed),
    arena_campaign(generators=3, prompts=1, per_queue=1, votes_per_pair=5)
    first = Client(**BROWSER)
    shown = ask(first)
    assert vote(first, shown["token"]) == 200
    # when the same browser comes back under a new cookie, every pair it could get holds a revealed set:
    again = ask(Client(**BROWSER))
    assert again["status"] == 409
    assert again["error"]["code"] == "nothing_ready"
    # while another browser is served one of those very pairs.
    other = ask(Client(REMOTE_ADDR="198.51.100.9", HTTP_USER_AGENT="another browser"))
    assert other["status"] == 200
