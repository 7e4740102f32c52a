"""Cross-table rules the database enforces itself, on SQLite and PostgreSQL alike.

A CHECK constraint cannot look at another table, so these rules are triggers:
- a comparison's two populations share the comparison's prompt, come from different
  generators and have the same size;
- a vote's criterion belongs to the campaign of the vote's comparison.
A violation raises IntegrityError, exactly as a failed CHECK would.

PostgreSQL gets them in migration 0002. SQLite cannot keep them there: Django alters a
SQLite table by copying it under a new name, and SQLite refuses that rename while a trigger
on another table names the old one. So on SQLite they are dropped before every `migrate`
and installed again after it (signals wired in ArenaConfig.ready).
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

PROMPT_MESSAGE = "comparison populations must share the comparison's prompt"
GENERATOR_MESSAGE = "comparison populations must come from different generators"
SIZE_MESSAGE = "comparison populations must have the same size"
CRITERION_MESSAGE = "vote criterion must belong to the comparison's campaign"

REQUIRED_TABLES = {"arena_comparison", "arena_vote", "generation_population", "annotation_criterion"}


def _literal(message: str) -> str:
    return "'" + message.replace("'", "''") + "'"


def _population(column: str, side: str) -> str:
    return f"(SELECT {column} FROM generation_population WHERE id = NEW.{side}_population_id)"


def _sqlite_triggers() -> dict[str, str]:
    """Trigger name -> CREATE TRIGGER statement."""
    left = {c: _population(c, "left") for c in ("prompt_id", "generator_id", "size")}
    right = {c: _population(c, "right") for c in ("prompt_id", "generator_id", "size")}
    comparison_rules = [
        (
            "prompt",
            f"({left['prompt_id']} IS NOT NEW.prompt_id OR {right['prompt_id']} IS NOT NEW.prompt_id)",
            PROMPT_MESSAGE,
        ),
        ("generator", f"({left['generator_id']} = {right['generator_id']})", GENERATOR_MESSAGE),
        ("size", f"({left['size']} <> {right['size']})", SIZE_MESSAGE),
    ]
    comparison_events = {
        "insert": "INSERT",
        "update": "UPDATE OF prompt_id, left_population_id, right_population_id",
    }
    triggers = {}
    for suffix, event in comparison_events.items():
        for rule, condition, message in comparison_rules:
            name = f"arena_comparison_{rule}_{suffix}"
            triggers[name] = (
                f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {event} ON arena_comparison FOR EACH ROW "
                f"WHEN {condition} BEGIN SELECT RAISE(ABORT, {_literal(message)}); END;"
            )
    vote_condition = (
        "((SELECT campaign_id FROM annotation_criterion WHERE id = NEW.criterion_id) IS NOT "
        "(SELECT campaign_id FROM arena_comparison WHERE id = NEW.comparison_id))"
    )
    for suffix, event in {"insert": "INSERT", "update": "UPDATE OF criterion_id, comparison_id"}.items():
        name = f"arena_vote_criterion_{suffix}"
        triggers[name] = (
            f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {event} ON arena_vote FOR EACH ROW "
            f"WHEN {vote_condition} BEGIN SELECT RAISE(ABORT, {_literal(CRITERION_MESSAGE)}); END;"
        )
    return triggers


POSTGRES_INSTALL = [
    f"""
    CREATE OR REPLACE FUNCTION arena_comparison_integrity() RETURNS trigger AS $$
    DECLARE l RECORD; r RECORD;
    BEGIN
        SELECT prompt_id, generator_id, size INTO l FROM generation_population WHERE id = NEW.left_population_id;
        SELECT prompt_id, generator_id, size INTO r FROM generation_population WHERE id = NEW.right_population_id;
        IF l.prompt_id IS DISTINCT FROM NEW.prompt_id OR r.prompt_id IS DISTINCT FROM NEW.prompt_id THEN
            RAISE EXCEPTION {_literal(PROMPT_MESSAGE)} USING ERRCODE = 'check_violation';
        END IF;
        IF l.generator_id = r.generator_id THEN
            RAISE EXCEPTION {_literal(GENERATOR_MESSAGE)} USING ERRCODE = 'check_violation';
        END IF;
        IF l.size <> r.size THEN
            RAISE EXCEPTION {_literal(SIZE_MESSAGE)} USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END;
    $$ LANGUAGE plpgsql;
    """,
    "DROP TRIGGER IF EXISTS arena_comparison_integrity ON arena_comparison;",
    """
    CREATE TRIGGER arena_comparison_integrity
    BEFORE INSERT OR UPDATE OF prompt_id, left_population_id, right_population_id
    ON arena_comparison FOR EACH ROW EXECUTE FUNCTION arena_comparison_integrity();
    """,
    f"""
    CREATE OR REPLACE FUNCTION arena_vote_integrity() RETURNS trigger AS $$
    BEGIN
        IF (SELECT campaign_id FROM annotation_criterion WHERE id = NEW.criterion_id)
           IS DISTINCT FROM (SELECT campaign_id FROM arena_comparison WHERE id = NEW.comparison_id) THEN
            RAISE EXCEPTION {_literal(CRITERION_MESSAGE)} USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END;
    $$ LANGUAGE plpgsql;
    """,
    "DROP TRIGGER IF EXISTS arena_vote_integrity ON arena_vote;",
    """
    CREATE TRIGGER arena_vote_integrity BEFORE INSERT OR UPDATE OF criterion_id, comparison_id
    ON arena_vote FOR EACH ROW EXECUTE FUNCTION arena_vote_integrity();
    """,
]

POSTGRES_DROP = [
    "DROP TRIGGER IF EXISTS arena_vote_integrity ON arena_vote;",
    "DROP FUNCTION IF EXISTS arena_vote_integrity();",
    "DROP TRIGGER IF EXISTS arena_comparison_integrity ON arena_comparison;",
    "DROP FUNCTION IF EXISTS arena_comparison_integrity();",
]


def install_statements(vendor: str) -> list[str]:
    if vendor == "sqlite":
        return list(_sqlite_triggers().values())
    if vendor == "postgresql":
        return POSTGRES_INSTALL
    raise RuntimeError(f"PopArena supports SQLite and PostgreSQL, not {vendor}")


def drop_statements(vendor: str) -> list[str]:
    if vendor == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {name};" for name in _sqlite_triggers()]
    return POSTGRES_DROP


def _tables_exist(connection: BaseDatabaseWrapper) -> bool:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor)) >= REQUIRED_TABLES


def drop_sqlite_triggers_before_migrate(using: str = "default", **kwargs: Any) -> None:
    from django.db import connections

    connection = connections[using]
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            for statement in drop_statements("sqlite"):
                cursor.execute(statement)


def install_sqlite_triggers_after_migrate(using: str = "default", **kwargs: Any) -> None:
    from django.db import connections

    connection = connections[using]
    if connection.vendor == "sqlite" and _tables_exist(connection):
        with connection.cursor() as cursor:
            for statement in install_statements("sqlite"):
                cursor.execute(statement)
