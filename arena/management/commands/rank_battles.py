"""`rank_battles FILE`: Bradley-Terry ratings with bootstrap intervals for any battle log, with no database."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from arena.battles import COLUMNS, FORMATS, OUTCOMES, BattleLogError, read_battle_log
from arena.ranking import DEFAULT_BOOTSTRAP, Leaderboard, fit_ratings
from core.spreadsheets import spreadsheet_cell

CSV_COLUMNS = ("model", "rating", "ci_low", "ci_high", "rank", "votes")


class Command(BaseCommand):
    help = (
        "Rank the models of a battle log (.json list as in Chatbot Arena's clean_battle_*.json, .jsonl, .csv or "
        ".parquet) by an exact Bradley-Terry MLE on the Elo scale (400 points per factor 10 of odds, mean 1000), "
        "with bootstrap intervals and interval-based ranks. "
        + "; ".join(
            f"--format {f}: columns {', '.join(COLUMNS[f])}, {COLUMNS[f][2]} in {', '.join(OUTCOMES[f])}"
            for f in FORMATS
        )
        + ". Ties and both-bad count half a win each way. Bad rows are counted and reported; --strict refuses them. "
        "Touches no database."
    )
    # Reads a file and prints: no system checks, so it works (and starts fast) whatever the database state.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="battle log: .json, .jsonl, .csv or .parquet")
        parser.add_argument("--format", choices=FORMATS, default="fastchat", help="column spelling (default fastchat)")
        parser.add_argument(
            "--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, help="bootstrap rounds for the 95%% intervals (0: none)"
        )
        parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
        parser.add_argument("--out", type=Path, help=f"write a CSV with columns {', '.join(CSV_COLUMNS)}")
        parser.add_argument("--anchor", metavar="MODEL=RATING", help="pin one model's rating, e.g. gpt-4=1200")
        parser.add_argument("--strict", action="store_true", help="fail (exit 1) if any row is bad")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if options["bootstrap"] < 0:
            raise CommandError("--bootstrap must be 0 or more")
        anchor = _parse_anchor(options["anchor"])
        try:
            log = read_battle_log(path, format=options["format"])
        except BattleLogError as exc:
            raise CommandError(str(exc)) from None

        self.stdout.write(f"{log.rows} rows read from {path.name}: {log.used} battles used, {log.bad_rows} bad rows.")
        if log.bad_rows:
            summary = log.bad_summary()
            if options["strict"]:
                raise CommandError(f"--strict: {path.name} has {log.bad_rows} bad rows:\n{summary}")
            self.stdout.write(self.style.WARNING("Bad rows (not used):\n" + summary))
        if log.used == 0:
            raise CommandError(f"nothing to rank: {path.name} has no usable battles")
        if anchor is not None and anchor[0] not in log.counts.names:
            raise CommandError(f"--anchor: no model {anchor[0]!r} in {path.name}")

        board = fit_ratings(log.counts, bootstrap=options["bootstrap"], seed=options["seed"], anchor=anchor)
        self.stdout.write(_table(board))
        self.stdout.write(f"Method: {board.method_note}.")
        self.stdout.write(
            f"{board.total_votes:g} votes, {len(board.standings)} models, "
            f"{board.bootstrap_rounds} bootstrap rounds (seed {board.seed})."
        )
        if options["out"] is not None:
            _write_csv(options["out"], board)
            self.stdout.write(self.style.SUCCESS(f"Wrote {options['out']}."))


def _parse_anchor(value: str | None) -> tuple[str, float] | None:
    if value is None:
        return None
    model, sep, rating = value.rpartition("=")
    try:
        number = float(rating)
    except ValueError:
        number = math.nan
    if not sep or not model or not math.isfinite(number):
        raise CommandError(f"--anchor takes MODEL=RATING with a finite number, not {value!r}")
    return model, number


def _table(board: Leaderboard) -> str:
    width = max([5, *(len(s.name) for s in board.standings)])
    level = f"{board.level:.0%} CI"
    show_part = board.parts > 1
    header = f"{'rank':>4}  {'model':<{width}}  {'rating':>8}  {level:^20}  {'votes':>8}  {'wins':>8}  {'losses':>8}  "
    header += f"{'ties':>8}" + ("  part" if show_part else "")
    lines = [header]
    for s in board.standings:
        interval = f"[{_number(s.ci_low, 1)}, {_number(s.ci_high, 1)}]"
        line = f"{s.rank:>4}  {s.name:<{width}}  {s.rating:>8.1f}  {interval:^20}  {_count(s.votes):>8}  "
        line += f"{_count(s.wins):>8}  {_count(s.losses):>8}  {_count(s.ties):>8}"
        lines.append(line + (f"  {s.part:>4}" if show_part else ""))
    return "\n".join(lines)


def _number(value: float, digits: int) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


def _count(value: float) -> str:
    """Vote counts are whole numbers unless the votes were weighted."""
    return str(int(value)) if value == int(value) else f"{value:.2f}"


def _write_csv(path: Path, board: Leaderboard) -> None:
    try:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            for s in board.standings:
                # A name from the battle log could start like a formula; the CSV is for spreadsheets. (Only the
                # name: a negative rating is written as text "-0.5" and must stay a number.)
                name = spreadsheet_cell(s.name)
                writer.writerow(
                    [name, _number(s.rating, 4), _number(s.ci_low, 4), _number(s.ci_high, 4), s.rank, _count(s.votes)]
                )
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}") from None
