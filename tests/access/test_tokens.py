"""API tokens: issued once, stored as a hash, accepted as a bearer key, refused when wrong, revoked or expired."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from access.models import ApiToken
from access.services import create_api_token, revoke_api_token
from core.errors import ApplicationError

pytestmark = pytest.mark.django_db

EXPORTS = "/api/v1/campaigns/{slug}/exports"


def bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_the_key_is_returned_once_and_only_its_hash_is_stored(staff):
    issued = create_api_token(user=staff, name="laptop", scopes=["export", "read"])
    assert issued.key.startswith("pa_")
    assert len(issued.key) > 40
    row = ApiToken.objects.get()
    assert row.key_hash == hashlib.sha256(issued.key.encode()).hexdigest()
    stored = [str(value) for value in ApiToken.objects.values().get().values()]
    assert issued.key not in stored
    assert issued.key[3:] not in " ".join(stored)
    assert row.scopes == ["read", "export"]


def test_scopes_come_from_the_fixed_set(staff):
    with pytest.raises(ApplicationError, match="unknown scope admin; valid scopes: read, vote, manage, export, worker"):
        create_api_token(user=staff, name="x", scopes=["read", "admin"])
    with pytest.raises(ApplicationError, match="at least one scope"):
        create_api_token(user=staff, name="x", scopes=[])


def test_a_staff_token_with_the_export_scope_runs_an_export(staff, token_client, voted_campaign, exports_root):
    campaign = voted_campaign(participants=3)
    client = token_client("export")
    # No CSRF token: a bearer request carries no cookie a foreign page could ride on.
    response = client.post(EXPORTS.format(slug=campaign.slug), {"format": "votes-csv"}, format="json")
    assert response.status_code == 201, response.json()
    listed = client.get(EXPORTS.format(slug=campaign.slug))
    assert [e["name"] for e in listed.json()] == [response.json()["name"]]
    assert client.get(response.json()["download"]).status_code == 200
    assert ApiToken.objects.get().last_used_at is not None


@pytest.mark.parametrize("scopes", [("read",), ("worker",), ("read", "vote", "manage", "worker")])
def test_a_token_without_the_export_scope_is_refused_with_403(staff, token_client, arena_campaign, scopes):
    campaign = arena_campaign()
    response = token_client(*scopes).post(EXPORTS.format(slug=campaign.slug), {"format": "votes-csv"}, format="json")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "insufficient_scope"
    assert "lacks the 'export' scope" in error["message"]


def test_an_export_token_of_a_non_staff_user_is_refused(member, token_client, arena_campaign):
    campaign = arena_campaign()
    response = token_client("export", user=member).get(EXPORTS.format(slug=campaign.slug))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer pa_not-a-real-key", "unknown API token"),
        ("Bearer sk_live_abc", "not a PopArena API token"),
        ("Bearer", "must be 'Bearer pa_...'"),
        ("Bearer pa_a pa_b", "must be 'Bearer pa_...'"),
    ],
)
def test_a_wrong_token_gets_401_in_the_error_shape(arena_campaign, header, message):
    campaign = arena_campaign()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(EXPORTS.format(slug=campaign.slug))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json()["error"]["code"] == "authentication_failed"
    assert message in response.json()["error"]["message"]


def test_revoked_and_expired_tokens_get_401_saying_so(staff, arena_campaign):
    campaign = arena_campaign()
    revoked = create_api_token(user=staff, name="old", scopes=["export"])
    expiring = create_api_token(user=staff, name="short", scopes=["export"], expires_at=timezone.now() + timedelta(1))
    url = EXPORTS.format(slug=campaign.slug)
    assert bearer(revoked.key).get(url).status_code == 200
    assert revoke_api_token(token=revoked.token)
    assert not revoke_api_token(token=revoked.token)
    ApiToken.objects.filter(pk=expiring.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    for key, word in ((revoked.key, "was revoked at"), (expiring.key, "expired at")):
        response = bearer(key).get(url)
        assert response.status_code == 401
        assert word in response.json()["error"]["message"]


def test_a_token_of_a_deactivated_user_stops_working(staff, arena_campaign):
    issued = create_api_token(user=staff, name="x", scopes=["read"])
    staff.is_active = False
    staff.save()
    response = bearer(issued.key).get("/api/v1/campaigns/")
    assert response.status_code == 401
    assert "inactive" in response.json()["error"]["message"]


def test_without_a_token_the_browser_session_and_csrf_work_as_before(staff, arena_campaign):
    campaign = arena_campaign()
    url = EXPORTS.format(slug=campaign.slug)
    # Anonymous: 403 as before tokens existed (no WWW-Authenticate challenge for the browser).
    anonymous = APIClient().get(url)
    assert anonymous.status_code == 403
    assert "WWW-Authenticate" not in anonymous
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(staff)
    assert browser.get(url).status_code == 200
    refused = browser.post(url, {"format": "votes-csv"}, format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]["message"]


def test_last_used_is_stamped_at_most_once_a_minute(staff):
    issued = create_api_token(user=staff, name="x", scopes=["read"])
    client = bearer(issued.key)
    client.get("/api/v1/campaigns/")
    first = ApiToken.objects.get().last_used_at
    assert first is not None
    client.get("/api/v1/campaigns/")
    assert ApiToken.objects.get().last_used_at == first


def test_create_api_token_command_prints_the_key_once(staff):
    out, err = StringIO(), StringIO()
    call_command(
        "create_api_token",
        "--user",
        "staff",
        "--scope",
        "worker",
        "--scope",
        "read",
        "--name",
        "gpu-1",
        stdout=out,
        stderr=err,
    )
    key = out.getvalue().strip()
    assert key.startswith("pa_")
    token = ApiToken.objects.get()
    assert token.scopes == ["read", "worker"]
    assert "shown only now" in err.getvalue()
    assert key not in err.getvalue()
    assert bearer(key).get("/api/v1/queues/").status_code == 200


def test_create_api_token_command_refuses_bad_input(staff):
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        call_command("create_api_token", "--user", "nobody", "--scope", "read", "--name", "x")
    with pytest.raises(CommandError, match="invalid choice: 'admin'"):
        call_command("create_api_token", "--user", "staff", "--scope", "admin", "--name", "x")
    with pytest.raises(CommandError, match="needs a name"):
        call_command("create_api_token", "--user", "staff", "--scope", "read", "--name", " ")
    assert not ApiToken.objects.exists()


def test_revoke_api_token_command_by_id_and_by_name(staff):
    first = create_api_token(user=staff, name="a", scopes=["read"])
    second = create_api_token(user=staff, name="b", scopes=["read"])
    out = StringIO()
    call_command("revoke_api_token", str(first.token.pk), stdout=out)
    call_command("revoke_api_token", "--user", "staff", "--name", "b", stdout=out)
    assert "Revoked API token" in out.getvalue()
    assert bearer(first.key).get("/api/v1/campaigns/").status_code == 401
    assert bearer(second.key).get("/api/v1/campaigns/").status_code == 401
    with pytest.raises(CommandError, match="no API token with id 999"):
        call_command("revoke_api_token", "999")
    with pytest.raises(CommandError, match="give a token id"):
        call_command("revoke_api_token")


def test_admin_lists_and_revokes_tokens_and_never_shows_the_key(admin_user, client):
    issued = create_api_token(user=admin_user, name="ci-runner", scopes=["read"])
    client.force_login(admin_user)
    listing = client.get("/admin/access/apitoken/").content.decode()
    assert "ci-runner" in listing
    assert f"pa_…{issued.key[-4:]}" in listing
    assert issued.key not in listing
    detail = client.get(f"/admin/access/apitoken/{issued.token.pk}/change/").content.decode()
    assert issued.key not in detail
    assert issued.token.key_hash not in detail
    client.post(
        "/admin/access/apitoken/",
        {"action": "revoke", "_selected_action": [issued.token.pk]},
    )
    assert ApiToken.objects.get().revoked_at is not None


def test_admin_creates_a_token_and_shows_its_key_once(admin_user, client):
    client.force_login(admin_user)
    response = client.post(
        "/admin/access/apitoken/add/",
        {
            "name": "from-admin",
            "user": admin_user.pk,
            "scopes": ["read", "worker"],
            "expires_at_0": "",
            "expires_at_1": "",
        },
        follow=True,
    )
    assert response.status_code == 200
    token = ApiToken.objects.get()
    assert token.scopes == ["read", "worker"]
    shown = [str(m) for m in response.context["messages"]]
    assert len(shown) >= 1
    key = next(m.split(": ")[-1] for m in shown if "shown only now" in m)
    assert hashlib.sha256(key.encode()).hexdigest() == token.key_hash
    # Shown once: the next page has no trace of it.
    assert key not in client.get("/admin/access/apitoken/").content.decode()
