"""GET /api/v1/campaigns/SLUG/metrics and the per-prompt view: the table, labels, and agreement with the crowd."""

from __future__ import annotations

import pytest
from django.test import Client

from arena.tallies import recount_tallies
from metrics.config import MODEL_REFUSED
from tests.metrics.conftest import STUDY_COLOURS as COLOURS
from tests.metrics.conftest import vote

pytestmark = pytest.mark.django_db


def manager() -> Client:
    """A staff member: the per-prompt view names each set's generator, so it is for the campaign's managers."""
    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.create_user("staff", password="x", is_staff=True))
    return client


def test_metrics_api_has_the_designed_shape_with_pooled_and_per_prompt_values(study) -> None:  # type: ignore[no-untyped-def]
    response = Client().get("/api/v1/campaigns/study/metrics")

    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"campaign", "attributes", "rows", "agreement"}
    assert body["attributes"] == [
        {
            "name": "colour",
            "backend": "shapes",
            "model": None,
            "classes": COLOURS,
            "target": dict.fromkeys(COLOURS, 0.25),
        }
    ]
    rows = {row["generator"]: row for row in body["rows"]}
    assert set(rows) == {"narrow", "middle", "wide"}
    narrow, wide = rows["narrow"], rows["wide"]
    assert (narrow["populations"], narrow["images"], narrow["prompts"]) == (4, 16, 4)
    assert narrow["attributes"]["colour"]["shares"] == {"red": 1.0, "green": 0.0, "blue": 0.0, "yellow": 0.0}
    assert narrow["attributes"]["colour"]["discrepancy"] == pytest.approx((0.75**2 + 3 * 0.25**2) ** 0.5)
    assert wide["attributes"]["colour"]["discrepancy"] == pytest.approx(0.0)
    assert wide["attributes"]["colour"]["distinct"] == 4
    assert wide["attributes"]["colour"]["per_prompt"]["discrepancy"] == pytest.approx(0.0)
    assert wide["vendi"] > narrow["vendi"]
    assert narrow["clip_score"] is None, "no CLIP is configured"
    # Every picture is a circle: "a circle" is followed, "a square" never, "a shape" names nothing (no value),
    # and "a red circle" by narrow always and by wide one time in four.
    assert narrow["faithfulness"] == pytest.approx((1 + 0 + 1) / 3)
    assert wide["faithfulness"] == pytest.approx((1 + 0 + 0.25) / 3)


def test_a_category_filters_the_prompts(study) -> None:  # type: ignore[no-untyped-def]
    body = Client().get("/api/v1/campaigns/study/metrics?category=named").json()

    rows = {row["generator"]: row for row in body["rows"]}
    assert rows["wide"]["populations"] == 1
    assert rows["wide"]["attributes"]["colour"]["discrepancy_ci"] is None, "one prompt: no interval over prompts"


def test_agreement_counts_how_often_the_crowd_chose_the_side_the_measure_prefers(study) -> None:  # type: ignore[no-untyped-def]
    campaign, prompts, populations = study
    # Given a crowd that prefers the more varied set in 3 of 4 decisive votes, plus a tie that never counts,
    circle = prompts[0]
    narrow, middle, wide = (populations[(name, circle.pk)] for name in ("narrow", "middle", "wide"))
    vote(campaign, circle, narrow, wide, "right")
    vote(campaign, circle, wide, middle, "left")
    vote(campaign, circle, middle, narrow, "left")
    vote(campaign, circle, wide, narrow, "right")
    vote(campaign, circle, wide, narrow, "tie")
    recount_tallies(campaign=campaign)

    body = Client().get("/api/v1/campaigns/study/metrics").json()

    agreement = {(a["criterion"], a["measure"]): a for a in body["agreement"]}
    discrepancy = agreement[("diversity", "discrepancy:colour")]
    assert discrepancy["better"] == "lower"
    assert (discrepancy["votes"], discrepancy["agree"]) == (4, 3)
    assert discrepancy["share"] == pytest.approx(0.75)
    assert discrepancy["ci_low"] < 0.75 < discrepancy["ci_high"]
    assert discrepancy["spearman"] == pytest.approx(1.0), "wide > middle > narrow both ways"
    assert agreement[("diversity", "vendi")]["votes"] == 4
    assert ("diversity", "clip_score") not in agreement, "no CLIP: no CLIP score judge"


