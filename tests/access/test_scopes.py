"""What each scope reaches: a worker token only the worker endpoints, a read token only reads."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.views import APIView

from access.permissions import ScopeAware
from arena.models import Comparison

pytestmark = pytest.mark.django_db

VOTES = {"votes": [{"criterion": "diversity", "choice": "left"}], "dwell_ms": 1000}


def test_a_worker_token_reaches_only_the_worker_endpoints(token_client, arena_campaign, exports_root):
    campaign = arena_campaign()
    worker = token_client("worker")
    assert worker.get("/api/v1/queues/").status_code == 200
    claimed = worker.post("/api/v1/generation/claims", {"max_images": 6}, format="json")
    assert claimed.status_code == 200, claimed.json()
    refused = [
        worker.get("/api/v1/campaigns/"),
        worker.get(f"/api/v1/campaigns/{campaign.slug}/leaderboard"),
        worker.post(f"/api/v1/campaigns/{campaign.slug}/comparisons/next", {}, format="json"),
        worker.post("/api/v1/comparisons/some-token/votes", VOTES, format="json"),
        worker.get(f"/api/v1/campaigns/{campaign.slug}/exports"),
        worker.post(f"/api/v1/campaigns/{campaign.slug}/exports", {"format": "votes-csv"}, format="json"),
        worker.get("/api/v1/generators/"),
    ]
    for response in refused:
        assert response.status_code == 403, response.wsgi_request.path
        assert response.json()["error"]["code"] == "insufficient_scope"
        assert "(its scopes: worker)" in response.json()["error"]["message"]
    assert not exports_root.exists()


def test_a_read_token_reads_but_does_not_vote(token_client, arena_campaign):
    campaign = arena_campaign()
    reader = token_client("read")
    assert reader.get("/api/v1/campaigns/").status_code == 200
    assert reader.get(f"/api/v1/campaigns/{campaign.slug}/leaderboard").status_code == 200
    assert reader.get("/api/v1/generators/").status_code == 200
    refused = reader.post(f"/api/v1/campaigns/{campaign.slug}/comparisons/next", {}, format="json")
    assert refused.status_code == 403
    assert "lacks the 'vote' scope" in refused.json()["error"]["message"]


def test_a_vote_token_votes_as_its_owner(token_client, arena_campaign, member):
    campaign = arena_campaign()
    voter = token_client("vote", user=member)
    issued = voter.post(f"/api/v1/campaigns/{campaign.slug}/comparisons/next", {}, format="json")
    assert issued.status_code == 200, issued.json()
    votes = {"votes": [{"criterion": "diversity", "choice": "left"}, {"criterion": "quality", "choice": "tie"}]}
    reveal = voter.post(
        f"/api/v1/comparisons/{issued.json()['token']}/votes", {**votes, "dwell_ms": 900}, format="json"
    )
    assert reveal.status_code == 200, reveal.json()
    assert Comparison.objects.get(token=issued.json()["token"]).participant.user == member
    # A script leaves no session row behind and gets no cookie.
    assert not Session.objects.exists()
    assert "sessionid" not in reveal.cookies


def _api_views(patterns, prefix=""):  # type: ignore[no-untyped-def]
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _api_views(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            view = getattr(pattern.callback, "cls", None)
            if view is not None and issubclass(view, APIView):
                yield prefix + str(pattern.pattern), view


def test_every_api_view_decides_what_tokens_may_do():
    """A view that replaces the default permissions must say which scopes it takes, or a
    worker token could reach it just by belonging to a staff member."""
    views = list(_api_views(get_resolver().url_patterns))
    assert len(views) >= 10
    for route, view in views:
        if view.authentication_classes == []:
            continue  # health: no authentication at all, so no token either
        if route.startswith(("api/schema", "api/docs")):
            continue  # the schema and its docs page are public
        assert any(issubclass(p, ScopeAware) for p in view.permission_classes), route
