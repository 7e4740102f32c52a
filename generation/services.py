"""Writes for generators and prompts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from core.models import sync_object
from generation.models import Generator, Prompt
from generation.prompt_files import PromptRow


@dataclass(frozen=True)
class GeneratorSpec:
    name: str
    display_name: str
    description: str
    source: str
    settings: dict[str, Any]
    prompt_template: str = "{prompt}"
    is_offline_standin: bool = False


@transaction.atomic
def sync_generator(*, spec: GeneratorSpec) -> tuple[Generator, str]:
    """Create or update the generator named `spec.name`; "created", "updated" or "unchanged"."""
    return sync_object(
        Generator,
        lookup={"name": spec.name},
        values={
            "display_name": spec.display_name,
            "description": spec.description,
            "source": spec.source,
            "settings": spec.settings,
            "prompt_template": spec.prompt_template,
            "is_offline_standin": spec.is_offline_standin,
        },
    )


@transaction.atomic
def import_prompts(*, rows: Iterable[PromptRow]) -> tuple[list[Prompt], Counter[str]]:
    """Get or create one prompt per row; returns them in row order and counts created/existing."""
    counts: Counter[str] = Counter()
    prompts = []
    for row in rows:
        prompt, created = Prompt.objects.get_or_create(caption=row.caption, category=row.category)
        counts["created" if created else "existing"] += 1
        prompts.append(prompt)
    return prompts, counts
