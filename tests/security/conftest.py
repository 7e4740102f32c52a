"""The arena's fixtures, for the attacks that need a ready-to-vote campaign."""

from tests.arena.conftest import arena_campaign  # noqa: F401  (a fixture, shared with tests/arena)
