"""Generators, prompts, populations and images; the generation worker."""

from collections.abc import Iterable

from django.apps import AppConfig


def _generator_choices() -> list[tuple[int, str]]:
    from generation.models import Generator

    return list(Generator.objects.order_by("name").values_list("pk", "name"))


def _generator_ids_by_name(names: Iterable[str]) -> dict[str, int]:
    from generation.models import Generator

    return dict(Generator.objects.filter(name__in=list(names)).values_list("name", "pk"))


def _generator_ids(ids: Iterable[int]) -> set[int]:
    return {int(pk) for pk in ids}


class GenerationConfig(AppConfig):
    name = "generation"

    def ready(self) -> None:
        from access.hooks import LimitKind, register_limit_kind

        # A worker token can be limited to generators (access/hooks.py says why access asks us).
        register_limit_kind(
            "generators",
            LimitKind(choices=_generator_choices, ids_by_name=_generator_ids_by_name, generator_ids=_generator_ids),
        )
