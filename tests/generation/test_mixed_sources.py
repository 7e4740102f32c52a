"""A campaign mixing a local pipeline, an OpenAI-compatible API generator and imported sets, end to end.

Voted through the JSON API by several participants, ranked on the leaderboard API, exported as pairs; the API
key (only ever in the environment) is in no export file, no table and no log line.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from django.test import Client

from annotation.importing import import_populations
from annotation.models import Campaign, Criterion
from annotation.services import set_campaign_status
from arena.models import Comparison, Vote
from exports.services import ExportOptions, export_preferences
from generation.importing import read_import
from generation.models import Generator, Population, Prompt
from generation.providers import Limits
from generation.worker import GenerationWorker
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory
from tests.generation.importing_fixtures import SIZE, image_folder, rows_for
from tests.generation.local_api import api_generator, database_text, images_api

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

N = 2  # images per set
KEY_ENV = "POPARENA_TEST_MIXED_KEY"
CRITERIA = ("diversity", "quality")
LOCAL, HOSTED, IMPORTED = "local-tiny", "hosted-sdxl", "paper-model"
# The local pipeline, the API and the import all make SIZE x SIZE images: a campaign refuses mixed sizes.
TINY = {"steps": 2, "width": SIZE, "height": SIZE, "init_seed": 1}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _vote_through_the_api(slug: str, *, participants: int, per_participant: int) -> int:
    """Each participant (their own browser session) asks for comparisons and answers every criterion."""
    voted = 0
    for person in range(participants):
        browser = Client()
        for turn in range(per_participant):
            issued = browser.post(f"/api/v1/campaigns/{slug}/comparisons/next", {}, content_type="application/json")
            if issued.status_code != 200:  # the sets are used up
                assert issued.json()["error"]["code"], issued.content
                break
            body = issued.json()
            assert [c["key"] for c in body["criteria"]] == list(CRITERIA)
            assert len(body["left"]["images"]) == len(body["right"]["images"]) == N
            choices = ("left", "right", "tie", "both_bad")
            votes = [
                {"criterion": key, "choice": choices[(person + turn + i) % len(choices)]}
                for i, key in enumerate(CRITERIA)
            ]
            reveal = browser.post(
                f"/api/v1/comparisons/{body['token']}/votes",
                {"votes": votes, "dwell_ms": 1200 + 100 * turn},
                content_type="application/json",
            )
            assert reveal.status_code == 200, reveal.content
            voted += 1
    return voted


def test_local_api_and_imported_sets_are_voted_ranked_and_exported_with_the_key_nowhere(
    tmp_path: Path,
    pipeline_cache_dir: Path,
    settings: Any,
    local_api: Callable[..., Any],
    provider_key: Callable[[str, str], str],
    waits: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings.EXPORTS_ROOT = tmp_path / "exports"
    key = provider_key(KEY_ENV, "sk-mixed-")
    api = local_api(images_api)
    # Given a draft campaign of one prompt and two criteria, with a local tiny pipeline, an openai-compatible
    # API generator served by a local Images API, and one imported generator's sets,
    campaign = cast(
        Campaign,
        CampaignFactory(
            population_size=N, votes_per_pair=2, slug="mixed-sources", status="draft", gold_rate=0.0, repeat_rate=0.0
        ),
    )
    for position, criterion in enumerate(CRITERIA):
        Criterion.objects.create(
            campaign=campaign, key=criterion, question=f"Which set: {criterion}?", position=position
        )
    campaign.prompts.add(cast(Prompt, PromptFactory(caption="a circle")))
    campaign.generators.add(cast(Generator, GeneratorFactory(name=LOCAL, settings=TINY)))
    hosted = api_generator(
        name=HOSTED,
        source="openai-compatible:sdxl-turbo",
        settings={"api_key_env": KEY_ENV, "size": f"{SIZE}x{SIZE}", "base_url": f"{api.url}/v1"},
    )
    assert hosted.backend == Generator.Backend.API
    campaign.generators.add(hosted)
    imported = import_populations(
        campaign=campaign, read=read_import(image_folder(tmp_path / "import", rows_for(IMPORTED, "a circle", 3 * N)))
    )
    assert (imported.populations, imported.new_generators) == (3, (IMPORTED,))
    # and, once it is open, the worker filling the local and the API generators' queues,
    set_campaign_status(campaign=campaign, status="open")
    # (the tiny model built once per session; a high request rate so no pacing wait is recorded)
    worker = GenerationWorker(
        device="cpu",
        cache_dir=pipeline_cache_dir,
        idle_sleep_s=0,
        api_limits=Limits(requests_per_minute=100_000.0, backoff_s=0.5),
    )
    worker.run(once=True)
    requests = api.of("POST", "/v1/images/generations")
    assert requests, "the API generator's sets come from the local Images API"
    assert all(r.headers["authorization"] == f"Bearer {key}" for r in requests)
    ready = Population.objects.filter(status="ready").select_related("generator")
    assert {p.generator.name for p in ready} == {LOCAL, HOSTED, IMPORTED}
    assert all(p.images.count() == N for p in ready)

    # when six participants vote through the JSON API until the sets are used up or they have voted four times,
    voted_count = _vote_through_the_api(campaign.slug, participants=6, per_participant=4)

    # then every comparison pairs two different sources of the three, and every source was shown,
    voted = list(
        Comparison.objects.filter(campaign=campaign, status="voted").select_related(
            "left_population__generator", "right_population__generator"
        )
    )
    assert len(voted) == voted_count >= 3
    pairs = [frozenset((c.left_population.generator.name, c.right_population.generator.name)) for c in voted]
    assert all(len(pair) == 2 and pair <= {LOCAL, HOSTED, IMPORTED} for pair in pairs)
    assert set().union(*pairs) == {LOCAL, HOSTED, IMPORTED}
    # the leaderboard lists all three with the votes each got, recounted here from the Vote rows,
    for criterion in CRITERIA:
        board = Client().get(f"/api/v1/campaigns/{campaign.slug}/leaderboard?criterion={criterion}")
        assert board.status_code == 200, board.content
        got = Counter[str]()
        rows = Vote.objects.filter(comparison__campaign=campaign, criterion__key=criterion).select_related(
            "comparison__left_population__generator", "comparison__right_population__generator"
        )
        for vote in rows:
            got[vote.comparison.left_population.generator.name] += 1
            got[vote.comparison.right_population.generator.name] += 1
        assert sum(got.values()) == 2 * voted_count
        assert {row["generator"]: row["votes"] for row in board.json()["rows"]} == {
            name: got[name] for name in (LOCAL, HOSTED, IMPORTED)
        }
        assert board.json()["votes"] == voted_count

    # and the exports hold pairs from the three sources, each side's images those of its set,
    pairs_out = export_preferences(
        campaign=campaign, options=ExportOptions(format="population-jsonl"), out=tmp_path / "pairs", overwrite=False
    )
    lines = [
        json.loads(line)
        for path in Path(pairs_out.path).rglob("*.jsonl")
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    assert lines
    sides = [side for line in lines for side in (line["left"], line["right"])]
    assert {side["generator"] for side in sides} == {LOCAL, HOSTED, IMPORTED}
    for side in sides:
        population = Population.objects.get(pk=side["population_id"])
        assert side["generator"] == population.generator.name
        assert [image["sha256"] for image in side["images"]] == list(
            population.images.order_by("index").values_list("sha256", flat=True)
        )
    votes_out = export_preferences(
        campaign=campaign, options=ExportOptions(format="votes-csv"), out=tmp_path / "votes", overwrite=False
    )
    csv_rows = [
        row for path in Path(votes_out.path).rglob("*.csv") for row in csv.DictReader(path.read_text().splitlines())
    ]
    assert len(csv_rows) == Vote.objects.filter(comparison__campaign=campaign).count() == len(CRITERIA) * voted_count
    # with the API key in no exported file, no table and no log line.
    exported = "".join(p.read_text(errors="replace") for p in (tmp_path / "pairs").rglob("*") if p.is_file())
    exported += "".join(p.read_text(errors="replace") for p in (tmp_path / "votes").rglob("*") if p.is_file())
    assert exported
    assert key not in exported
    assert key not in database_text()
    assert key not in caplog.text
    assert waits == []
