"""Cross-table rules the database enforces itself, on SQLite and PostgreSQL alike.

A CHECK constraint cannot look at another table, so these are triggers:
- a comparison's two populations share the comparison's prompt, come from different
  generators and have the same size;
- a vote's criterion belongs to the campaign of the vote's comparison.
A violation raises IntegrityError, exactly as a failed CHECK would.
"""

from django.db import migrations

PROMPT_MESSAGE = "comparison populations must share the comparison's prompt"
GENERATOR_MESSAGE = "comparison populations must come from different generators"
SIZE_MESSAGE = "comparison populations must have the same size"
CRITERION_MESSAGE = "vote criterion must belong to the comparison's campaign"

POP = "(SELECT {column} FROM generation_population WHERE id = NEW.{side}_population_id)"


def _sqlite_comparison_rule(event: str, name: str, condition: str, message: str) -> str:
    return (
        f"CREATE TRIGGER {name} BEFORE {event} ON arena_comparison FOR EACH ROW WHEN {condition} "
        f"BEGIN SELECT RAISE(ABORT, '{message.replace(chr(39), chr(39) * 2)}'); END;"
    )


def _sqlite_statements() -> list[str]:
    left = {c: POP.format(column=c, side="left") for c in ("prompt_id", "generator_id", "size")}
    right = {c: POP.format(column=c, side="right") for c in ("prompt_id", "generator_id", "size")}
    rules = [
        (
            "prompt",
            f"({left['prompt_id']} IS NOT NEW.prompt_id OR {right['prompt_id']} IS NOT NEW.prompt_id)",
            PROMPT_MESSAGE,
        ),
        ("generator", f"({left['generator_id']} = {right['generator_id']})", GENERATOR_MESSAGE),
        ("size", f"({left['size']} <> {right['size']})", SIZE_MESSAGE),
    ]
    statements = []
    for event, suffix in (
        ("INSERT", "insert"),
        ("UPDATE OF prompt_id, left_population_id, right_population_id", "update"),
    ):
        for rule, condition, message in rules:
            statements.append(_sqlite_comparison_rule(event, f"arena_comparison_{rule}_{suffix}", condition, message))
    vote_condition = (
        "((SELECT campaign_id FROM annotation_criterion WHERE id = NEW.criterion_id) IS NOT "
        "(SELECT campaign_id FROM arena_comparison WHERE id = NEW.comparison_id))"
    )
    for event, suffix in (("INSERT", "insert"), ("UPDATE OF criterion_id, comparison_id", "update")):
        statements.append(
            f"CREATE TRIGGER arena_vote_criterion_{suffix} BEFORE {event} ON arena_vote FOR EACH ROW "
            f"WHEN {vote_condition} BEGIN SELECT RAISE(ABORT, '{CRITERION_MESSAGE.replace(chr(39), chr(39) * 2)}'); END;"
        )
    return statements


def _sql_literal(message: str) -> str:
    return "'" + message.replace("'", "''") + "'"


POSTGRES_STATEMENTS = [
    f"""
    CREATE OR REPLACE FUNCTION arena_comparison_integrity() RETURNS trigger AS $$
    DECLARE l RECORD; r RECORD;
    BEGIN
        SELECT prompt_id, generator_id, size INTO l FROM generation_population WHERE id = NEW.left_population_id;
        SELECT prompt_id, generator_id, size INTO r FROM generation_population WHERE id = NEW.right_population_id;
        IF l.prompt_id IS DISTINCT FROM NEW.prompt_id OR r.prompt_id IS DISTINCT FROM NEW.prompt_id THEN
            RAISE EXCEPTION {_sql_literal(PROMPT_MESSAGE)} USING ERRCODE = 'check_violation';
        END IF;
        IF l.generator_id = r.generator_id THEN
            RAISE EXCEPTION {_sql_literal(GENERATOR_MESSAGE)} USING ERRCODE = 'check_violation';
        END IF;
        IF l.size <> r.size THEN
            RAISE EXCEPTION {_sql_literal(SIZE_MESSAGE)} USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END;
    $$ LANGUAGE plpgsql;
    """,
    """
    CREATE TRIGGER arena_comparison_integrity BEFORE INSERT OR UPDATE OF prompt_id, left_population_id, right_population_id
    ON arena_comparison FOR EACH ROW EXECUTE FUNCTION arena_comparison_integrity();
    """,
    f"""
    CREATE OR REPLACE FUNCTION arena_vote_integrity() RETURNS trigger AS $$
    BEGIN
        IF (SELECT campaign_id FROM annotation_criterion WHERE id = NEW.criterion_id)
           IS DISTINCT FROM (SELECT campaign_id FROM arena_comparison WHERE id = NEW.comparison_id) THEN
            RAISE EXCEPTION {_sql_literal(CRITERION_MESSAGE)} USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END;
    $$ LANGUAGE plpgsql;
    """,
    """
    CREATE TRIGGER arena_vote_integrity BEFORE INSERT OR UPDATE OF criterion_id, comparison_id
    ON arena_vote FOR EACH ROW EXECUTE FUNCTION arena_vote_integrity();
    """,
]

POSTGRES_REVERSE = [
    "DROP TRIGGER IF EXISTS arena_vote_integrity ON arena_vote;",
    "DROP FUNCTION IF EXISTS arena_vote_integrity();",
    "DROP TRIGGER IF EXISTS arena_comparison_integrity ON arena_comparison;",
    "DROP FUNCTION IF EXISTS arena_comparison_integrity();",
]


def _sqlite_reverse() -> list[str]:
    names = [s.split()[2] for s in _sqlite_statements()]
    return [f"DROP TRIGGER IF EXISTS {name};" for name in names]


def create_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        statements = _sqlite_statements()
    elif vendor == "postgresql":
        statements = POSTGRES_STATEMENTS
    else:
        raise RuntimeError(f"PopArena supports SQLite and PostgreSQL, not {vendor}")
    for statement in statements:
        schema_editor.execute(statement)


def drop_triggers(apps, schema_editor):
    statements = _sqlite_reverse() if schema_editor.connection.vendor == "sqlite" else POSTGRES_REVERSE
    for statement in statements:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("arena", "0001_initial")]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]
