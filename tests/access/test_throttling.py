"""Throttles per participant, per address and per token: 429 in the error shape with Retry-After."""

from __future__ import annotations

import secrets
import time

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache as default_cache
from django.core.cache import caches
from django.test import RequestFactory
from rest_framework.request import Request
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from access.throttling import IpThrottle, ParticipantThrottle
from config.startup import parse_rate
from tests.test_settings import manage

pytestmark = pytest.mark.django_db


@pytest.fixture
def rates(settings):  # type: ignore[no-untyped-def]
    def set_rates(**rates: str | None) -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"vote": None, "anon": None, "token": None, **rates},
        }

    return set_rates


def assert_throttled(response, who: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "throttled"
    assert error["message"].startswith(f"too many requests from {who}")
    assert "try again in" in error["message"]
    assert 1 <= int(response["Retry-After"]) <= 60


def next_comparison(client: APIClient):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/campaigns/study/comparisons/next", {}, format="json")


def test_each_participant_has_its_own_write_limit(rates, arena_campaign):
    arena_campaign(per_queue=6)
    rates(vote="3/min")
    first, second = APIClient(), APIClient()
    # The first request makes the participant's session; it counts against the address only.
    statuses = [next_comparison(first).status_code for _ in range(1 + 3)]
    assert 429 not in statuses
    assert_throttled(next_comparison(first), "this participant (3/min)")
    # Reads are not writes; and another participant from the same address is not affected.
    assert first.get("/api/v1/campaigns/study/leaderboard").status_code == 200
    assert [next_comparison(second).status_code != 429 for _ in range(4)] == [True] * 4


def test_each_address_has_its_own_limit_that_a_forged_header_does_not_dodge(rates, db):
    rates(anon="5/min")
    client = APIClient(REMOTE_ADDR="10.0.0.1")
    for _ in range(5):
        assert client.get("/api/v1/campaigns/").status_code == 200
    assert_throttled(client.get("/api/v1/campaigns/"), "this address (5/min)")
    assert_throttled(client.get("/api/v1/campaigns/", HTTP_X_FORWARDED_FOR="10.9.9.9"), "this address")
    assert APIClient(REMOTE_ADDR="10.0.0.2").get("/api/v1/campaigns/").status_code == 200


def test_each_token_has_its_own_limit_apart_from_its_address(rates, token_client):
    rates(token="2/min", anon="2/min")
    one, two = token_client("read"), token_client("read")
    for _ in range(2):
        assert one.get("/api/v1/campaigns/").status_code == 200
    assert_throttled(one.get("/api/v1/campaigns/"), "this API token (2/min)")
    assert two.get("/api/v1/campaigns/").status_code == 200
    # Token requests did not use up the address's own allowance.
    assert APIClient().get("/api/v1/campaigns/").status_code == 200


def test_health_is_never_throttled(rates, db):
    rates(anon="1/min")
    client = APIClient()
    assert [client.get("/api/v1/health").status_code for _ in range(3)] == [200, 200, 200]


def test_the_throttles_count_in_the_configured_cache(rates, monkeypatch, db):
    """The conftest gives each test private counts; here the configured cache (Redis in the PostgreSQL run)."""
    monkeypatch.setattr(SimpleRateThrottle, "cache", default_cache)
    address = _address()
    rates(anon="2/min")
    client = APIClient(REMOTE_ADDR=address)
    try:
        assert [client.get("/api/v1/campaigns/").status_code for _ in range(2)] == [200, 200]
        assert_throttled(client.get("/api/v1/campaigns/"), "this address")
        assert caches["default"].get(f"throttle_anon_{address}")
    finally:
        caches["default"].delete(f"throttle_anon_{address}")


def _address() -> str:
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


def test_a_window_closes_and_the_caller_may_go_on(rates, monkeypatch, db):
    """The window opens with the first request and lasts the rate's period (Redis in the PostgreSQL run)."""
    monkeypatch.setattr(SimpleRateThrottle, "cache", default_cache)
    address = _address()
    rates(anon="2/s")
    client = APIClient(REMOTE_ADDR=address)
    try:
        assert [client.get("/api/v1/campaigns/").status_code for _ in range(2)] == [200, 200]
        refused = client.get("/api/v1/campaigns/")
        assert_throttled(refused, "this address (2/s)")
        assert refused["Retry-After"] == "1"
        # Wait for the window itself to close (its counter expires with it), not for a guessed time.
        deadline = time.monotonic() + 5
        while caches["default"].get(f"throttle_anon_{address}") is not None:
            assert time.monotonic() < deadline, "the 1 s window never closed"
            time.sleep(0.02)
        assert client.get("/api/v1/campaigns/").status_code == 200
    finally:
        caches["default"].delete(f"throttle_anon_{address}")


@pytest.mark.skipif(not settings.REDIS_URL, reason="the Redis path (REDIS_URL unset)")
def test_on_redis_each_throttle_reads_and_writes_in_one_round_trip(rates, monkeypatch, db):
    """One MULTI/EXEC per throttle and request: the count, the window's end and its time left together."""
    import redis

    # As configured: DRF's throttles hold django.core.cache.cache, a proxy to the default cache.
    monkeypatch.setattr(SimpleRateThrottle, "cache", default_cache)
    cache = caches["default"]
    rates(anon="3/min")
    sent: list[str] = []
    single, piped = redis.Redis.execute_command, redis.client.Pipeline.execute

    def execute_command(client, *args, **options):  # type: ignore[no-untyped-def]
        if not isinstance(client, redis.client.Pipeline):
            sent.append(str(args[0]))
        return single(client, *args, **options)

    def execute(pipe, *args, **options):  # type: ignore[no-untyped-def]
        sent.append("pipeline: " + " ".join(str(command[0][0]) for command in pipe.command_stack))
        return piped(pipe, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", execute_command)
    monkeypatch.setattr(redis.client.Pipeline, "execute", execute)
    address = _address()
    request = Request(RequestFactory().get("/api/v1/campaigns/", REMOTE_ADDR=address))
    request.auth = None
    key = f"throttle_anon_{address}"
    try:
        allowed = [IpThrottle().allow_request(request, None) for _ in range(4)]
        assert allowed == [True, True, True, False]
        assert sent == ["pipeline: INCRBY EXPIRE PTTL"] * 4
        # The counter is Django's own key (prefix, version): the cache API reads it.
        assert cache.get(key) == 4
        redis_key = cache.make_and_validate_key(key)
        assert 55_000 < cache._cache.get_client(redis_key).pttl(redis_key) <= 60_000  # type: ignore[attr-defined]
        throttle = IpThrottle()
        assert not throttle.allow_request(request, None)
        assert 55 < (throttle.wait() or 0) <= 60
    finally:
        cache.delete(key)


def _participant_request(session_key: str) -> Request:
    request = Request(RequestFactory().post("/api/v1/comparisons/x/votes", REMOTE_ADDR="192.0.2.7"))
    request._request.session = type("Session", (), {"session_key": session_key})()
    request.user = AnonymousUser()
    request.auth = None
    return request


def test_default_rates_let_200_scripted_participants_behind_one_address_vote_fast():
    """200 bots on one address, each issuing and voting 3 times a second, are not throttled."""
    participants = [_participant_request(f"session-{i}") for i in range(200)]
    # Per participant: 3 votes/s x (issue + vote) for 10 s = 60 writes, within one minute.
    participant = ParticipantThrottle()
    for request in participants:
        for _ in range(60):
            assert participant.allow_request(request, None)
    # Per address: those bots make 1,200 requests a second; the default holds 10 s of them in
    # its minute (checked on 2,000 in a row, the rest is the same arithmetic).
    address = IpThrottle()
    assert address.duration == 60
    assert address.num_requests >= 12_000
    assert all(address.allow_request(participants[0], None) for _ in range(2000))


@pytest.mark.parametrize(("raw", "expected"), [("0", None), ("off", None), ("", "12/min"), ("50/s", "50/s")])
def test_rates_from_the_environment(raw, expected):
    assert parse_rate("THROTTLE_X", raw, default="12/min") == expected


def test_a_bad_rate_stops_start_up_naming_the_variable(tmp_path):
    result = manage(tmp_path, "check", THROTTLE_VOTE="fast")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("PopArena configuration error: THROTTLE_VOTE: 'fast' is not a rate")
