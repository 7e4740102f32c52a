"""`import_populations` and the staff page's zip upload: the same import, the same rules, all or nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from annotation.services import grant_researcher_role
from generation.models import Generator, Image, Population
from tests.factories import CampaignFactory, PromptFactory
from tests.generation.importing_fixtures import image_folder, picture, rows_for, zipped

pytestmark = pytest.mark.django_db

N = 2


@pytest.fixture
def campaign():
    campaign = CampaignFactory(population_size=N, slug="doctors")
    campaign.prompts.add(PromptFactory(caption="a doctor"), PromptFactory(caption="a nurse"))
    return campaign


# --- the command ------------------------------------------------------------------------------------------------


def test_the_command_imports_a_folder_and_says_what_it_did_then_adds_nothing_again(campaign, tmp_path):
    folder = image_folder(
        tmp_path / "sets", rows_for("dalle-3", "a doctor", N) + rows_for("dalle-3", "a nurse", N, start=10)
    )
    out = StringIO()

    call_command("import_populations", str(folder), campaign="doctors", stdout=out)

    assert "4 image(s) read: 2 new set(s) of 4 image(s) stored" in out.getvalue()
    assert "new imported generator(s): dalle-3" in out.getvalue()
    assert Population.objects.filter(status="ready", generator__name="dalle-3").count() == 2
    again = StringIO()
    call_command("import_populations", str(folder), campaign="doctors", stdout=again)
    assert "0 new set(s)" in again.getvalue()
    assert "2 set(s) were imported before and added nothing" in again.getvalue()
    assert Image.objects.count() == 2 * N


def test_the_command_names_every_bad_row_and_exits_non_zero(campaign, tmp_path):
    rows = rows_for("dalle-3", "a doctor", N) + [
        {"file_name": "a.png", "prompt": "a pilot", "generator": "dalle-3"},
        {"file_name": "b.png", "prompt": "a nurse", "generator": "dalle-3"},
    ]
    folder = image_folder(tmp_path / "sets", rows, images={"b.png": picture(1, blank=True)})
    with pytest.raises(CommandError) as refused:
        call_command("import_populations", str(folder), campaign="doctors")
    message = str(refused.value)
    assert "nothing was stored" in message
    assert "metadata.jsonl line 3: prompt 'a pilot' is not one of campaign 'doctors'" in message
    assert "metadata.jsonl line 4: b.png is blank" in message
    assert not Population.objects.exists()


def test_the_command_refuses_an_unknown_campaign_or_path_or_layout(campaign, tmp_path):
    folder = image_folder(tmp_path / "sets", rows_for("dalle-3", "a doctor", N))
    with pytest.raises(CommandError, match="no campaign with slug 'nope'"):
        call_command("import_populations", str(folder), campaign="nope")
    with pytest.raises(CommandError, match="does not exist"):
        call_command("import_populations", str(tmp_path / "missing"), campaign="doctors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match="no import found"):
        call_command("import_populations", str(tmp_path / "empty"), campaign="doctors")
    assert not Population.objects.exists()


def test_the_command_reads_a_zip_too(campaign, tmp_path):
    folder = image_folder(tmp_path / "sets", rows_for("mj-v6", "a nurse", N))
    (tmp_path / "sets.zip").write_bytes(zipped(folder))
    call_command("import_populations", str(tmp_path / "sets.zip"), campaign="doctors", stdout=StringIO())
    assert Generator.objects.get(name="mj-v6").backend == "imported"


# --- the staff page's upload ------------------------------------------------------------------------------------


@pytest.fixture
def researcher(client, campaign):
    user = User.objects.create_user("alice", password="pw")
    grant_researcher_role(user=user)
    campaign.owner = user
    campaign.save(update_fields=["owner"])
    client.force_login(user)
    return user


def _upload(client, data: bytes, slug: str = "doctors"):
    archive = SimpleUploadedFile("sets.zip", data, content_type="application/zip")
    return client.post(f"/staff/campaigns/{slug}/import/", {"archive": archive}, follow=True)


def test_the_staff_page_offers_the_upload_and_imports_a_zip(client, researcher, campaign, tmp_path):
    page = client.get("/staff/campaigns/doctors/").content.decode()
    assert 'action="/staff/campaigns/doctors/import/"' in page

    folder = image_folder(tmp_path / "sets", rows_for("dalle-3", "a doctor", N))
    response = _upload(client, zipped(folder, under="sets"))

    assert response.status_code == 200
    assert "1 new set(s) of 2 image(s) stored" in response.content.decode()
    assert campaign.generators.filter(name="dalle-3", backend="imported").exists()
    # The same zip again adds nothing.
    assert "imported before and added nothing" in _upload(client, zipped(folder)).content.decode()
    assert Population.objects.count() == 1


def test_a_bad_zip_upload_names_its_rows_and_stores_nothing(client, researcher, tmp_path):
    rows = rows_for("dalle-3", "a doctor", N + 1)
    response = _upload(client, zipped(image_folder(tmp_path / "sets", rows)))
    page = response.content.decode()
    assert "nothing was stored" in page
    assert "metadata.jsonl line 3: generator &#x27;dalle-3&#x27; has 3 image(s)" in page
    assert not Population.objects.exists()
    assert "not a readable zip" in _upload(client, b"not a zip").content.decode()


def test_only_those_who_manage_the_campaign_may_import(client, campaign, tmp_path):
    other = User.objects.create_user("bob", password="pw")
    grant_researcher_role(user=other)
    client.force_login(other)
    folder = image_folder(tmp_path / "sets", rows_for("dalle-3", "a doctor", N))
    response = client.post("/staff/campaigns/doctors/import/", {"archive": SimpleUploadedFile("s.zip", zipped(folder))})
    assert response.status_code == 404
    assert not Population.objects.exists()