def test_agreement_is_not_stale_after_quality_control_flags_a_voter(study) -> None:  # type: ignore[no-untyped-def]
    from arena.models import Vote
    from arena.participation import set_flags

    campaign, prompts, populations = study
    circle = prompts[0]
    narrow, middle, wide = (populations[(name, circle.pk)] for name in ("narrow", "middle", "wide"))
    vote(campaign, circle, narrow, wide, "right")
    vote(campaign, circle, wide, middle, "left")
    vote(campaign, circle, narrow, middle, "left")

    def votes() -> int:
        body = Client().get("/api/v1/campaigns/study/metrics").json()
        return {(a["criterion"], a["measure"]): a for a in body["agreement"]}[("diversity", "discrepancy:colour")][
            "votes"
        ]

    assert votes() == 3  # and now cached
    # Flagging casts no vote, yet the flagged participant's vote stops counting at once, not up to 10 minutes on.
    flagged = Vote.objects.filter(comparison__left_population=narrow, comparison__right_population=middle).get()
    set_flags(campaign=campaign, flags={flagged.comparison.participant_id: "failed gold"})

    assert votes() == 2


def test_each_row_counts_its_generator_s_blank_images_on_the_campaign_s_prompts(study) -> None:  # type: ignore[no-untyped-def]
    from generation.image_files import BLANK_FAILURE
    from generation.models import Population
    from tests.factories import PopulationFactory, PromptFactory

    campaign, prompts, populations = study
    circle, red_circle = prompts[0], prompts[3]
    # Given two images of narrow's stored sets that were redrawn, one of them twice (three blank draws),
    narrow = populations[("narrow", circle.pk)]
    first, second = narrow.images.order_by("index")[:2]
    first.provenance, second.provenance = {"blank_seeds": [11]}, {"blank_seeds": [12, 13]}
    first.save(update_fields=["provenance"])
    second.save(update_fields=["provenance"])
    body = Client().get("/api/v1/campaigns/study/metrics").json()  # the table is cached from here on
    # and wide's sets that failed on a blank image: on one of the campaign's prompts (counted), on a prompt of
    # another study (not counted), and one that failed for another reason (not counted),
    wide = populations[("wide", circle.pk)].generator
    blank_error = f"attempt 3: {BLANK_FAILURE}: image 0 for prompt 'a red circle' came back blank 3 time(s)"
    PopulationFactory(generator=wide, prompt=red_circle, status=Population.Status.FAILED, error=blank_error)
    PopulationFactory(generator=wide, prompt=PromptFactory(), status=Population.Status.FAILED, error=blank_error)
    PopulationFactory(generator=wide, prompt=circle, status=Population.Status.FAILED, error="attempt 3: out of memory")

    # when the metrics are read (the measures and votes unchanged, so the table itself comes from the cache),
    body = Client().get("/api/v1/campaigns/study/metrics").json()
    named = Client().get("/api/v1/campaigns/study/metrics?category=open").json()

    # then each row counts its own: three redrawn draws for narrow, one failed set and its prompt for wide.
    rows = {row["generator"]: row["blank"] for row in body["rows"]}
    assert rows == {
        "narrow": {"redrawn": 3, "failed_sets": 0, "prompts": []},
        "middle": {"redrawn": 0, "failed_sets": 0, "prompts": []},
        "wide": {"redrawn": 0, "failed_sets": 1, "prompts": ["a red circle"]},
    }
    # A category counts its own prompts only: "a red circle" is a named-colour prompt.
    assert {row["generator"]: row["blank"]["failed_sets"] for row in named["rows"]}["wide"] == 0
    assert {row["generator"]: row["blank"]["redrawn"] for row in named["rows"]}["narrow"] == 3
    assert "blank" in body["notes"]


def test_the_prompt_view_shows_each_generator_s_images_with_their_labels(study) -> None:  # type: ignore[no-untyped-def]
    _, prompts, _ = study

    staff = manager()
    body = staff.get(f"/api/v1/campaigns/study/metrics/prompts/{prompts[0].pk}").json()

    sides = {side["generator"]: side for side in body["generators"]}
    assert [image["labels"]["colour"] for image in sides["wide"]["images"]] == COLOURS
    assert sides["narrow"]["attributes"]["colour"]["shares"]["red"] == 1.0
    assert staff.get("/api/v1/campaigns/study/metrics/prompts/999999").status_code == 404


def test_unknown_campaign_is_a_404() -> None:
    response = Client().get("/api/v1/campaigns/nope/metrics")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_metrics_endpoint_is_in_the_openapi_schema() -> None:
    schema = Client().get("/api/schema/?format=json").json()

    operation = schema["paths"]["/api/v1/campaigns/{slug}/metrics"]["get"]
    assert "200" in operation["responses"]
    row = schema["components"]["schemas"]["MetricsRow"]["properties"]
    assert {"generator", "populations", "images", "attributes", "vendi", "faithfulness", "clip_score", "blank"} <= set(
        row
    )


