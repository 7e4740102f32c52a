"""The staff-only export API and admin page: who may export, what comes back, and the zip download."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.contrib.auth import get_user_model
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.exports.urls")]

URL = "/api/v1/campaigns/{slug}/exports"


def client_for(*, staff: bool) -> APIClient:
    user = get_user_model().objects.create_user(f"user-{staff}", password="x", is_staff=staff)
    client = APIClient()
    client.force_login(user)
    return client


def test_only_staff_may_export(arena_campaign, exports_root):
    campaign = arena_campaign()
    body = {"format": "votes-csv"}
    assert APIClient().post(URL.format(slug=campaign.slug), body, format="json").status_code == 403
    response = client_for(staff=False).post(URL.format(slug=campaign.slug), body, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not exports_root.exists()


def test_staff_export_returns_the_manifest_and_a_zip_of_the_folder(voted_campaign, exports_root):
    campaign = voted_campaign(participants=4)
    client = client_for(staff=True)
    body = {"format": "popalign-csv", "criterion": "diversity", "min_votes": 2}
    response = client.post(URL.format(slug=campaign.slug), body, format="json")
    assert response.status_code == 201
    data = response.json()
    folder = exports_root / f"campaign-{campaign.pk}" / data["name"]
    assert "path" not in data
    assert data["manifest"] == json.loads((folder / "manifest.json").read_text())
    assert data["manifest"]["filters"]["min_votes"] == 2

    listed = client.get(URL.format(slug=campaign.slug)).json()
    assert [e["name"] for e in listed] == [data["name"]]
    download = client.get(data["download"])
    assert download.status_code == 200
    assert download["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    names = archive.namelist()
    stem = f"{campaign.slug}-{data['name']}"
    assert f"{stem}/train.csv" in names
    assert json.loads(archive.read(f"{stem}/manifest.json")) == data["manifest"]
    assert len([n for n in names if "/images/" in n]) == data["manifest"]["counts"]["images_copied"]


def test_api_errors_use_the_one_error_shape(arena_campaign, exports_root):
    campaign = arena_campaign()
    client = client_for(staff=True)
    cases = [
        (URL.format(slug=campaign.slug), {"format": "parquet"}, 400, "invalid", "format"),
        (URL.format(slug="nope"), {"format": "votes-csv"}, 404, "not_found", "no campaign with slug 'nope'"),
        (URL.format(slug=campaign.slug), {"format": "kto-csv", "criterion": "x"}, 404, "not_found", "criterion 'x'"),
        (URL.format(slug=campaign.slug), {"format": "kto-csv"}, 400, "export_invalid", "pass criterion "),
    ]
    for url, body, status, code, message in cases:
        response = client.post(url, body, format="json")
        assert response.status_code == status, body
        assert response.json()["error"]["code"] == code
        assert message in response.json()["error"]["message"]
    missing = client.get(f"{URL.format(slug=campaign.slug)}/votes-csv-20250101t000000-abcdef.zip")
    assert missing.status_code == 404


def test_a_refused_option_is_named_as_the_api_field_not_as_a_command_line_flag(arena_campaign, exports_root):
    campaign = arena_campaign()
    client = client_for(staff=True)
    cases = [
        ({"format": "votes-csv", "ties": "soft", "min_votes": 2}, "ties, min_votes does not apply to votes-csv"),
        ({"format": "popalign-csv", "criterion": "diversity", "ties": "soft"}, "cannot express a tie: use ties: drop"),
    ]
    for body, message in cases:
        response = client.post(URL.format(slug=campaign.slug), body, format="json")
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert error["code"] == "export_invalid"
        assert message in error["message"]
        assert "--" not in error["message"]


def test_the_admin_page_runs_an_export_and_lists_it(voted_campaign, exports_root, client):
    campaign = voted_campaign(participants=3)
    page = f"/admin/exports/campaigns/{campaign.slug}/"
    assert client.get(page).status_code == 302  # to the admin login
    user = get_user_model().objects.create_user("staff", password="x", is_staff=True)
    client.force_login(user)
    form = client.get(page)
    assert form.status_code == 200
    assert b"pickapic-parquet" in form.content
    done = client.post(page, {"format": "votes-csv"}, follow=True)
    assert done.status_code == 200
    assert b"Exported votes-csv" in done.content
    assert b"download zip" in done.content
    refused = client.post(page, {"format": "kto-csv"})
    assert b"pass criterion " in refused.content
    assert b"--criterion" not in refused.content


def test_the_api_and_the_page_take_the_pair_filters_by_their_field_names(voted_campaign, exports_root, client):
    campaign = voted_campaign(participants=4)
    first, second, _ = sorted(campaign.generators.values_list("name", flat=True))
    api = client_for(staff=True)
    body = {"format": "population-jsonl", "generators": [first, second], "not_worse_on": ["quality"]}
    body["criterion"] = "diversity"
    response = api.post(URL.format(slug=campaign.slug), body, format="json")
    assert response.status_code == 201, response.json()
    filters = response.json()["manifest"]["filters"]
    assert (filters["generators"], filters["not_worse_on"]) == ([first, second], ["quality"])
    refused = api.post(URL.format(slug=campaign.slug), {**body, "generators": [first, "nobody"]}, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["message"].startswith("generators: unknown generator 'nobody'")

    # The staff page offers the campaign's generators and criteria to tick, and names the field when refusing
    client.force_login(get_user_model().objects.create_user("staff", password="x", is_staff=True))
    page = f"/admin/exports/campaigns/{campaign.slug}/"
    assert first.encode() in client.get(page).content
    one = client.post(page, {"format": "population-jsonl", "generators": [first]})
    assert b"generators names one generator" in one.content
    assert b"--generators" not in one.content
    done = client.post(page, {"format": "population-jsonl", "generators": [first, second]}, follow=True)
    assert b"Exported population-jsonl" in done.content


def test_the_openapi_schema_describes_the_export_endpoints():
    schema = SchemaGenerator(urlconf="tests.exports.urls").get_schema(request=None, public=True)
    assert "/api/v1/campaigns/{slug}/exports" in schema["paths"]
    post = schema["paths"]["/api/v1/campaigns/{slug}/exports"]["post"]
    assert "201" in post["responses"]


def test_the_admin_action_opens_the_export_page_of_one_campaign(arena_campaign, rf):
    from django.contrib import admin as django_admin
    from django.contrib.messages.storage.fallback import FallbackStorage

    from annotation.models import Campaign
    from exports.admin import export_preferences_action

    campaign = arena_campaign()
    request = rf.post("/admin/annotation/campaign/")
    request.session = {}
    request._messages = FallbackStorage(request)
    model_admin = django_admin.site._registry[Campaign]
    response = export_preferences_action(model_admin, request, Campaign.objects.filter(pk=campaign.pk))
    assert response.url == f"/admin/exports/campaigns/{campaign.slug}/"
    assert export_preferences_action(model_admin, request, Campaign.objects.none()) is None
    assert [str(m) for m in request._messages] == ["Select exactly one campaign to export."]


def test_a_researcher_exports_their_own_campaign_and_no_one_elses(arena_campaign, exports_root):
    from annotation.services import grant_researcher_role

    campaign = arena_campaign()
    owner, other = (get_user_model().objects.create_user(name, password="x") for name in ("owner", "other"))
    for user in (owner, other):
        grant_researcher_role(user=user)
    campaign.owner = owner
    campaign.save()
    body = {"format": "leaderboard-csv"}
    stranger = APIClient()
    stranger.force_login(other)
    refused = stranger.post(URL.format(slug=campaign.slug), body, format="json")
    assert refused.status_code == 404
    assert not exports_root.exists()
    mine = APIClient()
    mine.force_login(owner)
    assert mine.post(URL.format(slug=campaign.slug), body, format="json").status_code == 201


def test_the_export_page_is_missing_for_another_researchers_campaign_and_refused_to_participants(
    arena_campaign, exports_root, client
):
    from annotation.services import grant_researcher_role

    campaign = arena_campaign()
    owner, other = (get_user_model().objects.create_user(name) for name in ("owner", "other"))
    for user in (owner, other):
        grant_researcher_role(user=user)
    campaign.owner = owner
    campaign.save()
    page = f"/admin/exports/campaigns/{campaign.slug}/"
    client.force_login(other)
    assert client.get(page).status_code == 404
    assert client.post(page, {"format": "votes-csv"}).status_code == 404
    assert client.get(f"{page}some-export.zip").status_code == 404
    assert not exports_root.exists()
    client.force_login(get_user_model().objects.create_user("voter"))
    assert client.get(page).status_code == 403
    client.force_login(owner)
    assert client.get(page).status_code == 200
