"""WebSocket consumers: tell a waiting vote page that image sets became ready; push live leaderboards."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.sessions.backends.base import SessionBase

from annotation.models import Campaign
from annotation.services import PARTICIPANT_SESSION_KEY
from arena.admission import may_vote
from arena.ranking import INTERVALS_SANDWICH
from arena.selectors import default_criterion, get_leaderboard
from arena.tallies import leaderboard_group
from arena.watching import RENEW_S, mark_watched
from core.errors import ApplicationError
from generation.services import READY_GROUP

logger = logging.getLogger(__name__)


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


# A board a page shows: (campaign slug, criterion, category).
Board = tuple[str, str, str]


class LiveBoards:
    """One process's live boards: which sockets show which board, and one refit per board and window.

    A vote's announcement (arena.tallies.announce_leaderboard_change, at most one per campaign and
    LEADERBOARD_PUSH_S) reaches every socket of the campaign; each hands it here, and each board with
    sockets in this process is refitted once, at the window's deadline, with closed-form intervals,
    and sent to all of them: one fit per board, however many sockets watch it. An announcement that
    comes while a refit waits or runs is served by another refit after it, at its own deadline, so a
    vote is never left out of the push that follows it.
    """

    def __init__(self) -> None:
        self.watchers: dict[Board, set[LeaderboardConsumer]] = defaultdict(set)
        self.due: dict[Board, float] = {}  # the latest deadline asked of each board's pending refit

    def watch(self, consumer: LeaderboardConsumer, board: Board) -> None:
        self.watchers[board].add(consumer)

    def unwatch(self, consumer: LeaderboardConsumer, board: Board) -> None:
        sockets = self.watchers.get(board)
        if sockets is not None:
            sockets.discard(consumer)
            if not sockets:
                del self.watchers[board]

    def changed(self, campaign_slug: str, deadline: float) -> None:
        for board in [b for b in self.watchers if b[0] == campaign_slug]:
            if board in self.due:
                self.due[board] = max(self.due[board], deadline)
                continue
            self.due[board] = deadline
            asyncio.get_running_loop().create_task(self._refit(board))

    async def _refit(self, board: Board) -> None:
        try:
            while True:
                target = self.due[board]
                delay = target - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                sockets = list(self.watchers.get(board, ()))
                if sockets:
                    payload = await database_sync_to_async(_live_board)(sockets[0].campaign, board)
                    if payload is not None:
                        await asyncio.gather(*(socket.push(board, payload) for socket in sockets))
                if self.due[board] <= target:
                    return  # nothing announced since this refit's deadline
        except Exception:  # one board's failure must not stop the process's other boards
            logger.exception("live refit of %s failed", board)
        finally:
            self.due.pop(board, None)


LIVE_BOARDS = LiveBoards()


class LeaderboardConsumer(AsyncJsonWebsocketConsumer):
    """Pushes a campaign's refitted leaderboard after votes land.

    The client says which criterion and category it shows ({"criterion": ..., "category": ...});
    by default the first criterion over all prompts. It is sent that board at once, then after votes,
    at most once per LEADERBOARD_PUSH_S (LiveBoards: one fit per board and process, not per socket),
    with closed-form "sandwich" intervals (the payload's "intervals" says so). While open, the socket
    keeps its campaign marked as watched (arena.watching): votes announce their change only to
    watched campaigns.
    """

    renewal: asyncio.Task[None] | None = None
    board: Board | None = None

    async def connect(self) -> None:
        self.slug = self.scope["url_route"]["kwargs"]["slug"]
        self.campaign = await database_sync_to_async(_public_campaign)(self.slug)
        if self.campaign is None:
            await self.close(code=4404)
            return
        self.criterion = await database_sync_to_async(default_criterion)(self.campaign)
        self.category = ""
        self.sent: tuple[Any, ...] | None = None
        await mark_watched(self.slug)
        self.renewal = asyncio.create_task(self._keep_watching())
        await self.channel_layer.group_add(leaderboard_group(self.slug), self.channel_name)
        self._show(self.criterion, self.category)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.renewal is not None:
            self.renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.renewal
        if self.board is not None:
            LIVE_BOARDS.unwatch(self, self.board)
        await self.channel_layer.group_discard(leaderboard_group(self.slug), self.channel_name)

    def _show(self, criterion: str, category: str) -> Board:
        if self.board is not None:
            LIVE_BOARDS.unwatch(self, self.board)
        self.criterion, self.category = criterion, category
        board = self.board = (self.slug, criterion, category)
        self.sent = None
        LIVE_BOARDS.watch(self, board)
        return board

    async def _keep_watching(self) -> None:
        while True:
            await asyncio.sleep(RENEW_S)
            await mark_watched(self.slug)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict):
            criterion = str(content.get("criterion") or self.criterion)[:64]
            board = self._show(criterion, str(content.get("category") or "")[:100])
            # The board as it is now: it holds every vote that landed before this socket was watched.
            payload = await database_sync_to_async(_live_board)(self.campaign, board)
            if payload is not None:
                await self.push(board, payload)

    async def leaderboard_changed(self, event: dict[str, Any]) -> None:
        LIVE_BOARDS.changed(self.slug, float(event.get("deadline") or time.time()))

    async def push(self, board: Board, payload: dict[str, Any]) -> None:
        """Send `payload` if it is still the board this socket shows and differs from what it last sent."""
        if board != self.board:
            return
        seen = (payload["votes"], payload["updated_at"], payload["intervals"])
        if seen == self.sent:
            return  # an announcement for another criterion: this board did not change
        self.sent = seen
        await self.send_json(payload)


def _live_board(campaign: Campaign, board: Board) -> dict[str, Any] | None:
    try:
        return get_leaderboard(campaign=campaign, criterion=board[1], category=board[2], intervals=INTERVALS_SANDWICH)
    except ApplicationError:  # a criterion the page asked for that the campaign does not have
        return None


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
