"""Migrations are self-contained and add indexes to busy tables without locking them on PostgreSQL.

The suite's own test database is migrated from zero on SQLite and again on PostgreSQL (CI runs both), so a
migration that does not apply fails every test; these check what a migration may import and how it indexes.
"""

from __future__ import annotations

import ast
import io
import tomllib
from pathlib import Path

import pytest
from django.contrib.postgres.operations import AddIndexConcurrently
from django.core.management import call_command
from django.db import connection, migrations
from django.db.migrations.loader import MigrationLoader

ROOT = Path(__file__).resolve().parents[1]
APPS = tuple(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"])
FIRST_PARTY = {*APPS, "config"}
# The tables every vote and every issued comparison write to.
BUSY = {("arena", "comparison"), ("arena", "vote"), ("generation", "population")}


def migration_files() -> list[Path]:
    return sorted(p for app in APPS for p in (ROOT / app / "migrations").glob("0*.py"))


def app_imports(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] in FIRST_PARTY]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in FIRST_PARTY:
            found.append(node.module)
    return found


def test_no_migration_imports_app_code_but_a_field_s_callable_named_by_its_path():
    # A field's callable default or upload_to is stored by import path and compared by identity (a copy would be a
    # change of the field), so `import APP.models` may stay for exactly that: each use a `default=` or `upload_to=`.
    assert len(migration_files()) > 20
    for path in migration_files():
        tree = ast.parse(path.read_text())
        imports = app_imports(tree)
        where = path.relative_to(ROOT)
        assert all(name.endswith(".models") for name in imports), (where, imports)
        if not imports:
            continue
        uses = [
            node for node in ast.walk(tree) if isinstance(node, ast.Attribute) and ast.unparse(node.value) in imports
        ]
        callables = {
            ast.unparse(keyword.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            for keyword in node.keywords
            if keyword.arg in ("default", "upload_to")
        }
        assert uses, where
        assert all(ast.unparse(use) in callables for use in uses), (where, [ast.unparse(use) for use in uses])


def test_the_trigger_migration_installs_what_arena_integrity_installs_today():
    # The migration keeps its own copy; if the triggers change, the change needs a migration of its own.
    from arena import integrity

    loader = MigrationLoader(None, ignore_no_migrations=True)
    module = __import__(type(loader.get_migration("arena", "0002_integrity_triggers")).__module__, fromlist=["*"])

    def normal(statements: list[str]) -> list[str]:
        return [" ".join(statement.split()) for statement in statements]

    assert normal(module.INSTALL) == normal(integrity.install_statements("postgresql"))
    assert normal(module.DROP) == normal(integrity.drop_statements("postgresql"))


def test_indexes_added_to_busy_tables_after_their_creation_are_built_concurrently():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    checked = []
    for key, migration in loader.disk_migrations.items():
        app = key[0]
        created_here = {(app, op.name.lower()) for op in migration.operations if isinstance(op, migrations.CreateModel)}
        for op in migration.operations:
            table = (app, getattr(op, "model_name", ""))
            # An index on a table this same migration creates is built while the table is empty.
            if isinstance(op, migrations.AddIndex) and table in BUSY and table not in created_here:
                checked.append(op.index.name)
                assert isinstance(op, AddIndexConcurrently), (key, op.index.name)
                assert migration.atomic is False, key
    assert {"comparison_participant_idx", "comparison_left_campaign_idx", "population_in_use_idx"} <= set(checked)


# sqlmigrate outside a test transaction: SQLite's schema editor refuses to start inside one.
@pytest.mark.django_db(transaction=True)
def test_the_indexes_are_concurrent_on_postgresql_and_plain_on_sqlite():
    for app, migration, index in [
        ("arena", "0003_pair_tallies", "comparison_participant_idx"),
        ("arena", "0004_comparison_left_campaign_idx", "comparison_left_campaign_idx"),
        ("arena", "0006_comparison_client_idx", "comparison_client_idx"),
        ("generation", "0005_population_in_use_idx", "population_in_use_idx"),
    ]:
        out = io.StringIO()
        call_command("sqlmigrate", app, migration, stdout=out)
        (statement,) = [
            line for line in out.getvalue().splitlines() if line.startswith("CREATE") and f'"{index}" ON' in line
        ]
        if connection.vendor == "postgresql":
            assert statement.startswith(f'CREATE INDEX CONCURRENTLY "{index}"'), statement
        else:
            assert statement.startswith(f'CREATE INDEX "{index}"'), statement


@pytest.mark.django_db
def test_the_models_and_the_migrations_agree():
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
