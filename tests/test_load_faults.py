"""Votes under load and faults, through the real ASGI server: nothing acknowledged is lost or counted twice.

The short version of bench/load_faults.py (issue 9), using its own functions: 20 scripted
participants vote as fast as the server answers for a few seconds, steadily, while the
generation worker is SIGKILLed mid-batch and restarted, and while the web server is stopped
(SIGTERM, or SIGKILL of its whole process group) and a new one started on the same port.
Afterwards every acknowledged vote is stored exactly once, every stored vote was acknowledged
or its answer was lost with the server, no response was a 5xx, no population is half-written
or was issued before it was ready, and the killed worker's claims were reclaimed.

On a SQLite file with one server process by default; on PostgreSQL + Redis (scratch database
and prefixes of its own) when DATABASE_URL and REDIS_URL are set.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load_faults import LoadOptions, run_scenario, scenario_site, verdict  # noqa: E402

# Runs once in CI, on PostgreSQL + Redis (see .ci/run); the fast suite runs on both databases.
pytestmark = pytest.mark.slow

PARTICIPANTS = 20
SECONDS = 5.0


def run(scenario: str, **overrides: Any) -> dict[str, Any]:
    pg = os.environ.get("DATABASE_URL", "")
    redis = os.environ.get("REDIS_URL", "") if pg else ""
    options = LoadOptions(
        participants=PARTICIPANTS,
        duration=SECONDS,
        # SQLite takes one writer: one server process. Several share sessions and throttles through Redis.
        workers=2 if redis else 1,
        per_queue=20,
        lease_seconds=2,
        retry_s=30,
        **overrides,
    )
    with scenario_site(scenario, options, pg=pg, redis=redis) as site:
        result = run_scenario(scenario, site, options)
    failed = {name for name, ok in verdict(result).items() if not ok}
    assert not failed, f"{failed}: {result}"
    assert result["errors"] == 0, result["first_errors"]
    return result


def test_steady_load_stores_every_acknowledged_vote_exactly_once():
    result = run("steady")
    assert result["votes"]["unacknowledged_but_stored"] == 0, "nothing was lost in flight, so nothing is unexplained"
    assert result["connection_errors"] == 0


def test_killing_the_generation_worker_mid_batch_loses_nothing_and_its_claims_are_reclaimed():
    result = run("kill-worker", fault_at=0.3)
    fault = result["fault"]
    # The worker held claimed populations when it died; they were taken over and are ready or pending again.
    assert fault["held_when_killed"] > 0
    assert fault["reclaimed"], fault
    assert set(fault["killed_claims_now"]) <= {"ready", "pending"}, fault
    assert fault["generating_after_stop"] == 0, "a stopped worker hands its claim back"
    assert fault["acknowledged_after_fault"] > 0, "voting went on while the worker was down"


@pytest.mark.parametrize("signal", ["TERM", "KILL"])
def test_restarting_the_web_server_mid_load_loses_no_acknowledged_vote(signal):
    result = run("restart-web", signal=signal)
    fault = result["fault"]
    assert fault["acknowledged_before_fault"] > 0, "the server went down while participants were voting"
    assert fault["acknowledged_after_fault"] > 0, "participants carried on against the new server"
    # Every stored vote without an acknowledgement belongs to a request whose answer was lost.
    assert result["votes"]["unexplained_stored"] == 0
