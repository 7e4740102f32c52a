"""WebSocket consumers: tell a waiting vote page that image sets became ready."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from generation.services import READY_GROUP


class QueueConsumer(AsyncJsonWebsocketConsumer):
    """Forwards "a population is ready" without any detail: the page just asks for its next comparison."""

    async def connect(self) -> None:
        await self.channel_layer.group_add(READY_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(READY_GROUP, self.channel_name)

    async def population_ready(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "ready"})
