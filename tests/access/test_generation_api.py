"""Staff and worker endpoints: generators, queue depth per demand, workers' leases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from generation.models import Demand, Population
from tests.factories import GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def queues():  # type: ignore[no-untyped-def]
    """Two generators wanted by one campaign: one queue full, one short; one population being generated."""
    full, short = GeneratorFactory(name="full"), GeneratorFactory(name="short")
    prompt = PromptFactory()
    now = timezone.now()
    for generator in (full, short):
        Demand.objects.create(
            owner="campaign:demo", generator=generator, prompt=prompt, size=6, low_watermark=2, high_watermark=3
        )
    for _ in range(3):
        Population.objects.create(generator=full, prompt=prompt, size=6, status="ready", ready_at=now)
    Population.objects.create(
        generator=short,
        prompt=prompt,
        size=6,
        status="generating",
        claimed_by="gpu-host:4242",
        lease_until=now + timedelta(minutes=5),
    )
    Population.objects.create(
        generator=full,
        prompt=prompt,
        size=6,
        status="generating",
        claimed_by="crashed-host:1",
        lease_until=now - timedelta(minutes=1),
    )
    return full, short


def test_queue_depth_per_generator_for_a_worker_token(token_client, queues):
    rows = token_client("worker").get("/api/v1/queues/").json()
    by_generator = {row["generator"]: row for row in rows}
    assert by_generator["full"]["available"] == 3
    assert by_generator["full"]["deficit"] == 0
    assert by_generator["short"]["available"] == 0
    assert by_generator["short"]["in_flight"] == 1
    assert by_generator["short"]["deficit"] == 2
    assert token_client("worker").get("/api/v1/queues/?owner=campaign:other").json() == []


def test_workers_shows_lease_holders_and_expired_leases_to_staff(staff, queues):
    client = APIClient()
    client.force_login(staff)
    rows = {row["worker"]: row for row in client.get("/api/v1/workers/").json()}
    assert set(rows) == {"gpu-host:4242", "crashed-host:1"}
    assert rows["gpu-host:4242"]["generators"] == ["short"]
    assert rows["gpu-host:4242"]["expired"] is False
    assert rows["crashed-host:1"]["expired"] is True


def test_generators_lists_every_generator_for_staff_or_a_read_token(staff, token_client, queues):
    client = APIClient()
    client.force_login(staff)
    names = [g["name"] for g in client.get("/api/v1/generators/").json()]
    assert names == ["full", "short"]
    assert [g["name"] for g in token_client("read").get("/api/v1/generators/").json()] == names


def test_staff_endpoints_refuse_anonymous_and_ordinary_users(member, token_client, queues):
    ordinary = APIClient()
    ordinary.force_login(member)
    for url in ("/api/v1/generators/", "/api/v1/queues/", "/api/v1/workers/"):
        assert APIClient().get(url).status_code == 403
        assert ordinary.get(url).status_code == 403
    # The workers list is for staff: a non-staff owner's worker token does not reach it.
    assert token_client("worker", user=member).get("/api/v1/workers/").status_code == 403
    assert token_client("worker").get("/api/v1/workers/").status_code == 200
    refused = token_client("read").get("/api/v1/workers/")
    assert refused.status_code == 403
    assert "'manage' or 'worker'" in refused.json()["error"]["message"]
