"""Cross-table integrity triggers on PostgreSQL; SQLite gets them after every migrate (arena/integrity.py).

Self-contained: the statements are copied here as they were when this migration was written, so what it does
never changes with arena/integrity.py (tests/test_migrations.py checks that the two still agree; a change to
the triggers is a new migration).
"""

from django.db import migrations

INSTALL = [
    """
    CREATE OR REPLACE FUNCTION arena_comparison_integrity() RETURNS trigger AS $$
    DECLARE l RECORD; r RECORD;
    BEGIN
        SELECT prompt_id, generator_id, size INTO l FROM generation_population WHERE id = NEW.left_population_id;
        SELECT prompt_id, generator_id, size INTO r FROM generation_population WHERE id = NEW.right_population_id;
        IF l.prompt_id IS DISTINCT FROM NEW.prompt_id OR r.prompt_id IS DISTINCT FROM NEW.prompt_id THEN
            RAISE EXCEPTION 'comparison populations must share the comparison''s prompt' USING ERRCODE = 'check_violation';
        END IF;
        IF l.generator_id = r.generator_id THEN
            RAISE EXCEPTION 'comparison populations must come from different generators' USING ERRCODE = 'check_violation';
        END IF;
        IF l.size <> r.size THEN
            RAISE EXCEPTION 'comparison populations must have the same size' USING ERRCODE = 'check_violation';
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
    """
    CREATE OR REPLACE FUNCTION arena_vote_integrity() RETURNS trigger AS $$
    BEGIN
        IF (SELECT campaign_id FROM annotation_criterion WHERE id = NEW.criterion_id)
           IS DISTINCT FROM (SELECT campaign_id FROM arena_comparison WHERE id = NEW.comparison_id) THEN
            RAISE EXCEPTION 'vote criterion must belong to the comparison''s campaign' USING ERRCODE = 'check_violation';
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

DROP = [
    "DROP TRIGGER IF EXISTS arena_vote_integrity ON arena_vote;",
    "DROP FUNCTION IF EXISTS arena_vote_integrity();",
    "DROP TRIGGER IF EXISTS arena_comparison_integrity ON arena_comparison;",
    "DROP FUNCTION IF EXISTS arena_comparison_integrity();",
]


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        for statement in INSTALL:
            schema_editor.execute(statement)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        for statement in DROP:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("arena", "0001_initial")]

    operations = [migrations.RunPython(install, drop)]
