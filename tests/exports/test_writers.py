"""Pure writers: Pick-a-Pic's exact schema, sharding, grids, the KTO labels, Hugging Face YAML, the zip stream, the
vote log, the leaderboard and the questionnaire's answers."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import zipfile
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image as PILImage

from exports import cards
from exports.rows import ImageInfo, PairRow, ParticipantHasher, PromptInfo
from exports.writers.answers_csv import suppress_small_groups, write_answers
from exports.writers.contract import WriterContext
from exports.writers.genai_bench_parquet import make_grid
from exports.writers.kto_csv import KTO_BOTH, KTO_LOSE, KTO_WIN, KtoImage, KtoLabels, KtoPairWriter, kto_rows
from exports.writers.parquet import ShardedParquetWriter, hf_features
from exports.writers.pickapic_parquet import PICKAPIC_SCHEMA
from exports.writers.popalign_csv import PopalignCsvWriter
from exports.writers.population_jsonl import POPULATION_JSONL_FILE, PopulationJsonlWriter
from exports.writers.votes_csv import VOTES_COLUMNS, VoteLogRecord, VotesCsvWriter, write_leaderboard
from exports.writers.zipping import ZIP_CHUNK, iter_zip
from tests.exports.helpers import PICKAPIC_V2, judged, population


def test_the_pickapic_schema_is_pickapic_v2s():
    features = hf_features(PICKAPIC_SCHEMA)
    assert {name: f["dtype"] for name, f in features.items()} == PICKAPIC_V2
    assert PICKAPIC_SCHEMA.field("jpg_0").type == pa.binary()
    assert PICKAPIC_SCHEMA.field("created_at").type == pa.timestamp("ns")


def _row(i: int) -> dict:
    return {"caption": f"c{i}", "blob": bytes(100)}


def test_shards_are_named_by_count_and_hold_every_row(tmp_path):
    schema = pa.schema([("caption", pa.string()), ("blob", pa.binary())])
    writer = ShardedParquetWriter(tmp_path, "train", schema, max_shard_bytes=1000, row_group_bytes=300)
    for i in range(40):
        writer.add(_row(i), 100)
    paths = writer.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(paths) > 1
    assert names == [f"train-{i:05d}-of-{len(paths):05d}.parquet" for i in range(len(paths))]
    table = pa.concat_tables(pq.read_table(p) for p in sorted(paths))
    assert table.column("caption").to_pylist() == [f"c{i}" for i in range(40)]


def test_an_empty_split_still_gets_one_typed_shard(tmp_path):
    writer = ShardedParquetWriter(tmp_path, "validation", PICKAPIC_SCHEMA)
    (path,) = writer.close()
    assert path.name == "validation-00000-of-00001.parquet"
    table = pq.read_table(path)
    assert table.num_rows == 0
    assert table.schema.remove_metadata() == PICKAPIC_SCHEMA


def _png(colour: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def test_a_grid_tiles_the_population_near_square():
    grid = make_grid([_png((i * 40, 0, 0), (32, 32)) for i in range(6)], gap=4)
    with PILImage.open(io.BytesIO(grid)) as image:
        assert image.size == (3 * 32 + 2 * 4, 2 * 32 + 4)
        # JPEG: colours come back within a few levels.
        assert all(abs(a - b) <= 3 for a, b in zip(image.getpixel((5, 5)), (0, 0, 0), strict=True))
        assert all(abs(a - b) <= 3 for a, b in zip(image.getpixel((36 + 5, 5)), (40, 0, 0), strict=True))


def _kto_image(sha: str, population: int) -> KtoImage:
    return KtoImage(ImageInfo.of(0, 0, f"x/{sha}.png", sha * 64, 0, "p", 8, 8), population, "cap", "train")


def test_kto_labels_an_image_by_every_population_it_belongs_to():
    labels = KtoLabels(max_population_id=5)
    labels._flags[1] = 1  # won
    labels._flags[2] = 2  # lost
    labels._flags[3] = 3  # both
    stream = [
        _kto_image("a", 1),
        _kto_image("b", 2),
        _kto_image("c", 1),
        _kto_image("c", 2),  # the same file in a winning and a losing population
        _kto_image("d", 3),
        _kto_image("e", 4),  # never in a kept pair
    ]
    got = [(item.image.sha256[0], label) for item, label in kto_rows(stream, labels)]
    assert got == [("a", KTO_WIN), ("b", KTO_LOSE), ("c", KTO_BOTH), ("d", KTO_BOTH)]


def test_the_card_front_matter_is_the_yaml_hugging_face_reads():
    header = cards.hf_yaml(
        config_name="default",
        data_dir="data",
        features=hf_features(PICKAPIC_SCHEMA),
        splits={"train": (10, 1000), "validation": (2, 200)},
        download_size=900,
        pretty_name='A "quoted" study',
    )
    meta = yaml.safe_load(header.split("---")[1])
    assert meta["pretty_name"] == 'A "quoted" study'
    assert meta["configs"][0]["data_files"] == [
        {"split": "train", "path": "data/train-*"},
        {"split": "validation", "path": "data/validation-*"},
    ]
    info = meta["dataset_info"]
    assert {f["name"]: f["dtype"] for f in info["features"]} == PICKAPIC_V2
    assert info["splits"][1] == {"name": "validation", "num_bytes": 200, "num_examples": 2}
    assert info["dataset_size"] == 1200


def test_the_zip_stream_holds_every_file_under_one_folder(tmp_path):
    (tmp_path / "images" / "ab").mkdir(parents=True)
    (tmp_path / "images" / "ab" / "abc.png").write_bytes(b"\x89PNG" + bytes(3 * ZIP_CHUNK))
    (tmp_path / "train.csv").write_text("jpg_0,label\n")
    data = b"".join(iter_zip(tmp_path, "export"))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == ["export/images/ab/abc.png", "export/train.csv"]
        assert archive.read("export/train.csv") == b"jpg_0,label\n"
        assert archive.getinfo("export/images/ab/abc.png").compress_type == zipfile.ZIP_STORED


def test_a_tie_cannot_reach_popalign(tmp_path):
    writer = PopalignCsvWriter(tmp_path)
    row = PairRow("q", PromptInfo(1, "c", ""), judged(left=1, right=1), population(1, "a"), population(2, "b"), 0, 0)
    with pytest.raises(ValueError, match="tie"):
        writer.write_group([row])


def test_a_population_jsonl_line_is_the_rows_dict(tmp_path):
    prompt = PromptInfo(7, "a cat", "animals")
    rows = [
        PairRow("q", prompt, judged(left=2, ties=1), population(1, "a"), population(2, "b"), 1001.5, None),
        PairRow("q", prompt, judged(right=1), population(1, "a"), population(3, "c"), 1001.5, 990.0),
    ]
    writer = PopulationJsonlWriter(tmp_path)
    writer.write_group(rows)
    assert writer.close() == {"train": 2}
    lines = (tmp_path / POPULATION_JSONL_FILE).read_text().splitlines()
    assert [json.loads(line) for line in lines] == [row.as_dict() for row in rows]
    assert list(json.loads(lines[0])) == list(rows[0].as_dict())


def test_large_tiles_are_scaled_down_so_a_grid_stays_small():
    grid = make_grid([_png((9, 9, 9), (1024, 768))] * 4, gap=4, tile_max=512)
    with PILImage.open(io.BytesIO(grid)) as image:
        assert image.size == (2 * 512 + 4, 2 * 384 + 4)


# --- votes.csv, leaderboard.csv and participants.csv without a database ----------------------------------------


def _hashed(participant_id: int, key: bytes = b"k") -> str:
    """The keyed participant hash as the README documents it: HMAC-SHA256, first 32 hex digits."""
    return hmac.new(key, f"export-participant:{participant_id}".encode(), hashlib.sha256).hexdigest()[:32]


def _vote(**changes) -> VoteLogRecord:
    fields = {
        "vote_id": 5,
        "created_at": datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC),
        "criterion": "quality",
        "comparison_id": 9,
        "participant_id": 41,
        "participant_kind": "crowd",
        "participant_flagged": True,
        "prompt_id": 3,
        "caption": "a red cat",
        "category": "animals",
        "left_population_id": 10,
        "right_population_id": 20,
        "left_generator": "sd-turbo",
        "right_generator": "tiny",
        "choice": "left",
        "dwell_ms": 812,
        "is_gold": False,
        "repeat_of_id": None,
    }
    return VoteLogRecord(**{**fields, **changes})


def _csv(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_votes_csv_writes_every_column_of_each_vote_in_order(tmp_path):
    # Given two votes, the second a gold repeat on text times, formula-like text and a consent version,
    consent = {(41, "2025-03-04T05:06:07+00:00"): None, (42, "2025-03-05T00:00:01+00:00"): 3}
    writer = VotesCsvWriter(tmp_path, ParticipantHasher(b"k"), ("vendi",), lambda p, t: consent[(p, t)])
    measures = {10: {"vendi": 1.23456789}, 20: {"vendi": None}}
    second = _vote(
        vote_id=6, created_at="2025-03-05 00:00:01", criterion="=quality", participant_id=42,
        participant_kind="@staff", participant_flagged=0, caption="-1 cats", category="+x",
        left_population_id=20, right_population_id=30, left_generator="=g", right_generator="\tg",
        choice="both_bad", dwell_ms=0, is_gold=1, repeat_of_id=7,
    )  # fmt: skip
    assert writer.write_many([_vote()], measures) == 1
    assert writer.write_many([second], measures) == 1
    assert writer.close() == {"train": 2}
    # then the file holds the header, the measure columns per side, and each vote's cells as documented:
    # hashed participant, flags as 0/1, text cells a spreadsheet would run quoted, blanks for what is absent.
    header, *rows = _csv(tmp_path / "votes.csv")
    raw = (tmp_path / "votes.csv").read_bytes()
    assert raw.count(b"\n") == 3  # plain newlines, one per line (a spreadsheet-style \r\n would show here)
    assert b"\r" not in raw
    assert header == [*VOTES_COLUMNS, "left_vendi", "right_vendi"]
    assert rows == [
        ["5", "2025-03-04T05:06:07+00:00", "quality", "9", _hashed(41), "crowd", "1", "3", "a red cat", "animals",
         "10", "20", "sd-turbo", "tiny", "left", "812", "0", "", "", "1.234568", ""],
        ["6", "2025-03-05T00:00:01+00:00", "'=quality", "9", _hashed(42), "'@staff", "0", "3", "'-1 cats", "'+x",
         "20", "30", "'=g", "'\tg", "both_bad", "0", "1", "7", "3", "", ""],
    ]  # fmt: skip


def test_votes_csv_without_measures_or_consent_and_a_refused_choice(tmp_path):
    writer = VotesCsvWriter(tmp_path, ParticipantHasher(b"other key"))
    assert writer.write_many([_vote(choice="tie"), _vote(vote_id=8, choice="right")]) == 2
    with pytest.raises(ValueError, match="unknown vote choice 'maybe'"):
        writer.write_many([_vote(choice="maybe")])
    assert writer.close() == {"train": 2}
    header, *rows = _csv(tmp_path / "votes.csv")
    assert header == VOTES_COLUMNS
    assert [(row[0], row[4], row[14], row[-1]) for row in rows] == [
        ("5", _hashed(41, b"other key"), "tie", ""),
        ("8", _hashed(41, b"other key"), "right", ""),
    ]


def test_the_leaderboard_csv_has_a_row_per_generator_per_criterion_with_blanks_for_none(tmp_path):
    boards = [
        ("quality", [
            {"rank": 1, "name": "=evil", "generator": "=evil", "display_name": "-Evil", "rating": 1040.5,
             "ci_low": None, "ci_high": 1100.25, "votes": 12, "wins": 7, "losses": 3, "ties": 1, "both_bad": 1},
        ]),
        ("diversity", [
            {"rank": 2, "generator": "g", "display_name": "G", "rating": 960.0, "ci_low": 900.0, "ci_high": None,
             "votes": 3, "wins": 1, "losses": 2, "ties": 0, "both_bad": 0},
            {"rank": 1, "generator": "h", "display_name": "H", "rating": 1000.0, "ci_low": 950.0, "ci_high": 1050.0,
             "votes": 3, "wins": 2, "losses": 1},
        ]),
    ]  # fmt: skip
    assert write_leaderboard(tmp_path, boards) == {"train": 3}
    assert (tmp_path / "leaderboard.csv").read_bytes().endswith(b",3,2,1,,\n")  # plain newlines
    header, *rows = _csv(tmp_path / "leaderboard.csv")
    assert header == [
        "criterion", "rank", "generator", "display_name", "rating", "ci_low", "ci_high", "votes", "wins", "losses",
        "ties", "both_bad",
    ]  # fmt: skip
    assert rows == [
        ["quality", "1", "'=evil", "'-Evil", "1040.5", "", "1100.25", "12", "7", "3", "1", "1"],
        ["diversity", "2", "g", "G", "960.0", "900.0", "", "3", "1", "2", "0", "0"],
        ["diversity", "1", "h", "H", "1000.0", "950.0", "1050.0", "3", "2", "1", "", ""],
    ]


def test_answers_under_k_are_blanked_option_by_option_and_the_rest_written(tmp_path):
    # Given five participants, k = 2: "f" given twice, "m" and "x" once, "en" thrice (a float 2.0 reads as "2"),
    answers = {
        "p3": {"gender": "f", "langs": ["en", "fr"], "age": 2.0},
        "p1": {"gender": "f", "langs": ["en"], "age": 2},
        "p2": {"gender": "m", "langs": ["de", "en", "it"]},
        "p4": {"langs": ["fr", "=cmd"], "age": 2.5},
        "p5": {"gender": "x", "age": 7},
    }
    table = suppress_small_groups(answers, ["gender", "langs", "age"], k=2)
    # then groups of one are blanked (a several-choice cell keeps its other options), groups of two kept,
    assert table.rows == [
        ("p1", ["f", "en", "2"]),
        ("p2", ["", "en", ""]),
        ("p3", ["f", "en; fr", "2"]),
        ("p4", ["", "fr", ""]),
        ("p5", ["", "", ""]),
    ]
    assert table.composition == {"gender": {"f": 2}, "langs": {"en": 3, "fr": 2}, "age": {"2": 2}}
    assert table.suppressed == {"gender": 2, "langs": 3, "age": 2}  # m, x; de, it, =cmd; 2.5, 7
    assert table.columns == ["gender", "langs", "age"]
    # and written in order under a header, text a spreadsheet would run quoted.
    table.rows.append(("p6", ["=1+1", "", ""]))
    assert write_answers(tmp_path, table) == 6
    assert _csv(tmp_path / "participants.csv") == [
        ["participant", "gender", "langs", "age"],
        ["p1", "f", "en", "2"],
        ["p2", "", "en", ""],
        ["p3", "f", "en; fr", "2"],
        ["p4", "", "fr", ""],
        ["p5", "", "", ""],
        ["p6", "'=1+1", "", ""],
    ]
    assert (tmp_path / "participants.csv").read_bytes().startswith(b"participant,gender,langs,age\np1,f,en,2\n")


def _info(sha_head: str, suffix: str = "png") -> ImageInfo:
    return ImageInfo.of(0, 0, f"x/{sha_head}.{suffix}", sha_head * 64, 0, "p", 8, 8)


def test_popalign_rows_put_the_winners_image_first_per_sample_and_split(tmp_path):
    # Given a pair the right side won (populations of 3 and 2 images) and one the left won, in two splits,
    prompt = PromptInfo(1, "a cat, drawn", "")
    rows = [
        PairRow("q", prompt, judged(left=1, right=2), population(1, "a"), population(2, "b", n=2), 0, 0),
        PairRow("q", prompt, judged(left=3), population(3, "c", n=1), population(4, "d", n=1), 0, 0, "validation"),
    ]
    writer = PopalignCsvWriter(tmp_path, ("train", "validation"))
    writer.write_group(rows)
    # then each split's file has one row per sample pair (the shorter population's count), winner first.
    assert writer.close() == {"train": 2, "validation": 1}
    header = ["jpg_0", "jpg_1", "caption", "label", "comparison_id", "population_w_id", "population_l_id"]
    path = "images/{0}/{0}{1:062d}.png".format
    assert _csv(tmp_path / "train.csv") == [
        header,
        [path("02", 0), path("01", 0), "a cat, drawn", "0", "1", "2", "1"],
        [path("02", 1), path("01", 1), "a cat, drawn", "0", "1", "2", "1"],
    ]
    assert _csv(tmp_path / "validation.csv") == [
        header,
        [path("03", 0), path("04", 0), "a cat, drawn", "0", "1", "3", "4"],
    ]
    assert (tmp_path / "validation.csv").read_bytes().count(b"\n") == 2  # plain newlines, no \r
    assert b"\r" not in (tmp_path / "validation.csv").read_bytes()


def test_kto_writes_each_shown_image_once_labelled_by_all_its_populations_pairs(tmp_path):
    # Given population 1 beaten by 2 and beating 3, and 4 never in a kept pair,
    prompt = PromptInfo(1, "c", "")
    writer = KtoPairWriter(
        WriterContext(
            folder=tmp_path,
            splits=("train", "validation"),
            load_image=lambda image: b"",
            hasher=ParticipantHasher(b"k"),
            shown_images=lambda: [
                (_info("a"), 1, "one"),
                (_info("b"), 2, "two"),
                (_info("c", "JPG"), 3, "three"),
                (_info("c", "JPG"), 4, "three"),  # the same file shown in population 4 too
                (_info("d"), 4, "four"),
                (_info("e"), 300, "far"),  # a population id beyond any noted
            ],
            split_of=lambda caption: "validation" if caption == "two" else "train",
        )
    )
    writer.write_group([PairRow("q", prompt, judged(right=2), population(1, "a"), population(2, "b"), 0, 0)])
    writer.write_group([PairRow("q", prompt, judged(left=1), population(1, "a"), population(3, "c"), 0, 0)])
    # then 1 both won and lost, 2 only won, 3 only lost (its file once, though 4 showed it too), 4 and 300 nothing.
    assert writer.close() == {"train": 2, "validation": 1}
    assert writer.extra_counts() == {"kto_labels": {KTO_WIN: 1, KTO_LOSE: 1, KTO_BOTH: 1}}
    assert _csv(tmp_path / "train_processed_v3.csv") == [
        ["file_name", "caption", "split"],
        [f"images/aa/{'a' * 64}.png", "one", KTO_BOTH],
        [f"images/cc/{'c' * 64}.jpg", "three", KTO_LOSE],
    ]
    assert _csv(tmp_path / "validation_processed_v3.csv") == [
        ["file_name", "caption", "split"],
        [f"images/bb/{'b' * 64}.png", "two", KTO_WIN],
    ]


def test_kto_labels_grow_past_their_first_size_and_refuse_a_tie():
    labels = KtoLabels(max_population_id=1)
    pair = judged(left=2)  # populations 10 (left, won) and 20
    labels.note(PairRow("q", PromptInfo(1, "c", ""), pair, population(10, "a"), population(20, "b"), 0, 0))
    assert (labels.flags(10), labels.flags(20), labels.flags(15), labels.flags(10_000)) == (1, 2, 0, 0)
    with pytest.raises(ValueError, match=r"Diffusion-KTO has no way to express a tie \(q:10-20\)"):
        labels.note(PairRow("q", PromptInfo(1, "c", ""), judged(left=1, right=1), population(10, "a"),
                            population(20, "b"), 0, 0))  # fmt: skip
