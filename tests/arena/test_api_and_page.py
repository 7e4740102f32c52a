"""The voting API and page: the flow, the errors, and nothing that tells the sides apart."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

from annotation.models import Campaign, Criterion, Participant
from annotation.selectors import CAMPAIGNS_VERSION_KEY, get_live_campaign
from annotation.services import set_campaign_status
from arena.models import Comparison, Vote

pytestmark = pytest.mark.django_db

BOTH = {"votes": [{"criterion": "diversity", "choice": "right"}, {"criterion": "quality", "choice": "both_bad"}]}


def next_comparison(client, slug="study", **body):
    return client.post(f"/api/v1/campaigns/{slug}/comparisons/next", body, content_type="application/json")


def vote(client, token, body=None, dwell_ms=1500):
    payload = {**(body or BOTH), "dwell_ms": dwell_ms}
    return client.post(f"/api/v1/comparisons/{token}/votes", payload, content_type="application/json")


def test_api_flow_issue_vote_reveal(client, arena_campaign):
    arena_campaign()
    issued = next_comparison(client)
    assert issued.status_code == 200
    data = issued.json()
    assert set(data) == {"token", "prompt", "criteria", "left", "right", "expires_at", "progress"}
    assert [c["key"] for c in data["criteria"]] == ["diversity", "quality"]
    assert len(data["left"]["images"]) == len(data["right"]["images"]) == 6
    reveal = vote(client, data["token"])
    assert reveal.status_code == 200
    body = reveal.json()
    comparison = Comparison.objects.get(token=data["token"])
    assert body["left"]["generator"] == comparison.left_population.generator.name
    assert body["right"]["generator"] == comparison.right_population.generator.name
    assert body["votes_cast"] == 1
    assert Vote.objects.filter(comparison=comparison).count() == 2


def test_nothing_before_the_vote_reveals_which_generator_made_which_side(client, arena_campaign):
    campaign = arena_campaign()
    issued = next_comparison(client)
    text = issued.content.decode() + json.dumps(dict(issued.headers))
    page = client.get("/c/study/").content.decode()
    for generator in campaign.generators.all():
        # (Generator ids are not searched for as text: image folders are two random hex digits and
        # may read like an id. The URL shape below proves the URLs carry no generator.)
        for secret in (generator.name, generator.display_name, generator.source):
            assert secret not in text
            assert secret not in page
    data = issued.json()
    urls = data["left"]["images"] + data["right"]["images"]
    # Image URLs are minted for this comparison (arena.image_urls): its token, the side and place the page
    # already shows, and a MAC; the same shape on both sides, nothing of the stored file.
    token = re.escape(data["token"])
    assert all(re.fullmatch(rf"/i/{token}/[lr][0-9]+/[0-9a-f]{{32}}\.png", url) for url in urls)
    assert len(set(urls)) == 12
    for url in urls[:1]:
        response = client.get(url)
        assert response.status_code == 200
        assert not any(g.name in json.dumps(dict(response.headers)) for g in campaign.generators.all())


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"votes": [{"criterion": "diversity", "choice": "left"}]}, 400, "missing: quality"),
        ({"votes": [{"criterion": "x", "choice": "left"}, *BOTH["votes"]]}, 400, "unknown criterion 'x'"),
        ({"votes": [{"criterion": "diversity", "choice": "up"}]}, 400, "votes: "),
        ({"votes": []}, 400, "votes: "),
        ({"votes": "left"}, 400, "votes: "),
    ],
)
def test_bad_vote_requests_are_4xx_in_the_error_shape_and_change_nothing(client, arena_campaign, body, status, message):
    arena_campaign()
    token = next_comparison(client).json()["token"]
    response = vote(client, token, body)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"code", "message"}
    assert message in error["message"]
    assert not Vote.objects.exists()


def test_malformed_json_and_bad_dwell_are_clear_400s(client, arena_campaign):
    arena_campaign()
    token = next_comparison(client).json()["token"]
    response = client.post(f"/api/v1/comparisons/{token}/votes", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["error"]["message"]
    assert vote(client, token, dwell_ms=-1).json()["error"]["message"].startswith("dwell_ms:")
    assert not Vote.objects.exists()


def test_replayed_and_foreign_votes_are_refused(client, arena_campaign):
    arena_campaign()
    from django.test import Client

    token = next_comparison(client).json()["token"]
    stranger = Client()
    foreign = vote(stranger, token)
    assert foreign.status_code == 403
    assert foreign.json()["error"]["code"] == "forbidden"
    assert vote(client, token).status_code == 200
    replay = vote(client, token)
    assert replay.status_code == 409
    assert replay.json()["error"]["message"] == "this comparison has already been voted on"
    assert Vote.objects.count() == 2


def test_nothing_ready_is_a_409_with_the_queue_state_available(client, arena_campaign):
    arena_campaign(per_queue=0)
    response = next_comparison(client)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "nothing_ready"
    queue = client.get("/api/v1/campaigns/study/queue").json()
    assert set(queue) == {
        "ready",
        "wanted",
        "in_progress",
        "waiting",
        "images_per_s",
        "first_comparison_s",
        "all_ready_s",
    }
    page = client.get("/c/study/").content.decode()
    assert "Images are still being generated" in page


def test_unknown_draft_and_invite_only_campaigns(client, arena_campaign):
    campaign = arena_campaign()
    assert next_comparison(client, slug="nope").status_code == 404
    campaign.access = "invite"
    campaign.save()
    assert client.get("/c/study/").status_code == 404
    assert next_comparison(client).status_code == 404
    assert client.get(f"/c/study/?invite={campaign.invite_token}").status_code == 200
    assert next_comparison(client).status_code == 200  # the session remembers the invite


def test_anonymous_participant_is_kept_in_the_session_and_a_login_links_it(client, arena_campaign):
    arena_campaign()
    client.get("/c/study/")
    client.get("/c/study/")
    assert Participant.objects.count() == 1
    anonymous = Participant.objects.get()
    user = get_user_model().objects.create_user("ada", password="pw-for-tests-only")
    client.force_login(user)
    client.get("/c/study/")
    anonymous.refresh_from_db()
    assert (anonymous.kind, anonymous.user) == ("user", user)


def test_crowd_entry_parameters_resume_the_same_participant_and_keep_no_raw_id(client, arena_campaign):
    arena_campaign()
    entry = "/c/study/?PROLIFIC_PID=worker-123&STUDY_ID=s1&SESSION_ID=x9"
    client.get(entry)
    from django.test import Client

    Client().get(entry)  # re-entry from another browser
    crowd = Participant.objects.get(kind="prolific")
    # The study id names the researcher's study and is kept; the session id is a keyed hash, like the worker's.
    assert crowd.entry_params["STUDY_ID"] == "s1"
    assert len(crowd.entry_params["SESSION_ID"]) == 64
    stored = json.dumps(list(Participant.objects.values()), default=str)
    assert "worker-123" not in stored
    assert "x9" not in stored


@pytest.mark.parametrize("size", [1, 9])
def test_page_works_with_one_and_nine_images_per_side(client, arena_campaign, size):
    arena_campaign(size=size)
    page = client.get("/c/study/")
    assert page.status_code == 200
    data = json.loads(
        re.search(
            r'<script id="initial-comparison" type="application/json">(.*?)</script>', page.content.decode()
        ).group(1)
    )
    assert len(data["left"]["images"]) == len(data["right"]["images"]) == size


def test_html_in_a_prompt_is_escaped_and_a_very_long_prompt_is_shown(client, arena_campaign):
    caption = '<script>alert("x")</script><b>bold</b> ' + "a very long prompt " * 40
    arena_campaign(caption=caption.strip())
    page = client.get("/c/study/").content.decode()
    assert "<script>alert" not in page
    assert "<b>bold</b>" not in page
    assert "\\u003Cscript\\u003Ealert" in page  # json_script escapes; vote.js sets it as text


def test_demo_generators_make_images_of_one_size_so_size_cannot_tell_the_sides_apart():
    from generation.offline import DEMO_GENERATORS

    sizes = {(spec.settings["width"], spec.settings["height"]) for spec in DEMO_GENERATORS}
    assert len(sizes) == 1


def test_a_change_to_the_campaign_or_its_criteria_shows_at_once_though_servers_keep_a_copy(client, arena_campaign):
    # Given a campaign the server has already read (and keeps a copy of)
    campaign = arena_campaign()
    first = next_comparison(client).json()
    assert vote(client, first["token"]).status_code == 200
    # When a criterion is added, the next comparison asks it and a vote without it is refused
    Criterion.objects.create(campaign=campaign, key="novelty", question="Which set is more novel?", position=2)
    second = next_comparison(client).json()
    assert [c["key"] for c in second["criteria"]] == ["diversity", "quality", "novelty"]
    refused = vote(client, second["token"])
    assert refused.status_code == 400
    assert "novelty" in refused.json()["error"]["message"]
    # When the campaign is paused, no comparison is issued any more
    set_campaign_status(campaign=campaign, status="paused")
    paused = next_comparison(client)
    assert paused.status_code == 409
    assert paused.json()["error"]["code"] == "campaign_closed"


def test_a_campaign_changed_by_another_server_process_is_read_again(client, arena_campaign):
    campaign = arena_campaign()
    assert get_live_campaign(slug="study").status == "open"
    # Another process's save: the row changes and the shared version is bumped, no signal here.
    Campaign.objects.filter(pk=campaign.pk).update(status="closed")
    assert get_live_campaign(slug="study").status == "open"  # this process's copy, until the version moves
    cache.delete(CAMPAIGNS_VERSION_KEY)
    assert get_live_campaign(slug="study").status == "closed"
    assert next_comparison(client).json()["error"]["code"] == "campaign_closed"


def test_a_vote_can_bring_the_next_comparison_in_the_same_round_trip(client, arena_campaign):
    campaign = arena_campaign(prompts=3, per_queue=3)
    campaign.participant_quota = 3
    campaign.save()
    api = "/api/v1/campaigns/study/comparisons/next"
    first = client.post(api, {}, content_type="application/json").json()
    ahead = client.post(api, {"exclude": [first["token"]]}, content_type="application/json").json()
    body = {**BOTH, "dwell_ms": 900, "next": {"exclude": [ahead["token"]]}}
    answer = client.post(f"/api/v1/comparisons/{first['token']}/votes", body, content_type="application/json").json()
    # The reveal, and behind the prefetched one, the comparison after it: one request per comparison.
    assert answer["votes_cast"] == 1
    following = answer["next"]
    assert answer["next_error"] is None
    assert following["token"] not in (first["token"], ahead["token"])
    assert set(following) >= {"token", "prompt", "criteria", "left", "right", "expires_at"}
    assert following["progress"] == {"votes_cast": 1, "quota": 3}
    assert "generator" not in json.dumps(following)
    for token in (ahead["token"], following["token"]):
        body = {**BOTH, "dwell_ms": 900, "next": {"exclude": []}}
        last = client.post(f"/api/v1/comparisons/{token}/votes", body, content_type="application/json")
        assert last.status_code == 200
    # At the quota the vote is stored and the next one is refused with the reason, not an error.
    assert last.json()["next"] is None
    assert last.json()["next_error"]["code"] == "quota_reached"
    assert Comparison.objects.filter(status="voted").count() == 3


def test_without_asking_the_reveal_has_no_next(client, arena_campaign):
    arena_campaign()
    token = client.post("/api/v1/campaigns/study/comparisons/next", {}, content_type="application/json").json()["token"]
    answer = client.post(
        f"/api/v1/comparisons/{token}/votes", {**BOTH, "dwell_ms": 900}, content_type="application/json"
    )
    assert set(answer.json()) == {"left", "right", "votes_cast"}


def test_a_returning_participant_s_next_comparison_reads_them_once_and_counts_no_votes_twice(client, arena_campaign):
    # Pinned so that a change that adds a round trip to the API's issue is seen (and BENCHMARKS.md measured again).
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    arena_campaign(generators=3, prompts=1, per_queue=3, votes_per_pair=5)
    vote(client, next_comparison(client).json()["token"])
    with CaptureQueriesContext(connection) as issued:
        payload = next_comparison(client).json()
    statements = [query["sql"] for query in issued.captured_queries]
    # The participant is read once (not again to admit them), and their votes are counted with their history,
    assert sum("FROM annotation_participant" in sql for sql in statements) == 1, statements
    assert not any('COUNT(*) AS "__count"' in sql for sql in statements), statements
    # which the payload's progress shows.
    assert payload["progress"]["votes_cast"] == 1
