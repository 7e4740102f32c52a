"""WebSocket: a waiting vote page hears that image sets became ready."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

from config.asgi import application
from generation.models import Population
from generation.services import _announce_ready
from tests.factories import CampaignFactory, PopulationFactory

pytestmark = pytest.mark.django_db(transaction=True)


def visitor_session(*, participant: bool = True, invited_to: int | None = None) -> str:
    """A browser session as the vote page leaves it: its participant, and any invite it was let in by."""
    from django.contrib.sessions.backends.db import SessionStore

    from annotation.models import Participant
    from annotation.services import INVITES_SESSION_KEY, PARTICIPANT_SESSION_KEY

    session = SessionStore()
    if participant:
        session[PARTICIPANT_SESSION_KEY] = Participant.objects.create().pk
    if invited_to:
        session[INVITES_SESSION_KEY] = [invited_to]
    session.save()
    return session.session_key or ""


async def queue_socket(slug: str, session_key: str | None) -> tuple[WebsocketCommunicator, bool]:
    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost")]
    if session_key:
        headers.append((b"cookie", f"sessionid={session_key}".encode()))
    communicator = WebsocketCommunicator(application, f"/ws/campaigns/{slug}/queue/", headers=headers)
    connected, _ = await communicator.connect()
    return communicator, connected


@pytest.mark.asyncio
async def test_waiting_page_is_told_when_a_population_becomes_ready():
    from asgiref.sync import sync_to_async

    await sync_to_async(CampaignFactory)(slug="open-study")
    communicator, connected = await queue_socket("open-study", await sync_to_async(visitor_session)())
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


@pytest.mark.asyncio
async def test_the_queue_socket_needs_a_session_admitted_to_the_campaign():
    from asgiref.sync import sync_to_async

    from annotation.models import Campaign

    await sync_to_async(CampaignFactory)(slug="open-study")
    secret = await sync_to_async(CampaignFactory)(slug="secret-study", access=Campaign.Access.INVITE)
    refused = [
        ("open-study", None),  # no session at all
        ("open-study", await sync_to_async(visitor_session)(participant=False)),  # never opened a vote page
        ("secret-study", await sync_to_async(visitor_session)()),  # not invited
        ("no-such-study", await sync_to_async(visitor_session)()),
    ]
    for slug, session in refused:
        communicator, connected = await queue_socket(slug, session)
        assert not connected, slug
    communicator, connected = await queue_socket(
        "secret-study", await sync_to_async(visitor_session)(invited_to=secret.pk)
    )
    assert connected
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_the_queue_socket_of_a_crowd_campaign_needs_a_session_that_arrived_from_the_crowd():
    from asgiref.sync import sync_to_async

    from annotation.models import Campaign

    def admitted_session() -> str:
        from django.contrib.sessions.backends.db import SessionStore

        from annotation.crowd import CrowdEntry
        from annotation.services import enter_crowd

        session = SessionStore()
        campaign = Campaign.objects.get(slug="paid-study")
        entry = CrowdEntry("prolific", "p-1", "session-1", "study-1")
        enter_crowd(campaign=campaign, session=session, entry=entry, quota_reached=lambda participant: False)
        session.save()
        return session.session_key or ""

    await sync_to_async(CampaignFactory)(slug="paid-study", access=Campaign.Access.PROLIFIC)
    communicator, connected = await queue_socket("paid-study", await sync_to_async(visitor_session)())
    assert not connected  # a participant, but not from Prolific
    communicator, connected = await queue_socket("paid-study", await sync_to_async(admitted_session)())
    assert connected
    await communicator.disconnect()
