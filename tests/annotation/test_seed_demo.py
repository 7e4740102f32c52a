"""`seed_demo` creates the demo campaign once and changes nothing when run again."""

from __future__ import annotations

from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command

from annotation.models import Campaign

pytestmark = pytest.mark.django_db

PROJECT_APPS = ("generation", "annotation", "arena")


def snapshot() -> dict[str, list[dict]]:
    """Every row of every project table, including many-to-many links and timestamps."""
    rows: dict[str, list[dict]] = {}
    for app in PROJECT_APPS:
        for model in apps.get_app_config(app).get_models():
            rows[model._meta.label] = list(model.objects.order_by("pk").values())
            for m2m in model._meta.many_to_many:
                through = m2m.remote_field.through
                rows[through._meta.label] = list(through.objects.order_by("pk").values())
    return rows


def run_seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_creates_the_demo_campaign_with_offline_generators_prompts_and_criteria():
    run_seed()
    demo = Campaign.objects.get(slug="demo")
    assert demo.status == Campaign.Status.OPEN
    assert demo.access == Campaign.Access.PUBLIC
    assert demo.population_size == 6
    assert dict(demo.criteria.values_list("key", "question")) == {
        "diversity": "Which set better shows the range of people or things this prompt could describe?",
        "quality": "Which set has better image quality and follows the prompt better?",
    }
    prompts = list(demo.prompts.all())
    assert len(prompts) >= 12
    assert all(p.category for p in prompts)
    assert len({p.category for p in prompts}) >= 3
    generators = list(demo.generators.all())
    assert len(generators) >= 2
    assert all(g.is_offline_standin and g.source.startswith("builtin:") for g in generators)
    assert "offline stand-ins" in demo.instructions


def test_second_seed_demo_changes_nothing():
    run_seed()
    before = snapshot()
    output = run_seed()
    assert snapshot() == before
    assert "nothing changed" in output


def test_seed_demo_keeps_a_paused_demo_paused_and_restores_an_edited_question():
    run_seed()
    demo = Campaign.objects.get(slug="demo")
    demo.status = Campaign.Status.PAUSED
    demo.save()
    demo.criteria.filter(key="quality").update(question="edited by hand")
    run_seed()
    demo.refresh_from_db()
    assert demo.status == Campaign.Status.PAUSED
    assert demo.criteria.get(key="quality").question.startswith("Which set has better image quality")
