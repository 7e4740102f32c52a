"""Generation fixtures: an offline model hub and one tiny random-weight pipeline built per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from generation.pipelines import PipelineSpec, load_pipeline

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
