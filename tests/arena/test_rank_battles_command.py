"""`rank_battles FILE`: a table and a CSV from any battle log, clear errors, and no database at all."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

ROOT = Path(__file__).resolve().parents[2]
BATTLES = (
    [{"model_a": "alpha", "model_b": "beta", "winner": "model_a"}] * 12
    + [{"model_a": "beta", "model_b": "alpha", "winner": "model_a"}] * 4
    + [{"model_a": "beta", "model_b": "gamma", "winner": "model_a"}] * 9
    + [{"model_a": "gamma", "model_b": "beta", "winner": "model_a"}] * 5
    + [{"model_a": "alpha", "model_b": "gamma", "winner": "tie"}] * 3
    + [{"model_a": "gamma", "model_b": "alpha", "winner": "model_b"}] * 7
    + [{"model_a": "gamma", "model_b": "alpha", "winner": "tie (bothbad)"}] * 2
)


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "clean_battle.json"
    path.write_text(json.dumps(BATTLES))
    return path


def run(*args: str) -> str:
    out = StringIO()
    call_command("rank_battles", *args, stdout=out)
    return out.getvalue()


def test_prints_a_table_and_writes_a_csv_with_exactly_the_design_columns(log_file, tmp_path):
    out_csv = tmp_path / "ranks.csv"
    printed = run(str(log_file), "--bootstrap", "200", "--seed", "3", "--out", str(out_csv))
    assert "42 rows read from clean_battle.json: 42 battles used, 0 bad rows." in printed
    assert "rank  model" in printed
    assert "95% CI" in printed
    assert "Method: exact MLE." in printed
    with out_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["model", "rating", "ci_low", "ci_high", "rank", "votes"]
    assert [r["model"] for r in rows] == ["alpha", "beta", "gamma"]
    ratings = [float(r["rating"]) for r in rows]
    assert sum(ratings) / 3 == pytest.approx(1000.0, abs=1e-3)
    assert all(float(r["ci_low"]) <= float(r["rating"]) <= float(r["ci_high"]) for r in rows)
    assert [int(r["votes"]) for r in rows] == [28, 30, 26]
    # The same seed prints the same intervals.
    assert run(str(log_file), "--bootstrap", "200", "--seed", "3") in printed


def test_bad_rows_are_reported_and_strict_refuses_them(tmp_path):
    path = tmp_path / "battles.jsonl"
    rows = [*BATTLES, {"model_a": "alpha", "model_b": "alpha", "winner": "tie"}, {"model_a": "x", "winner": "zz"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    printed = run(str(path), "--bootstrap", "0")
    assert "44 rows read from battles.jsonl: 42 battles used, 2 bad rows." in printed
    assert "1 row: model against itself (row 43)" in printed
    assert "1 row: missing model or winner (row 44)" in printed
    with pytest.raises(CommandError, match="--strict: battles.jsonl has 2 bad rows"):
        run(str(path), "--strict")


def test_anchor_pins_a_model(log_file, tmp_path):
    out_csv = tmp_path / "ranks.csv"
    run(str(log_file), "--anchor", "gamma=1200", "--bootstrap", "50", "--out", str(out_csv))
    with out_csv.open() as handle:
        rows = {r["model"]: r for r in csv.DictReader(handle)}
    assert float(rows["gamma"]["rating"]) == pytest.approx(1200.0)
    with pytest.raises(CommandError, match="no model 'delta'"):
        run(str(log_file), "--anchor", "delta=1200")
    with pytest.raises(CommandError, match="MODEL=RATING"):
        run(str(log_file), "--anchor", "gamma")


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run(str(tmp_path / "nope.csv"))
    (tmp_path / "log.xlsx").write_text("x")
    with pytest.raises(CommandError, match="unknown file type"):
        run(str(tmp_path / "log.xlsx"))
    (tmp_path / "log.parquet").write_text("not parquet")
    with pytest.raises(CommandError, match="cannot parse log.parquet"):
        run(str(tmp_path / "log.parquet"))
    (tmp_path / "empty.csv").write_text("model_a,model_b,winner\n")
    with pytest.raises(CommandError, match="nothing to rank"):
        run(str(tmp_path / "empty.csv"))
    with pytest.raises(CommandError, match="--bootstrap must be 0 or more"):
        run(str(tmp_path / "empty.csv"), "--bootstrap", "-1")


def test_help_describes_the_interface(capsys):
    with pytest.raises(SystemExit) as exited:
        call_command("rank_battles", "--help")
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert "--anchor MODEL=RATING" in shown
    assert "tie (bothbad)" in shown


def test_runs_with_an_unreachable_database_and_fails_with_a_non_zero_exit(log_file, tmp_path):
    # A database that cannot be reached: the command must not need one.
    env = {**os.environ, "DATABASE_URL": "postgres://nobody:nothing@127.0.0.1:9/none"}
    done = subprocess.run(
        [sys.executable, "manage.py", "rank_battles", str(log_file), "--bootstrap", "20"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "gamma" in done.stdout
    failed = subprocess.run(
        [sys.executable, "manage.py", "rank_battles", str(tmp_path / "missing.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode != 0
    assert "no such file" in failed.stderr
