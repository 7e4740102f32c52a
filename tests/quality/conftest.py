"""Fixtures the quality tests share with the arena's: campaigns with ready populations to vote on."""

from tests.arena.conftest import arena_campaign  # noqa: F401 (the fixture, shared)
