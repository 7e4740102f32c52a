"""Generation fixtures: an offline model hub, one tiny random-weight pipeline built per session, and the local
servers, keys and recorded waits of the hosted API providers' tests."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from generation.pipelines import PipelineSpec, load_pipeline
from generation.providers import base as provider_base
from tests.generation.local_api import LocalAPI, Script, serving

# huggingface_hub copies HF_HUB_OFFLINE into constants at import, so the variable must be set before
# anything imports it; the session fixture below also patches the live flag in case something did.
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def hf_offline() -> Iterator[None]:
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="session")
def pipeline_cache_dir(tmp_path_factory: pytest.TempPathFactory, hf_offline: None) -> Path:
    return tmp_path_factory.mktemp("pipeline-cache")


@pytest.fixture(scope="session")
def tiny_spec() -> PipelineSpec:
    return PipelineSpec.from_settings("builtin:tiny-random", {"steps": 2, "width": 64, "height": 64})


@pytest.fixture(scope="session")
def tiny_pipe(tiny_spec: PipelineSpec, pipeline_cache_dir: Path) -> Any:
    return load_pipeline(tiny_spec, device="cpu", cache_dir=pipeline_cache_dir)


@pytest.fixture
def local_api() -> Iterator[Callable[[Script], LocalAPI]]:
    """Start a local server answering as `script` says (a provider's documented protocol); stopped after the test."""
    with ExitStack() as servers:
        yield lambda script: servers.enter_context(serving(script))


@pytest.fixture
def provider_key(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], str]:
    """Put a fresh key, `prefix` and random hex, in the environment variable `env` (only there); returns it."""

    def put(env: str, prefix: str) -> str:
        value = f"{prefix}{secrets.token_hex(20)}"
        monkeypatch.setenv(env, value)
        return value

    return put


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait the providers' retry loop would sleep, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(provider_base, "_sleep", recorded.append)
    return recorded
