"""Whether anyone watches a campaign's live leaderboard, and when its next push is due: votes announce rarely.

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

Coalescing (settings.LEADERBOARD_PUSH_S, "the interval"). A watched campaign's votes share windows:
the first vote after a window closed opens the next one, writing its deadline (now + interval) in the
shared cache, and announces once, with that deadline; votes that find an open window announce
nothing. Every process that holds sockets refits each watched board once at the deadline and pushes
it to all of them (arena.consumers). A vote that found the window open checked it before the
deadline, after its own commit, so the refit at the deadline reads it: no vote is left out, and a
vote reaches every page at most one interval (plus the fit) after it lands. Deadlines are
wall-clock times compared across processes, so a vote within CLOCK_MARGIN_S of the deadline opens a
new window rather than trust another host's clock to the millisecond. Two processes that both open a
window at once announce twice: one extra refit, never a lost vote.
"""

from __future__ import annotations

import logging
import math
import time

from django.core.cache import cache

logger = logging.getLogger(__name__)

TTL_S = 60
RENEW_S = 20
CLOCK_MARGIN_S = 0.05


def _key(campaign_slug: str) -> str:
    return f"leaderboard-watched:{campaign_slug}"


def _window_key(campaign_slug: str) -> str:
    return f"leaderboard-push-due:{campaign_slug}"


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


def claim_push(campaign_slug: str, interval_s: float) -> float | None:
    """After a vote on the campaign: the deadline to announce (a new window), or None (unwatched, or a window open).

    One cache round trip for nearly every vote (the watched mark and the window read together).
    """
    now = time.time()
    try:
        found = cache.get_many([_key(campaign_slug), _window_key(campaign_slug)])
    except Exception:  # a cache that cannot answer must not cost a watcher its update: announce
        logger.warning("could not read %s's leaderboard push window", campaign_slug, exc_info=True)
        return now + interval_s
    if _key(campaign_slug) not in found:
        return None
    due = found.get(_window_key(campaign_slug))
    if isinstance(due, float) and now < due - CLOCK_MARGIN_S:
        return None  # the open window's refit, at `due`, comes after this vote's commit
    deadline = now + interval_s
    try:
        # Whole seconds in Redis, and at least the interval: the deadline inside, not the expiry, decides.
        cache.set(_window_key(campaign_slug), deadline, timeout=math.ceil(interval_s) + 1)
    except Exception:  # the next vote opens a window again: an extra announcement, nothing lost
        logger.warning("could not open %s's leaderboard push window", campaign_slug, exc_info=True)
    return deadline
