"""Hosted image APIs as generators: a registry from a generator's `source` prefix to its provider.

`openai:MODEL`, `openai-compatible:MODEL` (with `base_url`) and `replicate:OWNER/MODEL[:VERSION]`. The
worker asks `is_api_source` and then `load_provider`, and calls the provider as it calls a pipeline
(`provider.generate(prompts, seeds)`); saving a generator asks `check_api_generator`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from generation.providers import openai_images, replicate_predictions
from generation.providers.base import (
    REFUSAL_PREFIX,
    ContentRefused,
    ImageProvider,
    Limits,
    MissingKey,
    ProviderError,
    ProviderSettingsError,
    ProviderSpec,
)

__all__ = [
    "PROVIDERS",
    "REFUSAL_PREFIX",
    "ContentRefused",
    "ImageProvider",
    "Limits",
    "MissingKey",
    "ProviderError",
    "ProviderSettingsError",
    "ProviderSpec",
    "check_api_generator",
    "is_api_source",
    "load_provider",
    "provider_spec",
]


@dataclass(frozen=True)
class Provider:
    """One way in: how its settings are checked and what calls it."""

    spec_from_settings: Callable[[str, str, str, Mapping[str, Any]], ProviderSpec]
    build: Callable[..., ImageProvider]


PROVIDERS: dict[str, Provider] = {
    "openai": Provider(openai_images.spec_from_settings, openai_images.OpenAIImages),
    "openai-compatible": Provider(openai_images.spec_from_settings, openai_images.OpenAIImages),
    "replicate": Provider(replicate_predictions.spec_from_settings, replicate_predictions.ReplicatePredictions),
}


def is_api_source(source: str) -> bool:
    """Whether `source` names a hosted API (its prefix before the first colon is a provider's)."""
    prefix, colon, _ = source.partition(":")
    return bool(colon) and prefix in PROVIDERS


def provider_spec(source: str, settings: Mapping[str, Any] | None) -> ProviderSpec:
    """A generator's source and settings, checked; ProviderSettingsError names the first bad field."""
    prefix, colon, model = source.partition(":")
    provider = PROVIDERS.get(prefix) if colon else None
    if provider is None:
        known = ", ".join(f"{name}:MODEL" for name in PROVIDERS)
        raise ProviderSettingsError(f"source {source!r} names no hosted image API (known: {known})")
    if not isinstance(settings, Mapping):
        raise ProviderSettingsError(f"settings must be a JSON object, got {type(settings).__name__}")
    return provider.spec_from_settings(source, prefix, model, settings)


def check_api_generator(*, backend: str, source: str, settings: Mapping[str, Any] | None) -> ProviderSpec | None:
    """Refuse an API generator that could never run (ProviderSettingsError naming the field); None for others.

    The backend and the source must agree: an "api" generator names a provider, and a provider's source
    is an "api" generator's (so that the budget, spend and provenance rules apply to it).
    """
    api_source = is_api_source(source)
    if backend != "api" and not api_source:
        return None
    if backend != "api":
        raise ProviderSettingsError(f"source {source!r} is a hosted image API: the generator's backend must be 'api'")
    return provider_spec(source, settings)


def load_provider(source: str, settings: Mapping[str, Any] | None, *, defaults: Limits) -> ImageProvider:
    """The provider a generator names, ready to call; the key is read from its variable on each call."""
    spec = provider_spec(source, settings)
    return PROVIDERS[spec.provider].build(spec, defaults=defaults)
