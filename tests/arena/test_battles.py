"""Reading battle logs: every file type gives the same counts, and bad rows are counted, never dropped silently."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from arena.battles import MISSING, SELF, UNKNOWN, BattleLogError, parse_battles, read_battle_log

GOOD = [
    {"model_a": "alpha", "model_b": "beta", "winner": "model_a"},
    {"model_a": "beta", "model_b": "alpha", "winner": "model_a"},
    {"model_a": "alpha", "model_b": "gamma", "winner": "tie"},
    {"model_a": "gamma", "model_b": "beta", "winner": "tie (bothbad)"},
    {"model_a": "gamma", "model_b": "alpha", "winner": "model_b"},
]
BAD = [
    {"model_a": "alpha", "model_b": "beta", "winner": "draw"},  # unknown winner
    {"model_a": "alpha", "model_b": "alpha", "winner": "tie"},  # against itself
    {"model_a": "alpha", "model_b": "", "winner": "model_a"},  # missing model
    {"model_a": "beta", "model_b": "gamma", "winner": None},  # missing winner
]


def write(path: Path, rows: list[dict]) -> Path:
    columns = ["model_a", "model_b", "winner"]
    if path.suffix == ".json":
        path.write_text(json.dumps(rows))
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    elif path.suffix == ".csv":
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    else:
        pq.write_table(pa.table({c: [row.get(c) for row in rows] for c in columns}), path)
    return path


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv", ".parquet"])
def test_every_file_type_gives_the_same_counts_and_bad_row_report(tmp_path, suffix):
    log = read_battle_log(write(tmp_path / f"battles{suffix}", GOOD + BAD))
    assert (log.rows, log.used, log.bad_rows) == (9, 5, 4)
    assert log.counts.names == ("alpha", "beta", "gamma")
    # alpha beat beta twice (once on each side) and gamma once; two ties (one both-bad).
    assert log.counts.wins.tolist() == [[0, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert log.counts.ties.tolist() == [[0, 0, 1], [0, 0, 1], [1, 1, 0]]
    assert log.bad == {UNKNOWN: 1, SELF: 1, MISSING: 2}
    assert log.examples[MISSING] == [8, 9]
    assert log.unknown_values == {"draw": 1}
    assert "1 row: unknown winner value (row 6; values 'draw' x1)" in log.bad_summary()
    assert "2 rows: missing model or winner (rows 8, 9)" in log.bad_summary()


def test_chatbot_arena_extra_fields_and_spacing_are_tolerated(tmp_path):
    rows = [
        {"question_id": "q1", "model_a": " alpha ", "model_b": "beta", "winner": "Model_B", "anony": True, "turn": 1},
        {"model_a": "alpha", "model_b": "beta", "winner": "tie", "conversation_a": [{"role": "user"}]},
    ]
    log = read_battle_log(write(tmp_path / "clean_battle_20240101.json", rows))
    assert log.bad_rows == 0
    assert log.counts.wins.tolist() == [[0, 0], [1, 0]]


def test_arena_format_reads_poparena_vote_logs(tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text("left_model,right_model,choice,criterion\nsd,sdxl,left,quality\nsd,sdxl,both_bad,quality\n")
    log = read_battle_log(path, format="arena")
    assert log.counts.wins.tolist() == [[0, 1], [0, 0]]
    assert log.counts.ties.tolist() == [[0, 1], [1, 0]]
    with pytest.raises(BattleLogError, match="try --format arena"):
        read_battle_log(path)


def test_jsonl_with_odd_values_falls_back_to_a_tolerant_reader(tmp_path):
    path = tmp_path / "battles.jsonl"
    path.write_text(
        '{"model_a": 1, "model_b": "2", "winner": "model_a"}\n\n{"model_a": "1", "model_b": [], "winner": "tie"}\n'
    )
    log = read_battle_log(path)
    assert (log.used, log.bad) == (1, {MISSING: 1})
    assert log.counts.names == ("1", "2")


def test_a_json_file_of_lines_is_read_as_jsonl(tmp_path):
    path = tmp_path / "battles.json"
    path.write_text("".join(json.dumps(row) + "\n" for row in GOOD))
    assert read_battle_log(path).used == 5


def test_unreadable_input_is_a_clear_error(tmp_path):
    with pytest.raises(BattleLogError, match="no such file"):
        read_battle_log(tmp_path / "missing.csv")
    (tmp_path / "battles.txt").write_text("x")
    with pytest.raises(BattleLogError, match=r"unknown file type '\.txt'"):
        read_battle_log(tmp_path / "battles.txt")
    (tmp_path / "broken.json").write_text('[{"model_a": "x",')
    with pytest.raises(BattleLogError, match="cannot parse broken.json as JSON"):
        read_battle_log(tmp_path / "broken.json")
    (tmp_path / "object.json").write_text('{"battles": []}\n{')
    with pytest.raises(BattleLogError, match="line 2"):
        read_battle_log(tmp_path / "object.json")
    (tmp_path / "dict.json").write_text('  \n {"battles": []}')
    with pytest.raises(BattleLogError, match="lacks column"):
        read_battle_log(tmp_path / "dict.json")
    (tmp_path / "notalist.json").write_text('"battles"')
    with pytest.raises(BattleLogError, match="must hold a JSON list"):
        read_battle_log(tmp_path / "notalist.json")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(BattleLogError, match="as Parquet"):
        read_battle_log(tmp_path / "broken.parquet")
    (tmp_path / "columns.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(BattleLogError, match="lacks column"):
        read_battle_log(tmp_path / "columns.csv")
    with pytest.raises(BattleLogError, match="unknown format"):
        read_battle_log(tmp_path / "columns.csv", format="lmsys")


def test_parse_battles_takes_plain_columns():
    log = parse_battles(["a", "b", None], ["b", "a", "a"], ["model_a", "tie", "model_b"])
    assert (log.rows, log.used, log.bad) == (3, 2, {MISSING: 1})
    # A model seen only in bad rows is not ranked.
    assert parse_battles(["a", "z"], ["b", "z"], ["model_a", "tie"]).counts.names == ("a", "b")
    empty = parse_battles([], [], [])
    assert (empty.rows, empty.counts.names) == (0, ())
