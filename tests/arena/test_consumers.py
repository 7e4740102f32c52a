"""WebSocket: a waiting vote page hears that image sets became ready."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

from config.asgi import application
from generation.models import Population
from generation.services import _announce_ready
from tests.factories import PopulationFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.asyncio
async def test_waiting_page_is_told_when_a_population_becomes_ready():
    from asgiref.sync import sync_to_async

    communicator = WebsocketCommunicator(
        application, "/ws/campaigns/demo/queue/", headers=[(b"host", b"localhost"), (b"origin", b"http://localhost")]
    )
    connected, _ = await communicator.connect()
    assert connected
    population: Population = await sync_to_async(PopulationFactory)()
    await sync_to_async(_announce_ready)(population)
    # Only "something is ready": no generator, prompt or population id reaches the browser.
    assert await communicator.receive_json_from(timeout=5) == {"type": "ready"}
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_a_foreign_origin_is_refused():
    communicator = WebsocketCommunicator(
        application, "/ws/campaigns/demo/queue/", headers=[(b"host", b"localhost"), (b"origin", b"http://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected
