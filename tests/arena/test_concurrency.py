"""Concurrent voting on PostgreSQL: quotas hold and no vote is counted twice."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from annotation.models import Participant
from arena.issuing import issue_comparison
from arena.models import Vote
from arena.voting import VoteInput, cast_votes
from core.errors import ApplicationError

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

BOTH = [VoteInput("diversity", "left"), VoteInput("quality", "tie")]


@pytest.fixture(autouse=True)
def _needs_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("row locks are only real on PostgreSQL (run with DATABASE_URL)")


def race(*calls):
    """Run the calls at the same moment in threads; return what each returned or raised."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            results[i] = call()
        except Exception as exc:  # collected for the assertions
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_simultaneous_votes_cannot_overshoot_a_quota_of_one(arena_campaign):
    campaign = arena_campaign(per_queue=4, votes_per_pair=5)
    campaign.participant_quota = 1
    campaign.save()
    voter = Participant.objects.create()
    first = issue_comparison(campaign=campaign, participant=voter)
    second = issue_comparison(campaign=campaign, participant=voter, exclude_tokens=(first.token,))
    results = race(
        lambda: cast_votes(token=first.token, participant=voter, votes=BOTH, dwell_ms=10),
        lambda: cast_votes(token=second.token, participant=voter, votes=BOTH, dwell_ms=10),
    )
    refused = [r for r in results if isinstance(r, ApplicationError)]
    assert len(refused) == 1
    assert refused[0].code == "quota_reached"
    assert Vote.objects.count() == 2


def test_the_same_comparison_voted_twice_at_once_is_counted_once(arena_campaign):
    campaign = arena_campaign()
    voter = Participant.objects.create()
    comparison = issue_comparison(campaign=campaign, participant=voter)
    results = race(*[lambda: cast_votes(token=comparison.token, participant=voter, votes=BOTH, dwell_ms=10)] * 4)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert {r.code for r in results if isinstance(r, ApplicationError)} == {"already_voted"}
    assert Vote.objects.count() == 2
