"""Issuing a pair while another transaction counts the same pair's uses must not deadlock (PostgreSQL).

Found under load: two participants given the same pair at once each updated both population
rows in one statement, which locks them in the order they lie on disk, not by id. Here a rival
transaction locks the pair's rows by id, as every writer must; the issue running beside it
has to wait its turn instead of dying with `deadlock detected`.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections

from annotation.models import Participant
from arena.issuing import issue_comparison
from arena.models import Comparison
from generation.models import Population

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture(autouse=True)
def _needs_postgresql():  # type: ignore[no-untyped-def]
    if connection.vendor != "postgresql":
        pytest.skip("row-lock order matters only where rows are locked: PostgreSQL (run with DATABASE_URL)")


def _waiting_for_a_lock() -> bool:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return bool(cursor.fetchone()[0])


def test_issuing_a_pair_waits_for_a_rival_holding_its_rows_instead_of_deadlocking(arena_campaign):
    campaign = arena_campaign(generators=2, prompts=1, per_queue=1)
    low, high = sorted(Population.objects.values_list("pk", flat=True))
    # Put the low-id row after the high one on disk, where a plain scan of both meets it second.
    Population.objects.filter(pk=low).update(uses=0)
    participant = Participant.objects.create()
    locked_low, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def rival() -> None:
        # Another participant's issue (or a vote) of the same pair: low first, then high, then commit.
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute("UPDATE generation_population SET reserved = reserved + 1 WHERE id = %s", [low])
                locked_low.set()
                release.wait(10)
                cursor.execute("UPDATE generation_population SET reserved = reserved + 1 WHERE id = %s", [high])
                cursor.execute("COMMIT")
        except BaseException as error:  # noqa: BLE001 (reported by the test below)
            errors.append(error)
        finally:
            connections["default"].close()

    def issue() -> None:
        try:
            issue_comparison(campaign=campaign, participant=participant)
        except BaseException as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connections["default"].close()

    rival_thread = threading.Thread(target=rival)
    rival_thread.start()
    assert locked_low.wait(10)
    issuer = threading.Thread(target=issue)
    issuer.start()
    deadline = time.monotonic() + 10
    while not _waiting_for_a_lock() and time.monotonic() < deadline:
        time.sleep(0.05)
    # The issuer really queued behind the rival's row lock: otherwise this test proves nothing.
    assert _waiting_for_a_lock(), "the issuer never waited for the rival's lock"
    assert issuer.is_alive()
    release.set()  # the rival now wants the high row: free only if the issue did not take it first
    for thread in (rival_thread, issuer):
        thread.join(30)
    assert errors == []
    comparison = Comparison.objects.get()
    assert {comparison.left_population_id, comparison.right_population_id} == {low, high}
    # Both issues reserved both sets (a comparison takes a use of each while its lease runs).
    assert dict(Population.objects.values_list("pk", "reserved")) == {low: 2, high: 2}
