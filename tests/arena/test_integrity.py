"""Integrity triggers survive schema changes: SQLite re-creates altered tables on migrate."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_migrating_back_and_forth_on_sqlite_keeps_the_triggers(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["POPARENA_VAR_DIR"] = str(tmp_path)

    def migrate(*args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0", *args], cwd=ROOT, env=env, check=True, timeout=120
        )

    # Given a migrated database with the triggers in place,
    migrate()
    # when a later migration re-creates the population table (as SQLite does for most changes),
    migrate("generation", "0001")
    migrate()
    # then the migration succeeds and every trigger is back.
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        triggers = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert triggers == {
        f"arena_{rule}_{event}"
        for rule in ("comparison_prompt", "comparison_generator", "comparison_size", "vote_criterion")
        for event in ("insert", "update")
    }
