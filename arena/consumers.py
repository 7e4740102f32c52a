"""WebSocket consumers: tell a waiting vote page that image sets became ready."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.sessions.backends.base import SessionBase

from annotation.models import Campaign
from annotation.services import PARTICIPANT_SESSION_KEY
from arena.admission import may_vote
from arena.selectors import default_criterion, get_leaderboard
from arena.tallies import leaderboard_group
from arena.watching import RENEW_S, mark_watched
from core.errors import ApplicationError
from generation.services import READY_GROUP


class QueueConsumer(AsyncJsonWebsocketConsumer):
    """Forwards "a population is ready" without any detail: the page just asks for its next comparison.

    Only for a browser session that already holds a participant admitted to the campaign (one
    that opened its vote page): the Origin is checked before this, the session here.
    """

    async def connect(self) -> None:
        slug = self.scope["url_route"]["kwargs"]["slug"]
        session = self.scope.get("session")
        if session is None or not await database_sync_to_async(_may_wait_on)(slug, session):
            await self.close(code=4403)
            return
        await self.channel_layer.group_add(READY_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(READY_GROUP, self.channel_name)

    async def population_ready(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "ready"})


class LeaderboardConsumer(AsyncJsonWebsocketConsumer):
    """Pushes a campaign's refitted leaderboard after votes land.

    The client says which criterion and category it shows ({"criterion": ..., "category": ...});
    by default the first criterion over all prompts. It is sent that board at once, then after every
    vote. Fits are cached, so many open pages fit once. While open, the socket keeps its campaign marked
    as watched (arena.watching): votes announce their change only to watched campaigns.
    """

    renewal: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.slug = self.scope["url_route"]["kwargs"]["slug"]
        self.campaign = await database_sync_to_async(_public_campaign)(self.slug)
        if self.campaign is None:
            await self.close(code=4404)
            return
        self.criterion = await database_sync_to_async(default_criterion)(self.campaign)
        self.category = ""
        await mark_watched(self.slug)
        self.renewal = asyncio.create_task(self._keep_watching())
        await self.channel_layer.group_add(leaderboard_group(self.slug), self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.renewal is not None:
            self.renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.renewal
        await self.channel_layer.group_discard(leaderboard_group(self.slug), self.channel_name)

    async def _keep_watching(self) -> None:
        while True:
            await asyncio.sleep(RENEW_S)
            await mark_watched(self.slug)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict):
            self.criterion = str(content.get("criterion") or self.criterion)[:64]
            self.category = str(content.get("category") or "")[:100]
            # The board as it is now: it holds every vote that landed before this socket was watched.
            await self._push()

    async def leaderboard_changed(self, event: dict[str, Any]) -> None:
        if self.criterion not in event.get("criteria", ()):
            return
        await self._push()

    async def _push(self) -> None:
        try:
            board = await database_sync_to_async(get_leaderboard)(
                campaign=self.campaign, criterion=self.criterion, category=self.category
            )
        except ApplicationError:
            return
        await self.send_json(board)


def _may_wait_on(slug: str, session: SessionBase) -> bool:
    if not isinstance(session.get(PARTICIPANT_SESSION_KEY), int):
        return False
    campaign = Campaign.objects.filter(slug=slug).first()
    if campaign is None:
        return False
    return may_vote(campaign=campaign, session=session)


def _public_campaign(slug: str) -> Campaign | None:
    """Live pushes are for campaigns anyone may watch; invite-only boards are read over HTTP."""
    return (
        Campaign.objects.filter(slug=slug, access=Campaign.Access.PUBLIC).exclude(status=Campaign.Status.DRAFT).first()
    )
