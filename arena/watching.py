"""Whether anyone watches a campaign's live leaderboard, so that a vote announces its change only then.

Announcing costs a vote a thread hop and two Redis round trips in the channel layer's group_send, even
when the group is empty, which it is for nearly every vote. So each open leaderboard socket
(arena.consumers.LeaderboardConsumer) marks its campaign watched in the shared cache when it connects
and again every RENEW_S while it stays open; a mark lasts TTL_S. A vote's announcement
(arena.tallies.announce_leaderboard_change) reads the mark first, one cache GET, and skips the
group_send when there is none.

The rule that keeps every watcher current: a socket is marked for as long as it is open (it renews
well inside TTL_S), and when it subscribes it is sent the board as it is then, so a vote that landed
while it was connecting, before its mark, is in that board. A mark outlives its last socket by at most
TTL_S, during which announcements go to an empty group, as every announcement did before. If the cache
cannot be read, the vote announces.
"""

from __future__ import annotations

import logging

from django.core.cache import cache

logger = logging.getLogger(__name__)

TTL_S = 60
RENEW_S = 20


def _key(campaign_slug: str) -> str:
    return f"leaderboard-watched:{campaign_slug}"


async def mark_watched(campaign_slug: str) -> None:
    try:
        await cache.aset(_key(campaign_slug), 1, timeout=TTL_S)
    except Exception:  # tried again at the next renewal; a cache that cannot answer makes every vote announce
        logger.warning("could not mark %s's leaderboard as watched", campaign_slug, exc_info=True)


def is_watched(campaign_slug: str) -> bool:
    try:
        return cache.get(_key(campaign_slug)) is not None
    except Exception:  # a cache that cannot answer must not cost a watcher its update
        logger.warning("could not read whether %s's leaderboard is watched", campaign_slug, exc_info=True)
        return True
