"""The worker's torch CPU threads: every core but one by default, so the web server beside it keeps a core."""

from __future__ import annotations

import pytest

from generation import pipelines
from generation.pipelines import PipelineError, use_cpu_threads


@pytest.fixture
def torch_threads():  # type: ignore[no-untyped-def]
    import torch

    before = torch.get_num_threads()
    yield torch
    torch.set_num_threads(before)


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 1), (8, 7), (None, 1)])
def test_automatic_threads_leave_one_core_free(monkeypatch, torch_threads, cores, expected):
    monkeypatch.setattr(pipelines.os, "cpu_count", lambda: cores)
    assert use_cpu_threads(0) == expected
    assert torch_threads.get_num_threads() == expected


def test_threads_asked_for_are_used_and_a_negative_count_is_refused(torch_threads):
    assert use_cpu_threads(2) == 2
    assert torch_threads.get_num_threads() == 2
    with pytest.raises(PipelineError, match="threads must be 0"):
        use_cpu_threads(-1)
    assert torch_threads.get_num_threads() == 2
