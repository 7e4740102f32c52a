"""POST /api/v1/campaigns/SLUG/imports: the staff zip import as an API, by the same service and rules, all or none."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from access.services import create_api_token
from annotation import imports_api
from annotation.services import grant_researcher_role
from generation.models import Generator, Image, Population
from tests.factories import CampaignFactory, PromptFactory
from tests.generation.importing_fixtures import image_folder, picture, rows_for, zipped

pytestmark = pytest.mark.django_db

N = 2
URL = "/api/v1/campaigns/doctors/imports"


def with_token(user: User, *scopes: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {create_api_token(user=user, name='t', scopes=scopes).key}")
    return client


def zip_upload(data: bytes) -> dict[str, SimpleUploadedFile]:
    return {"archive": SimpleUploadedFile("sets.zip", data, content_type="application/zip")}


@pytest.fixture
def staff() -> User:
    return User.objects.create_user("staff", password="pw", is_staff=True)


@pytest.fixture
def campaign():  # type: ignore[no-untyped-def]
    campaign = CampaignFactory(population_size=N, slug="doctors")
    campaign.prompts.add(PromptFactory(caption="a doctor"), PromptFactory(caption="a nurse"))
    return campaign


def test_a_manage_token_imports_a_zip_and_the_same_zip_again_adds_nothing(staff, campaign, tmp_path):
    # Given a zip of two sets of two by a generator new to the arena (one per prompt),
    folder = image_folder(
        tmp_path / "sets", rows_for("dalle-3", "a doctor", N) + rows_for("dalle-3", "a nurse", N, start=10)
    )
    client = with_token(staff, "manage")
    # when a token with the manage scope posts it,
    response = client.post(URL, zip_upload(zipped(folder, under="sets")), format="multipart")
    # then both sets are stored, ready, in a new imported generator added to the campaign, and the answer says so;
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "rows": 4,
        "populations": 2,
        "images": 4,
        "already_imported": 0,
        "new_generators": ["dalle-3"],
    }
    assert Population.objects.filter(generator__name="dalle-3", status="ready").count() == 2
    assert campaign.generators.filter(name="dalle-3", backend=Generator.Backend.IMPORTED).exists()
    # and the same zip again is answered with what was already there, storing nothing.
    again = client.post(URL, zip_upload(zipped(folder)), format="multipart")
    assert again.status_code == 200
    assert again.json() == {"rows": 4, "populations": 0, "images": 0, "already_imported": 2, "new_generators": []}
    assert Image.objects.count() == 2 * N


def test_bad_rows_refuse_the_whole_import_naming_each_and_store_nothing(staff, campaign, tmp_path):
    rows = rows_for("dalle-3", "a doctor", N) + [
        {"file_name": "a.png", "prompt": "a pilot", "generator": "dalle-3"},
        {"file_name": "b.png", "prompt": "a nurse", "generator": "dalle-3"},
    ]
    folder = image_folder(tmp_path / "sets", rows, images={"b.png": picture(1, blank=True)})
    response = with_token(staff, "manage").post(URL, zip_upload(zipped(folder)), format="multipart")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "import_refused"
    assert "nothing was stored" in error["message"]
    assert "metadata.jsonl line 3: prompt 'a pilot' is not one of campaign 'doctors'" in error["message"]
    assert "metadata.jsonl line 4: b.png is blank" in error["message"]
    assert not Population.objects.exists()
    assert not Generator.objects.filter(name="dalle-3").exists()


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (zip_upload(b"not a zip"), "import_refused", "not a readable zip file"),
        ({}, "invalid", "archive: No file was submitted."),
    ],
)
def test_a_request_without_a_readable_zip_is_refused_naming_it(staff, campaign, body, code, message):
    response = with_token(staff, "manage").post(URL, body, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert message in response.json()["error"]["message"]
    assert not Population.objects.exists()


def test_a_zip_over_the_limit_is_refused_pointing_to_the_command(staff, campaign, tmp_path, monkeypatch):
    data = zipped(image_folder(tmp_path / "sets", rows_for("dalle-3", "a doctor", N)))
    monkeypatch.setattr(imports_api, "MAX_IMPORT_BYTES", len(data) - 1)
    response = with_token(staff, "manage").post(URL, zip_upload(data), format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "import_too_large"
    assert "manage.py import_populations" in response.json()["error"]["message"]
    assert not Population.objects.exists()


def test_who_may_import(staff, campaign, tmp_path):
    data = zipped(image_folder(tmp_path / "sets", rows_for("dalle-3", "a doctor", N)))
    alice = User.objects.create_user("alice", password="pw")
    grant_researcher_role(user=alice)
    CampaignFactory(slug="alices", owner=alice, population_size=N)
    voter = User.objects.create_user("voter", password="pw")
    voter_session = APIClient()
    voter_session.force_login(voter)
    # A researcher's token reaches only their own campaigns: another one answers as if it did not exist.
    assert with_token(alice, "manage").post(URL, zip_upload(data), format="multipart").status_code == 404
    # Anonymous callers, participants and tokens without the manage scope are refused.
    anonymous = APIClient().post(URL, zip_upload(data), format="multipart")
    assert (anonymous.status_code, anonymous.json()["error"]["code"]) == (403, "not_authenticated")
    assert voter_session.post(URL, zip_upload(data), format="multipart").status_code == 403
    for scopes in (("read",), ("vote", "worker"), ("export",)):
        refused = with_token(staff, *scopes).post(URL, zip_upload(data), format="multipart")
        assert refused.status_code == 403, scopes
        assert "lacks the 'manage' scope" in refused.json()["error"]["message"]
    assert not Population.objects.exists()
    # A staff session (with its CSRF token, as a browser sends it) imports.
    session = APIClient()
    session.force_login(staff)
    assert session.post(URL, zip_upload(data), format="multipart").status_code == 200
    assert Population.objects.count() == 1


def test_a_session_must_send_its_csrf_token(staff, campaign, tmp_path):
    data = zipped(image_folder(tmp_path / "sets", rows_for("dalle-3", "a doctor", N)))
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(staff)
    response = client.post(URL, zip_upload(data), format="multipart")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]
    assert not Population.objects.exists()


def test_the_import_endpoint_is_documented_in_the_openapi_schema():
    schema = APIClient().get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/campaigns/{slug}/imports"]["post"]
    upload = operation["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert schema["components"]["schemas"][upload]["required"] == ["archive"]
    assert {"200", "400", "403", "404"} <= set(operation["responses"])
    result = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][result]["properties"]) == {
        "rows",
        "populations",
        "images",
        "already_imported",
        "new_generators",
    }
