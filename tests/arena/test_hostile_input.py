"""Hostile input to the voting API: each gets a 4xx in the error shape with a clear message, and changes nothing."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import TooManyFieldsSent
from django.test import RequestFactory

from arena.models import Comparison, Vote
from core.api import bad_request
from generation.models import Prompt

pytestmark = pytest.mark.django_db

GOOD = [{"criterion": "diversity", "choice": "left"}, {"criterion": "quality", "choice": "tie"}]


def issue(client) -> str:
    response = client.post("/api/v1/campaigns/study/comparisons/next", {}, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()["token"]


def vote_raw(client, token: str, body: str):
    return client.post(f"/api/v1/comparisons/{token}/votes", body, content_type="application/json")


def assert_refused(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message"}
    for word in words:
        assert word in error["message"], error["message"]


@pytest.mark.parametrize(
    ("dwell", "words"),
    [
        (-1, ["dwell_ms"]),
        (2**63, ["dwell_ms"]),
        (1e308, ["dwell_ms"]),
        (True, ["dwell_ms"]),
        (None, ["dwell_ms"]),
    ],
)
def test_negative_huge_and_mistyped_dwell_times_are_refused(client, arena_campaign, dwell, words):
    arena_campaign()
    token = issue(client)
    assert_refused(vote_raw(client, token, json.dumps({"votes": GOOD, "dwell_ms": dwell})), 400, *words)
    assert not Vote.objects.exists()


def test_non_finite_numbers_in_json_are_refused(client, arena_campaign):
    arena_campaign()
    token = issue(client)
    for literal in ("NaN", "Infinity", "-Infinity", "1e999"):
        response = vote_raw(client, token, f'{{"votes": {json.dumps(GOOD)}, "dwell_ms": {literal}}}')
        assert_refused(response, 400)
    assert not Vote.objects.exists()


@pytest.mark.parametrize(
    "criterion",
    [
        "diversity' OR '1'='1",
        "<script>alert(1)</script>",
        "\u202ediversity",  # right-to-left override
        "di\u0301versity",  # combining accent
        "\U0001f600",
        "d" * 10_000,
    ],
)
def test_unknown_criteria_with_odd_characters_are_named_and_refused(client, arena_campaign, criterion):
    arena_campaign()
    token = issue(client)
    body = {"votes": [{"criterion": criterion, "choice": "left"}, GOOD[1]], "dwell_ms": 1000}
    response = vote_raw(client, token, json.dumps(body))
    assert response.status_code == 400
    assert "criterion" in response.json()["error"]["message"]
    assert not Vote.objects.exists()


def test_a_lone_surrogate_in_json_is_refused(client, arena_campaign):
    arena_campaign()
    token = issue(client)
    response = vote_raw(client, token, '{"votes": [{"criterion": "\\ud800", "choice": "left"}], "dwell_ms": 1}')
    assert_refused(response, 400)
    assert not Vote.objects.exists()


@pytest.mark.parametrize(
    "token",
    ["' OR 1=1 --", "../../etc/passwd", "t" * 5000, "<img src=x onerror=alert(1)>"],
)
def test_forged_tokens_are_not_found(client, arena_campaign, token):
    arena_campaign()
    issue(client)
    response = client.post(
        "/api/v1/comparisons/" + token.replace("/", "%2F") + "/votes",
        {"votes": GOOD, "dwell_ms": 1000},
        content_type="application/json",
    )
    assert response.status_code in (400, 404)
    assert "error" in response.json()
    assert not Vote.objects.exists()
    assert Comparison.objects.filter(status=Comparison.Status.VOTED).count() == 0


def test_an_oversized_body_is_refused_before_it_is_read(client, arena_campaign, settings):
    arena_campaign()
    token = issue(client)
    padding = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = vote_raw(client, token, json.dumps({"votes": GOOD, "dwell_ms": 1000, "padding": padding}))
    assert_refused(response, 400, "request body is over")
    assert not Vote.objects.exists()


def test_a_form_with_more_fields_than_django_reads_gets_the_apis_json_error(client, arena_campaign, settings):
    # Found by the API fuzzer: Django refuses such a form before any view runs, and answered with its HTML page.
    arena_campaign()
    token = issue(client)
    fields = {f"f{i}": "x" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}
    response = client.post(f"/api/v1/comparisons/{token}/votes", fields)
    assert response["Content-Type"] == "application/json"
    assert_refused(response, 400, f"more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} form fields")
    assert not Vote.objects.exists()
    # A page keeps Django's own page.
    page = bad_request(RequestFactory().post("/c/study/"), TooManyFieldsSent())
    assert page.status_code == 400
    assert page["Content-Type"].startswith("text/html")


def test_thousands_of_votes_in_one_request_are_refused(client, arena_campaign):
    arena_campaign()
    token = issue(client)
    body = {"votes": GOOD * 5000, "dwell_ms": 1000}
    response = vote_raw(client, token, json.dumps(body))
    assert_refused(response, 400)
    assert not Vote.objects.exists()


@pytest.mark.parametrize("body", ["[]", '"votes"', "null", "{}", '{"votes": {}}', "{" * 5000])
def test_json_of_the_wrong_shape_is_refused(client, arena_campaign, body):
    arena_campaign()
    token = issue(client)
    response = vote_raw(client, token, body)
    assert response.status_code == 400
    assert "error" in response.json()
    assert not Vote.objects.exists()


def test_sql_and_script_in_a_caption_are_stored_as_text_and_shown_escaped(client, arena_campaign):
    caption = "<script>alert('x')</script>'); DROP TABLE arena_vote; --"
    arena_campaign(caption=caption)
    issued = client.post("/api/v1/campaigns/study/comparisons/next", {}, content_type="application/json").json()
    assert issued["prompt"] == caption  # JSON carries the text as it is
    page = client.get("/c/study/").content.decode()
    assert "<script>alert('x')</script>" not in page
    assert "&lt;script&gt;" in page or "\\u003Cscript\\u003E" in page
    assert Prompt.objects.filter(caption=caption).exists()
    response = vote_raw(client, issued["token"], json.dumps({"votes": GOOD, "dwell_ms": 1000}))
    assert response.status_code == 200
    assert Vote.objects.count() == 2  # the table is still there, with the vote in it


def test_nul_characters_anywhere_are_a_clear_400(client, arena_campaign):
    arena_campaign()
    token = issue(client)
    attempts = [
        (
            client.post(f"/api/v1/comparisons/{token}%00/votes", {"votes": GOOD}, content_type="application/json"),
            "path",
        ),
        (client.get("/api/v1/campaigns/study/leaderboard?criterion=diversity%00"), "query string"),
        (client.get("/api/v1/campaigns/study/leaderboard?category=%00"), "query string"),
        (vote_raw(client, token, json.dumps({"votes": [{"criterion": "diversity\u0000", "choice": "left"}]})), "JSON"),
    ]
    for response, where in attempts:
        assert_refused(response, 400, where, "NUL")
    assert client.get("/c/study/?PROLIFIC_PID=%00").status_code == 400
    assert not Vote.objects.exists()
