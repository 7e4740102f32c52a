"""A campaign mixing a local pipeline's sets and imported ones, end to end: voted, ranked and exported alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotation.importing import import_populations
from annotation.models import Criterion
from annotation.services import set_campaign_status
from arena.models import Comparison
from generation.importing import read_import
from generation.models import Population
from generation.worker import GenerationWorker
from tests.exports.conftest import vote_all
from tests.exports.helpers import export
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory
from tests.generation.importing_fixtures import image_folder, rows_for

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

N = 2
TINY = {"steps": 2, "width": 32, "height": 32, "init_seed": 1}  # the import fixtures' pictures are 32x32 too


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_local_and_imported_sets_are_voted_ranked_and_exported_alike(tmp_path, client, exports_root):
    # Given a draft campaign of one local pipeline, two imported generators' sets for its prompt,
    campaign = CampaignFactory(population_size=N, votes_per_pair=2, slug="mixed", status="draft")
    Criterion.objects.create(campaign=campaign, key="diversity", question="Which set is more diverse?", position=0)
    Criterion.objects.create(campaign=campaign, key="quality", question="Which set looks better?", position=1)
    campaign.prompts.add(PromptFactory(caption="a circle"))
    campaign.generators.add(GeneratorFactory(name="local-tiny", settings=TINY))
    rows = rows_for("paper-model", "a circle", 2 * N) + rows_for("api-by-hand", "a circle", 2 * N, start=50)
    result = import_populations(campaign=campaign, read=read_import(image_folder(tmp_path / "import", rows)))
    assert result.populations == 4
    # and, once it is open, the local pipeline's sets made by the worker,
    set_campaign_status(campaign=campaign, status="open")
    GenerationWorker(device="cpu", cache_dir=tmp_path / "models", idle_sleep_s=0).run(once=True)
    # (the worker is never asked for more of the imported ones)
    assert GenerationWorker(device="cpu", cache_dir=tmp_path / "models", idle_sleep_s=0).run(once=True).images == 0
    ready = Population.objects.filter(status="ready")
    assert sorted({p.generator.name for p in ready}) == ["api-by-hand", "local-tiny", "paper-model"]

    # when participants vote until the sets are used up,
    cast = vote_all(campaign, participants=6, per_participant=4)
    assert cast > 0
    pairs = {
        frozenset((c.left_population.generator.name, c.right_population.generator.name))
        for c in Comparison.objects.filter(campaign=campaign, status="voted").select_related(
            "left_population__generator", "right_population__generator"
        )
    }
    # then imported sets were shown against the local pipeline's and against each other,
    assert frozenset(("local-tiny", "paper-model")) in pairs or frozenset(("local-tiny", "api-by-hand")) in pairs
    assert any("local-tiny" not in pair for pair in pairs)
    # the leaderboard ranks all three,
    board = client.get("/api/v1/campaigns/mixed/leaderboard?criterion=diversity").json()
    assert {row["generator"] for row in board["rows"]} == {"local-tiny", "paper-model", "api-by-hand"}
    # and the export carries imported sets with their images, like generated ones.
    out = export(campaign, "population-jsonl", exports_root / "mixed")
    lines = [json.loads(line) for path in Path(out.path).rglob("*.jsonl") for line in path.read_text().splitlines()]
    sides = [side for line in lines for side in (line["left"], line["right"])]
    assert {side["generator"] for side in sides} & {"paper-model", "api-by-hand"}
    for side in sides:
        assert len(side["images"]) == N
        population = Population.objects.get(pk=side["population_id"])
        assert side["generator"] == population.generator.name
        assert [image["sha256"] for image in side["images"]] == list(
            population.images.order_by("index").values_list("sha256", flat=True)
        )