def test_a_campaign_whose_clip_folder_moved_answers_409_naming_the_field_and_folder(study, tmp_path) -> None:  # type: ignore[no-untyped-def]
    campaign, prompts, _ = study
    # Given a campaign saved with a CLIP folder (its metrics read, and are cached), whose folder then moves,
    folder = tmp_path / "clip"
    folder.mkdir()
    campaign.metrics_attributes = {
        **campaign.metrics_attributes,
        "gender": {"backend": "clip", "model": str(folder), "classes": ["a man", "a woman"]},
    }
    campaign.save()
    assert Client().get("/api/v1/campaigns/study/metrics").status_code == 200
    folder.rmdir()

    staff = manager()
    for url in ("/api/v1/campaigns/study/metrics", f"/api/v1/campaigns/study/metrics/prompts/{prompts[0].pk}"):
        response = staff.get(url)

        assert response.status_code == 409, url
        error = response.json()["error"]
        assert error["code"] == "metrics_config_invalid"
        assert f"metrics_attributes.gender.model: {MODEL_REFUSED}" in error["message"]
        assert str(folder) not in error["message"]
        assert "'study'" in error["message"]


def test_the_metrics_endpoint_documents_the_409_for_a_configuration_that_no_longer_reads() -> None:
    schema = Client().get("/api/schema/?format=json").json()

    for path in ("/api/v1/campaigns/{slug}/metrics", "/api/v1/campaigns/{slug}/metrics/prompts/{prompt_id}"):
        response = schema["paths"][path]["get"]["responses"]["409"]
        assert "metrics_config_invalid" in response["description"]


def test_an_attribute_is_measured_only_on_prompts_that_leave_it_open(db) -> None:  # type: ignore[no-untyped-def]
    from metrics.services import measure_populations
    from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory
    from tests.metrics.conftest import drawn, store_pictures

    # Given a generator that draws every colour evenly where the colour is left open and red where "a red
    # circle" asks for red,
    campaign = CampaignFactory(
        slug="asked", population_size=4, metrics_attributes={"colour": {"backend": "shapes", "classes": COLOURS}}
    )
    open_prompt, red_prompt = PromptFactory(caption="a circle"), PromptFactory(caption="a red circle")
    generator = GeneratorFactory(name="obedient")
    campaign.generators.set([generator])
    campaign.prompts.set([open_prompt, red_prompt])
    populations = [
        store_pictures(generator, open_prompt, [drawn(c) for c in COLOURS]),
        store_pictures(generator, red_prompt, [drawn("red")] * 4),
    ]
    measure_populations(population_ids=[p.pk for p in populations], attributes=campaign.attribute_specs())

    row = Client().get("/api/v1/campaigns/asked/metrics").json()["rows"][0]

    # then its colour reads even, over the one open prompt: the red it was asked for is no skew,
    colour = row["attributes"]["colour"]
    assert colour["shares"] == dict.fromkeys(COLOURS, 0.25)
    assert colour["discrepancy"] == pytest.approx(0.0)
    assert (colour["prompts"], colour["counted"]) == (1, 4)
    # while faithfulness, a set measure, still reads both prompts (both followed).
    assert (row["prompts"], row["populations"]) == (2, 2)
    assert row["faithfulness"] == pytest.approx(1.0)


def test_votes_on_a_prompt_that_names_the_attribute_do_not_count_toward_its_measures_agreement(study) -> None:  # type: ignore[no-untyped-def]
    campaign, prompts, populations = study
    # Given one vote on "a red circle" for the all-red set (what was asked) and one on "a circle" for the varied set,
    red_circle, circle = prompts[3], prompts[0]
    assert red_circle.caption == "a red circle"
    vote(campaign, red_circle, populations[("narrow", red_circle.pk)], populations[("wide", red_circle.pk)], "left")
    vote(campaign, circle, populations[("narrow", circle.pk)], populations[("wide", circle.pk)], "right")
    recount_tallies(campaign=campaign)

    agreement = {a["measure"]: a for a in Client().get("/api/v1/campaigns/study/metrics").json()["agreement"]}

    # then the colour's discrepancy is judged on the open prompt's vote only (and agrees with it),
    assert (agreement["discrepancy:colour"]["votes"], agreement["discrepancy:colour"]["agree"]) == (1, 1)
    # while a set measure has a say on both.
    assert agreement["vendi"]["votes"] == 2
