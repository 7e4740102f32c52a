"""Pure dataset writers, one module per export format; this package holds the format registry. No Django."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exports.writers.contract import PairFormatWriter, WriterContext
from exports.writers.genai_bench_parquet import GenaiBenchParquetWriter
from exports.writers.kto_csv import KtoPairWriter
from exports.writers.pickapic_parquet import PickapicParquetWriter
from exports.writers.popalign_csv import PopalignCsvWriter
from exports.writers.population_jsonl import PopulationJsonlWriter

POPULATION_JSONL = "population-jsonl"
POPALIGN_CSV = "popalign-csv"
PICKAPIC_PARQUET = "pickapic-parquet"
KTO_CSV = "kto-csv"
GENAI_BENCH_PARQUET = "genai-bench-parquet"
VOTES_CSV = "votes-csv"
LEADERBOARD_CSV = "leaderboard-csv"


@dataclass(frozen=True)
class FormatSpec:
    """What a format needs: which rows feed it, whether one criterion, how ties go, where images go.

    A format made of judged pairs (`source` "pairs") names the hook that opens its writer (`open_writer`);
    the raw vote log and the leaderboard are written from their own rows.
    """

    name: str
    source: str  # "pairs", "votes" or "leaderboard"
    description: str
    single_criterion: bool = False
    default_ties: str | None = None  # None: the format has no ties option
    soft_ties: bool = False  # whether --ties soft can be expressed
    copies_images: bool = False
    embeds_images: bool = False
    splits: bool = False
    images_optional: bool = False  # whether the images may be left out (paths written, no files copied)
    people_only: bool = False  # refuses a simulated crowd's votes (the leaderboard ranks people)
    open_writer: Callable[[WriterContext], PairFormatWriter] | None = None


FORMATS: dict[str, FormatSpec] = {
    spec.name: spec
    for spec in (
        FormatSpec(
            POPULATION_JSONL,
            "pairs",
            "one JSON line per judged pair of populations (canonical; every other format derives from it)",
            default_ties="soft",
            soft_ties=True,
            copies_images=True,
            splits=True,
            images_optional=True,
            open_writer=PopulationJsonlWriter.for_export,
        ),
        FormatSpec(
            POPALIGN_CSV,
            "pairs",
            "PopAlign trainer CSV: jpg_0 (winner), jpg_1, caption, label=0; N rows per pair; images beside it",
            single_criterion=True,
            default_ties="drop",
            copies_images=True,
            splits=True,
            open_writer=PopalignCsvWriter.for_export,
        ),
        FormatSpec(
            PICKAPIC_PARQUET,
            "pairs",
            "Pick-a-Pic v2 Parquet dataset (Diffusion-DPO, reward models): image bytes embedded",
            single_criterion=True,
            default_ties="drop",
            soft_ties=True,
            embeds_images=True,
            splits=True,
            open_writer=PickapicParquetWriter.for_export,
        ),
        FormatSpec(
            KTO_CSV,
            "pairs",
            "Diffusion-KTO CSV: one row per image, exclusive_win / exclusive_lose / intersections",
            single_criterion=True,
            default_ties="drop",
            copies_images=True,
            splits=True,
            open_writer=KtoPairWriter.for_export,
        ),
        FormatSpec(
            GENAI_BENCH_PARQUET,
            "pairs",
            "GenAI-Bench Parquet for judging automatic judges: one row per pair, each population as one grid image",
            single_criterion=True,
            default_ties="soft",
            soft_ties=True,
            embeds_images=True,
            open_writer=GenaiBenchParquetWriter.for_export,
        ),
        FormatSpec(VOTES_CSV, "votes", "the raw vote log: one row per vote, sides as displayed"),
        FormatSpec(LEADERBOARD_CSV, "leaderboard", "the Bradley-Terry leaderboard at export time", people_only=True),
    )
}
