"""`seed_demo` creates the demo campaign once and changes nothing when run again."""

from __future__ import annotations

from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command

from annotation.models import Campaign, Criterion

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


def test_seed_demo_never_rewrites_an_existing_demo_campaign():
    # Given a live demo that its researcher changed: invite-only, paused, a question reworded, a criterion
    # added, a generator and a prompt taken out
    run_seed()
    demo = Campaign.objects.get(slug="demo")
    demo.access = Campaign.Access.INVITE
    demo.status = Campaign.Status.PAUSED
    demo.save()
    demo.criteria.filter(key="quality").update(question="edited by hand")
    Criterion.objects.create(campaign=demo, key="realism", question="Which set looks more real?", position=5)
    removed_generator = demo.generators.order_by("name").first()
    removed_prompt = demo.prompts.order_by("caption").first()
    demo.generators.remove(removed_generator)
    demo.prompts.remove(removed_prompt)
    before = snapshot()
    # When seed_demo runs again (scripts/demo runs it at every start)
    output = run_seed()
    # Then nothing of the campaign changed
    assert snapshot() == before
    demo.refresh_from_db()
    assert demo.access == Campaign.Access.INVITE
    assert demo.status == Campaign.Status.PAUSED
    assert demo.criteria.get(key="quality").question == "edited by hand"
    assert demo.criteria.filter(key="realism").exists()
    assert not demo.generators.filter(pk=removed_generator.pk).exists()
    assert not demo.prompts.filter(pk=removed_prompt.pk).exists()
    assert "left as it is" in output


def test_seed_demo_leaves_a_campaign_someone_else_made_at_the_demo_slug_alone():
    theirs = Campaign.objects.create(slug="demo", title="Someone's own study", access=Campaign.Access.INVITE)
    run_seed()
    theirs.refresh_from_db()
    assert (theirs.title, theirs.access, theirs.status) == ("Someone's own study", "invite", "draft")
    assert not theirs.criteria.exists()
    assert not theirs.generators.exists()
