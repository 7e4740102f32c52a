"""Pure writers: Pick-a-Pic's exact schema, sharding, grids, the KTO labels, Hugging Face YAML, the zip stream, the
vote log, the leaderboard and the questionnaire's answers."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import locale
import time
import zipfile
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image as PILImage
from PIL import JpegImagePlugin

from exports import cards
from exports.rows import ImageInfo, JudgedPair, PairRow, ParticipantHasher, PopulationInfo, PromptInfo
from exports.writers import genai_bench_parquet, parquet
from exports.writers.answers_csv import AnswerTable, suppress_small_groups, write_answers
from exports.writers.contract import WriterContext
from exports.writers.genai_bench_parquet import GenaiBenchParquetWriter, make_grid
from exports.writers.kto_csv import KTO_BOTH, KTO_LOSE, KTO_WIN, KtoImage, KtoLabels, KtoPairWriter, kto_rows
from exports.writers.parquet import ShardedParquetWriter, hf_features
from exports.writers.pickapic_parquet import PICKAPIC_SCHEMA, PickapicParquetWriter, naive_utc
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


# --- the zip stream: what each file is stored as, how much is held at once, Zip64 ------------------------------


def test_the_zip_stream_deflates_text_stores_the_rest_and_never_holds_a_file_whole(tmp_path):
    # Given a compressible text file of each deflated kind, and a large image,
    text = b"caption,label\n" * 4096
    for name in ("a.csv", "b.jsonl", "c.json", "d.md"):
        (tmp_path / name).write_bytes(text)
    (tmp_path / "e.png").write_bytes(bytes(3 * ZIP_CHUNK))
    # when the folder is streamed,
    chunks = list(iter_zip(tmp_path, "export"))
    # then the text is deflated and the image stored,
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as archive:
        kinds = {info.filename: info.compress_type for info in archive.infolist()}
        assert kinds == {
            "export/a.csv": zipfile.ZIP_DEFLATED,
            "export/b.jsonl": zipfile.ZIP_DEFLATED,
            "export/c.json": zipfile.ZIP_DEFLATED,
            "export/d.md": zipfile.ZIP_DEFLATED,
            "export/e.png": zipfile.ZIP_STORED,
        }
        assert archive.getinfo("export/a.csv").compress_size < len(text) // 10
        assert archive.read("export/d.md") == text
    # and no chunk holds more than one read of a file (plus a header): the 3 MiB image comes in 1 MiB pieces.
    assert max(len(chunk) for chunk in chunks) <= ZIP_CHUNK + 1024
    assert sum(len(chunk) >= ZIP_CHUNK for chunk in chunks) == 3


def test_the_zip_stream_goes_zip64_past_the_classic_limits(tmp_path, monkeypatch):
    # Given the classic zip format's limits (2 GiB, 65535 files) lowered so a small folder passes both,
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 1000)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)
    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(bytes([i]) * 3000)
    # when it is streamed, it is written as Zip64 (not refused with LargeZipFile) and reads back whole.
    data = b"".join(iter_zip(tmp_path, "export"))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["export/0.png", "export/1.png", "export/2.png"]
        assert [archive.read(f"export/{i}.png") for i in range(3)] == [bytes([i]) * 3000 for i in range(3)]


# --- text files are UTF-8 whatever the server's locale -------------------------------------------------------


@pytest.fixture
def ascii_locale():
    """The C locale's ASCII as the process's default text encoding, as on a server whose locale is not UTF-8:
    a file opened without `encoding="utf-8"` fails there on the first accented caption. (Under Python's UTF-8
    mode, PYTHONUTF8=1, the locale is ignored and this pins nothing; the tests still check the bytes.)"""
    old = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, old)


def test_every_text_writer_writes_utf8_on_an_ascii_locale(tmp_path, ascii_locale):
    # Given text outside ASCII in each text format's cells,
    caption = "un chat, café 猫"
    prompt = PromptInfo(1, caption, "animaux")
    row = PairRow("q", prompt, judged(left=1), population(1, "générateur", n=1), population(2, "b", n=1), 0, 0)
    # when each writer writes it,
    write_answers(tmp_path, AnswerTable(["langue"], [("p1", ["français"])], {}, {}))
    votes = VotesCsvWriter(tmp_path, ParticipantHasher(b"k"))
    votes.write_many([_vote(caption=caption)])
    votes.close()
    write_leaderboard(tmp_path, [("qualité", [{"rank": 1, "generator": "générateur"}])])
    popalign = PopalignCsvWriter(tmp_path)
    popalign.write_group([row])
    popalign.close()
    jsonl = PopulationJsonlWriter(tmp_path)
    jsonl.write_group([row])
    jsonl.close()
    # then every file is UTF-8, byte for byte.
    assert (tmp_path / "participants.csv").read_bytes() == "participant,langue\np1,français\n".encode()
    assert f',"{caption}",animals,'.encode() in (tmp_path / "votes.csv").read_bytes()
    assert (tmp_path / "leaderboard.csv").read_bytes().endswith("qualité,1,générateur,,,,,,,,,\n".encode())
    assert (tmp_path / "train.csv").read_bytes().splitlines()[1].endswith(f',"{caption}",0,1,1,2'.encode())
    line = (tmp_path / POPULATION_JSONL_FILE).read_bytes()
    assert f'"caption":"{caption}","category":"animaux"'.encode() in line
    assert json.loads(line.decode()) == row.as_dict()


# --- Parquet: the Pick-a-Pic rows read back whole, the dataset layout, the shards' encoding ----------------------


def _pair(vote_id: int, participant: int, at: datetime, **counts: int) -> JudgedPair:
    return JudgedPair(1, 1, 10, 20, vote_id, vote_id + 100, participant, at, at, **counts)


def _image_bytes(image: ImageInfo) -> bytes:
    return f"png of {image.sha256[:2]}/{image.index}".encode()


def _pickapic(tmp_path, splits=("train", "validation")) -> PickapicParquetWriter:
    return PickapicParquetWriter(tmp_path, _image_bytes, ParticipantHasher(b"k"), splits)


def _pickapic_row(image_0: ImageInfo, image_1: ImageInfo, labels, models, pair: JudgedPair, per_prompt, index):
    best = image_0.sha256 if labels[0] > labels[1] else image_1.sha256 if labels[1] > labels[0] else ""
    return {
        "are_different": image_0.sha256 != image_1.sha256,
        "best_image_uid": best,
        "caption": "a cat",
        "created_at": pair.first_vote_at.astimezone(UTC).replace(tzinfo=None),
        "has_label": True,
        "image_0_uid": image_0.sha256,
        "image_0_url": "",
        "image_1_uid": image_1.sha256,
        "image_1_url": "",
        "jpg_0": _image_bytes(image_0),
        "jpg_1": _image_bytes(image_1),
        "label_0": labels[0],
        "label_1": labels[1],
        "model_0": models[0],
        "model_1": models[1],
        "ranking_id": pair.first_vote_id,
        "user_id": int(_hashed(pair.first_participant_id)[:15], 16),
        "num_example_per_prompt": per_prompt,
        "__index_level_0__": index,
    }


def test_pickapic_rows_read_back_column_for_column_split_by_split(tmp_path):
    # Given one prompt's pairs: a left win (2 x 2 images), a tie and both-bad (soft labels), a right win with a
    # population of one image (one sample pair), the same image on both sides, a vote time in UTC+2,
    # and then a second prompt's pair,
    prompt = PromptInfo(1, "a cat", "")
    a, b, c, d = population(1, "gen-a", n=2), population(2, "gen-b", n=2), population(3, "gen-c", n=1), None
    d = PopulationInfo(4, "gen-d", 1, a.images[:1])
    plus2 = timezone(timedelta(hours=2))
    win = _pair(71, 5, datetime(2025, 3, 4, 12, 30, tzinfo=plus2), left_wins=2, right_wins=1)
    tie = _pair(72, 6, datetime(2025, 3, 4, 13, 0, tzinfo=UTC), ties=2, both_bad=1)
    bad = _pair(73, 7, datetime(2025, 3, 5, tzinfo=UTC), ties=1, both_bad=2)
    right = _pair(74, 8, datetime(2025, 3, 6, tzinfo=UTC), left_wins=1, right_wins=3)
    same = _pair(75, 9, datetime(2025, 3, 7, tzinfo=UTC), right_wins=1)
    writer = _pickapic(tmp_path)
    writer.write_group(
        [
            PairRow("q", prompt, win, a, b, 0, 0),
            PairRow("q", prompt, tie, b, a, 0, 0),
            PairRow("q", prompt, bad, a, c, 0, 0, "validation"),
            PairRow("q", prompt, right, c, b, 0, 0),
        ]
    )
    writer.write_group([])
    writer.write_group([PairRow("q", prompt, same, a, d, 0, 0)])
    # then each judged pair gives one row per sample pair, sides as displayed, labels from the majority,
    assert writer.close() == {"train": 6, "validation": 1}
    per_prompt = 2 + 2 + 1 + 1
    expected_train = [
        _pickapic_row(a.images[0], b.images[0], (1.0, 0.0), ("gen-a", "gen-b"), win, per_prompt, 0),
        _pickapic_row(a.images[1], b.images[1], (1.0, 0.0), ("gen-a", "gen-b"), win, per_prompt, 1),
        _pickapic_row(b.images[0], a.images[0], (0.5, 0.5), ("gen-b", "gen-a"), tie, per_prompt, 2),
        _pickapic_row(b.images[1], a.images[1], (0.5, 0.5), ("gen-b", "gen-a"), tie, per_prompt, 3),
        _pickapic_row(c.images[0], b.images[0], (0.0, 1.0), ("gen-c", "gen-b"), right, per_prompt, 4),
        # the next prompt's group counts its own sample pairs, and the index goes on
        _pickapic_row(a.images[0], d.images[0], (0.0, 1.0), ("gen-a", "gen-d"), same, 1, 5),
    ]
    expected_validation = [
        _pickapic_row(a.images[0], c.images[0], (0.5, 0.5), ("gen-a", "gen-c"), bad, per_prompt, 0),
    ]
    train = pq.read_table(tmp_path / "data" / "train-00000-of-00001.parquet")
    validation = pq.read_table(tmp_path / "data" / "validation-00000-of-00001.parquet")
    assert train.to_pylist() == expected_train
    assert validation.to_pylist() == expected_validation
    assert expected_train[0]["created_at"] == datetime(2025, 3, 4, 10, 30, tzinfo=UTC).replace(tzinfo=None)
    assert expected_train[5]["are_different"] is False
    assert train.schema.remove_metadata() == PICKAPIC_SCHEMA
    # and the layout a dataset card declares: every split with its rows and in-memory bytes, the files' size.
    layout = writer.hf_layout()
    assert (layout.config_name, layout.data_dir) == ("default", "data")
    assert layout.features == hf_features(PICKAPIC_SCHEMA)
    in_memory = {
        split: pa.Table.from_pylist(rows, schema=PICKAPIC_SCHEMA).nbytes
        for split, rows in (("train", expected_train), ("validation", expected_validation))
    }
    assert layout.splits == {"train": (6, in_memory["train"]), "validation": (1, in_memory["validation"])}
    assert layout.download_size == sum(p.stat().st_size for p in (tmp_path / "data").iterdir())
    assert writer.warnings() == []
    assert writer.extra_counts() == {}


def test_pickapic_leaves_out_an_empty_split_when_another_has_rows_and_says_so(tmp_path):
    writer = _pickapic(tmp_path)
    pair = _pair(71, 5, datetime(2025, 3, 4, tzinfo=UTC), left_wins=1)
    writer.write_group(
        [PairRow("q", PromptInfo(1, "a cat", ""), pair, population(1, "a", 1), population(2, "b", 1), 0, 0)]
    )
    assert writer.close() == {"train": 1, "validation": 0}
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    assert list(writer.hf_layout().splits) == ["train"]
    assert writer.warnings() == [
        "the validation split has no rows (no kept pair's caption fell into it), so it is left out: "
        "datasets cannot load an empty split"
    ]


def test_pickapic_with_no_rows_keeps_every_empty_split_and_warns_that_datasets_refuses_it(tmp_path):
    writer = _pickapic(tmp_path)
    assert writer.close() == {"train": 0, "validation": 0}
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "train-00000-of-00001.parquet",
        "validation-00000-of-00001.parquet",
    ]
    assert writer.hf_layout().splits == {"train": (0, 0), "validation": (0, 0)}
    assert writer.warnings() == [
        "datasets.load_dataset refuses a dataset with no rows; read it with pyarrow or streaming=True"
    ]


def test_pickapic_for_export_takes_the_folder_loader_hasher_and_splits_of_the_context(tmp_path):
    context = WriterContext(
        folder=tmp_path,
        splits=("train", "validation"),
        load_image=_image_bytes,
        hasher=ParticipantHasher(b"k"),
        shown_images=lambda: [],
        split_of=lambda caption: "train",
    )
    writer = PickapicParquetWriter.for_export(context)
    pair = _pair(71, 5, datetime(2025, 3, 4, tzinfo=UTC), left_wins=1)
    row = PairRow("q", PromptInfo(1, "a cat", ""), pair, population(1, "a", 1), population(2, "b", 1), 0, 0)
    writer.write_group([row, replace(row, split="validation")])
    assert writer.close() == {"train": 1, "validation": 1}
    (read,) = pq.read_table(tmp_path / "data" / "validation-00000-of-00001.parquet").to_pylist()
    assert (read["jpg_0"], read["user_id"]) == (_image_bytes(row.left.images[0]), int(_hashed(5)[:15], 16))


_SHARD_SCHEMA = pa.schema(
    [
        ("caption", pa.string()),
        ("blob", pa.binary()),
        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("note", pa.large_string()),
    ]
)


def _shard_row(i: int) -> dict:
    return {"caption": f"c{i % 2}", "blob": bytes([i]) * 50, "image": {"bytes": bytes([i]) * 50, "path": f"{i}.png"},
            "note": "n"}  # fmt: skip


def _row_groups(paths) -> list[int]:
    return [
        pq.ParquetFile(p).metadata.row_group(g).num_rows for p in paths for g in range(pq.ParquetFile(p).num_row_groups)
    ]


def test_shards_store_image_and_raw_columns_plain_and_declare_their_features(tmp_path):
    # Given a raw byte column and an image column besides text,
    writer = ShardedParquetWriter(tmp_path, "train", _SHARD_SCHEMA, image_columns=("image",), raw_columns=("blob",))
    for i in range(4):
        writer.add(_shard_row(i), 100)
    (path,) = writer.close()
    # then the bytes are neither compressed, dictionary-encoded nor summarised, the text is all three,
    metadata = pq.ParquetFile(path).metadata
    columns = {metadata.row_group(0).column(i).path_in_schema: metadata.row_group(0).column(i) for i in range(5)}
    for name in ("blob", "image.bytes", "image.path"):
        assert columns[name].compression == "UNCOMPRESSED", name
        assert not columns[name].is_stats_set, name
        assert not columns[name].has_dictionary_page, name
    for name in ("caption", "note"):
        assert columns[name].compression == "SNAPPY", name
        assert columns[name].is_stats_set, name
        assert columns[name].has_dictionary_page, name
    # and the schema carries the features Hugging Face reads, the image column as an Image.
    features = json.loads(pq.read_schema(path).metadata[b"huggingface"])
    assert features == {
        "info": {
            "features": {
                "caption": {"dtype": "string", "_type": "Value"},
                "blob": {"dtype": "binary", "_type": "Value"},
                "image": {"_type": "Image"},
                "note": {"dtype": "string", "_type": "Value"},
            }
        }
    }
    assert pq.read_table(path).to_pylist() == [_shard_row(i) for i in range(4)]


def test_row_groups_close_at_the_byte_budget_and_shards_at_theirs(tmp_path):
    # Given row groups of 300 bytes and shards of 600: a group closes when it reaches 300, a shard at 600,
    writer = ShardedParquetWriter(tmp_path, "train", _SHARD_SCHEMA, max_shard_bytes=600, row_group_bytes=300)
    for i in range(14):
        writer.add(_shard_row(i), 100)
    paths = writer.close()
    # then 14 rows make groups of 3, 3 | 3, 3 | 2, in three shards,
    assert [p.name for p in paths] == [f"train-{i:05d}-of-00003.parquet" for i in range(3)]
    assert _row_groups(paths) == [3, 3, 3, 3, 2]
    assert [pq.ParquetFile(p).num_row_groups for p in paths] == [2, 2, 1]
    assert writer.rows == 14
    # and the in-memory size counts every group.
    groups = [range(0, 3), range(3, 6), range(6, 9), range(9, 12), range(12, 14)]
    sizes = [pa.Table.from_pylist([_shard_row(i) for i in g], schema=_SHARD_SCHEMA).nbytes for g in groups]
    assert writer.data_bytes == sum(sizes)
    # A budget of 301 bytes needs a fourth row of 100, whether the group is the first or a later one.
    (tmp_path / "b").mkdir()
    writer = ShardedParquetWriter(tmp_path / "b", "train", _SHARD_SCHEMA, row_group_bytes=301)
    for i in range(9):
        writer.add(_shard_row(i), 100)
    assert _row_groups(writer.close()) == [4, 4, 1]


def test_row_groups_close_at_the_row_limit_too(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet, "ROW_GROUP_MAX_ROWS", 3)
    writer = ShardedParquetWriter(tmp_path, "train", _SHARD_SCHEMA)
    for i in range(8):
        writer.add(_shard_row(i), 0)
    assert _row_groups(writer.close()) == [3, 3, 2]
    assert writer.rows == 8


def test_hugging_face_dtypes_of_arrow_types():
    schema = pa.schema(
        [
            ("s", pa.string()),
            ("ls", pa.large_string()),
            ("t", pa.timestamp("ms")),
            ("f", pa.float32()),
            ("d", pa.float64()),
            ("i", pa.int64()),
            ("img", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ]
    )
    assert hf_features(schema, ("img",)) == {
        "s": {"dtype": "string", "_type": "Value"},
        "ls": {"dtype": "string", "_type": "Value"},
        "t": {"dtype": "timestamp[ms]", "_type": "Value"},
        "f": {"dtype": "float32", "_type": "Value"},
        "d": {"dtype": "float64", "_type": "Value"},
        "i": {"dtype": "int64", "_type": "Value"},
        "img": {"_type": "Image"},
    }


# --- genai-bench-parquet: one row per pair, each side its population's grid ------------------------------------


class _CountingLoader:
    """Image bytes by content hash, counting the loads of each population's images."""

    def __init__(self, colours: dict[int, tuple[int, int, int]]) -> None:
        self.colours = colours
        self.loads: Counter[int] = Counter()

    def __call__(self, image: ImageInfo) -> bytes:
        population_id = int(image.sha256[:2])
        self.loads[population_id] += 1
        return _png(self.colours[population_id], (8 + image.index, 8))


def test_genai_bench_rows_hold_each_sides_grid_model_metrics_and_the_majority_vote(tmp_path):
    # Given four pairs, one of each outcome, and populations with and without measures,
    load = _CountingLoader({1: (200, 0, 0), 2: (0, 200, 0), 3: (0, 0, 200)})
    a = replace(population(1, "gen-a", n=2), metrics={"vendi": 1.5, "note": "é"})
    b, c = population(2, "gen-b", n=3), population(3, "gen-c", n=1)
    prompt = PromptInfo(1, "a cat", "")
    writer = GenaiBenchParquetWriter(tmp_path, load)
    writer.write_group(
        [
            PairRow("q", prompt, judged(left=2), a, b, 0, 0),
            PairRow("q", prompt, judged(right=2, left=1), b, c, 0, 0),
            PairRow("q", prompt, judged(ties=2, both_bad=1), c, a, 0, 0),
            PairRow("q", prompt, judged(ties=1, both_bad=2), a, c, 0, 0),
        ]
    )
    assert writer.close() == {"test_v1": 4}
    # then each side is its population's grid, built once per population,
    grid = {p.population_id: make_grid([load(i) for i in p.images]) for p in (a, b, c)}
    assert load.loads == {1: 2 * 2, 2: 3 * 2, 3: 1 * 2}  # once by the writer, once above

    def side(p):
        return {"bytes": grid[p.population_id], "path": f"population-{p.population_id}.jpg"}

    metrics_a = '{"vendi":1.5,"note":"é"}'
    table = pq.read_table(tmp_path / "image_generation" / "test_v1-00000-of-00001.parquet")
    assert table.to_pylist() == [
        {"prompt": "a cat", "left_model": "gen-a", "left_image": side(a), "right_model": "gen-b",
         "right_image": side(b), "vote_type": "leftvote", "left_metrics": metrics_a, "right_metrics": None},
        {"prompt": "a cat", "left_model": "gen-b", "left_image": side(b), "right_model": "gen-c",
         "right_image": side(c), "vote_type": "rightvote", "left_metrics": None, "right_metrics": None},
        {"prompt": "a cat", "left_model": "gen-c", "left_image": side(c), "right_model": "gen-a",
         "right_image": side(a), "vote_type": "tievote", "left_metrics": None, "right_metrics": metrics_a},
        {"prompt": "a cat", "left_model": "gen-a", "left_image": side(a), "right_model": "gen-c",
         "right_image": side(c), "vote_type": "bothbad_vote", "left_metrics": metrics_a, "right_metrics": None},
    ]  # fmt: skip
    # and the layout names GenAI-Bench's configuration and split, both images as Image features.
    layout = writer.hf_layout()
    assert (layout.config_name, layout.data_dir, list(layout.splits)) == ("image_generation", "image_generation",
                                                                          ["test_v1"])  # fmt: skip
    assert layout.features["left_image"] == layout.features["right_image"] == {"_type": "Image"}
    assert layout.features["vote_type"] == {"dtype": "string", "_type": "Value"}


def grids_of_one_size_and_a_cache_of_two(monkeypatch):  # type: ignore[no-untyped-def]
    """A loader that counts its loads, and three one-picture populations whose grids are the same size, with the
    grid cache holding exactly two of them."""
    load = _CountingLoader(dict.fromkeys((1, 2, 3), (9, 9, 9)))
    size = len(make_grid([load(image) for image in population(1, "a", n=1).images]))
    load.loads.clear()
    monkeypatch.setattr(genai_bench_parquet, "GRID_CACHE_BYTES", 2 * size)
    return load, tuple(population(i, f"gen-{i}", n=1) for i in (1, 2, 3))


def test_genai_bench_keeps_the_recently_used_grids_within_its_byte_budget(tmp_path, monkeypatch):
    # Given populations whose grids are the same size, and a cache that holds exactly two of them,
    load, (a, b, c) = grids_of_one_size_and_a_cache_of_two(monkeypatch)
    writer = GenaiBenchParquetWriter.for_export(
        WriterContext(tmp_path, ("train",), load, ParticipantHasher(b"k"), lambda: [], lambda caption: "train")
    )
    # when a is used again after b, then c comes in, and a and b are asked for again,
    prompt = PromptInfo(1, "a cat", "")
    writer.write_group([PairRow("q", prompt, judged(left=1), a, b, 0, 0)])
    writer.write_group([PairRow("q", prompt, judged(left=1), a, c, 0, 0)])
    writer.write_group([PairRow("q", prompt, judged(left=1), c, a, 0, 0)])
    writer.write_group([PairRow("q", prompt, judged(left=1), a, b, 0, 0)])
    # then c pushed out b, the least recently used, and only b was built twice.
    assert load.loads == {1: 1, 2: 2, 3: 1}
    assert writer.close() == {"test_v1": 4}


# --- kto-csv, population-jsonl, popalign-csv and votes.csv: the cases the tests above leave open ---------------


def test_kto_labels_a_population_that_won_then_lost_both_and_reads_zero_past_its_table():
    labels = KtoLabels(max_population_id=5)
    prompt = PromptInfo(1, "c", "")
    labels.note(PairRow("q", prompt, judged(left=1), population(1, "a"), population(2, "b"), 0, 0))  # 1 wins
    labels.note(PairRow("q", prompt, judged(right=1), population(1, "a"), population(3, "c"), 0, 0))  # 1 loses
    assert [labels.flags(i) for i in range(7)] == [0, 3, 2, 1, 0, 0, 0]  # the table holds ids 0 to 5


def test_kto_rows_label_a_lost_image_first_and_the_last_image_and_keep_the_first_copys_caption():
    labels = KtoLabels(max_population_id=3)
    labels._flags[1] = 2  # lost
    labels._flags[2] = 1  # won
    stream = [
        KtoImage(_info("a"), 1, "lost first", "train"),
        KtoImage(_info("b"), 3, "shown in 3", "validation"),  # population 3: never in a kept pair
        KtoImage(_info("b"), 2, "shown in 2", "train"),
        KtoImage(_info("c"), 2, "last", "train"),
    ]
    got = [(item.caption, item.split, label) for item, label in kto_rows(stream, labels)]
    assert got == [("lost first", "train", KTO_LOSE), ("shown in 3", "validation", KTO_WIN), ("last", "train", KTO_WIN)]


class _Bar:
    def __init__(self, calls: list, total, unit) -> None:
        self.calls = calls
        calls.append(("open", total, unit))

    def update(self, n=1):
        self.calls.append(("update", n))

    def close(self):
        self.calls.append(("close",))


def test_kto_counts_every_label_and_reports_progress_per_image(tmp_path):
    calls: list = []
    writer = KtoPairWriter.for_export(
        WriterContext(
            folder=tmp_path,
            splits=("train",),
            load_image=lambda image: b"",
            hasher=ParticipantHasher(b"k"),
            shown_images=lambda: [(_info(h), p, h) for h, p in (("a", 1), ("b", 1), ("c", 2), ("d", 2), ("e", 2))],
            split_of=lambda caption: "train",
            progress=lambda total, unit: _Bar(calls, total, unit),
        )
    )
    assert writer.extra_counts() == {"kto_labels": {}}
    writer.write_group([PairRow("q", PromptInfo(1, "c", ""), judged(right=1), population(2, "b"), population(1, "a"),
                                0, 0)])  # fmt: skip
    assert writer.close() == {"train": 5}
    assert writer.extra_counts() == {"kto_labels": {KTO_WIN: 2, KTO_LOSE: 3, KTO_BOTH: 0}}  # 1 won, 2 lost
    assert calls == [("open", None, "image"), *[("update", 1)] * 5, ("close",)]


def test_population_jsonl_lines_are_compact_json_of_the_row_with_ratings_to_four_places(tmp_path):
    prompt = PromptInfo(7, "a cat", "animals")
    left = replace(population(1, "a", n=1), metrics={"vendi": 1.25, "note": "café"})
    rows = [PairRow("q", prompt, judged(left=1), left, population(2, "b", n=1), 1001.123456, 987.654321)]
    writer = PopulationJsonlWriter.for_export(
        WriterContext(tmp_path, ("train",), lambda image: b"", ParticipantHasher(b"k"), lambda: [], lambda c: "train")
    )
    writer.write_group(rows)
    writer.close()
    line = (tmp_path / POPULATION_JSONL_FILE).read_text(encoding="utf-8")
    assert line == json.dumps(rows[0].as_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"
    assert '"rating":1001.1235,' in line
    assert '"metrics":{"vendi":1.25,"note":"café"}' in line


def test_population_jsonl_serialises_each_populations_images_once_while_it_is_cached(tmp_path, monkeypatch):
    # Given a cache of two populations, and a count of image serialisations,
    serialised: Counter[int] = Counter()
    as_dict = ImageInfo.as_dict

    def counting(image):
        serialised[int(image.sha256[:2])] += 1
        return as_dict(image)

    monkeypatch.setattr(ImageInfo, "as_dict", counting)
    monkeypatch.setattr(PopulationJsonlWriter, "CACHE", 2)
    a, b, c = (population(i, f"g{i}", n=2) for i in (1, 2, 3))
    prompt = PromptInfo(7, "a cat", "animals")
    writer = PopulationJsonlWriter(tmp_path)
    # when a and b are written twice, then c comes (pushing out a, the oldest), then b and a again,
    rows = [PairRow("q", prompt, judged(left=1), x, y, None, None) for x, y in ((a, b), (b, a), (c, b), (b, a))]
    writer.write_group(rows)
    writer.close()
    # then only a's images were serialised twice, and every line is still the row's dict.
    assert serialised == {1: 4, 2: 2, 3: 2}
    lines = (tmp_path / POPULATION_JSONL_FILE).read_text().splitlines()
    monkeypatch.undo()
    assert [json.loads(line) for line in lines] == [row.as_dict() for row in rows]


def test_popalign_counts_the_sample_pairs_of_every_pair_of_a_split(tmp_path):
    writer = PopalignCsvWriter.for_export(
        WriterContext(tmp_path, ("train", "validation"), lambda image: b"", ParticipantHasher(b"k"), lambda: [],
                      lambda c: "train")
    )  # fmt: skip
    prompt = PromptInfo(1, "c", "")
    writer.write_group(
        [
            PairRow("q", prompt, judged(left=1), population(1, "a", n=2), population(2, "b", n=2), 0, 0),
            PairRow("q", prompt, judged(right=1), population(1, "a", n=2), population(3, "c", n=3), 0, 0),
        ]
    )
    assert writer.close() == {"train": 4, "validation": 0}
    assert len(_csv(tmp_path / "train.csv")) == 5
    assert _csv(tmp_path / "validation.csv") == [
        ["jpg_0", "jpg_1", "caption", "label", "comparison_id", "population_w_id", "population_l_id"]
    ]


def test_votes_csv_writes_the_right_sides_measures_from_the_right_population(tmp_path):
    writer = VotesCsvWriter(tmp_path, ParticipantHasher(b"k"), ("vendi", "colour"))
    measures = {10: {"vendi": 1.0, "colour": 2.0}, 20: {"vendi": 3.5, "colour": None}}
    writer.write_many([_vote()], measures)
    writer.close()
    header, row = _csv(tmp_path / "votes.csv")
    assert header[-4:] == ["left_vendi", "left_colour", "right_vendi", "right_colour"]
    assert row[-4:] == ["1.0", "2.0", "3.5", ""]


# --- make_grid: placement, background, scaling and encoding -----------------------------------------------------


def _near(pixel, colour, tolerance: int = 24) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def test_a_grid_centres_smaller_tiles_in_their_cells_on_white():
    # Given a 32 px red tile, a 16 px green one and a 24 x 12 blue one: a 2 x 2 grid of 32 px cells, 4 px apart,
    red, green, blue, white = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
    grid = make_grid([_png(red, (32, 32)), _png(green, (16, 16)), _png(blue, (24, 12))], gap=4)
    with PILImage.open(io.BytesIO(grid)) as image:
        assert image.size == (68, 68)
        rgb = image.convert("RGB")
        # then green sits in x 44-60, y 8-24 (cell 2 starts at 36), blue in x 4-28, y 46-58 (row 2 at 36),
        assert [_near(rgb.getpixel(xy), green) for xy in ((46, 10), (57, 21))] == [True, True]
        assert [_near(rgb.getpixel(xy), blue) for xy in ((6, 48), (25, 55))] == [True, True]
        assert _near(rgb.getpixel((16, 16)), red)
        # and the rest of each cell, the gaps and the empty fourth cell are white.
        for xy in ((41, 16), (63, 16), (50, 5), (50, 27), (16, 43), (16, 61), (1, 52), (30, 52), (34, 10), (60, 60)):
            assert _near(rgb.getpixel(xy), white), xy


def test_a_grid_scales_large_tiles_with_lanczos_whatever_their_mode_and_encodes_jpeg_95_without_subsampling():
    # Given a 24 px 1-bit image of checks, scaled to 8 px (Pillow resizes 1-bit and palette images with nearest
    # neighbour whatever filter is asked for, unless they are converted first),
    checks = PILImage.new("L", (24, 24), 0)
    for x in range(24):
        for y in range(24):
            if (x // 5 + y // 7) % 2:
                checks.putpixel((x, y), 255)
    out = io.BytesIO()
    checks.convert("1").save(out, format="PNG")
    grid = make_grid([out.getvalue()], tile_max=8)
    lanczos = checks.resize((8, 8), PILImage.Resampling.LANCZOS)
    bicubic = checks.resize((8, 8), PILImage.Resampling.BICUBIC)
    with PILImage.open(io.BytesIO(grid)) as image:
        got = image.convert("L")
        # then the tile is Lanczos-scaled: nearer Lanczos than Pillow's default bicubic, within JPEG's error,
        cells = [(x, y) for x in range(8) for y in range(8)]
        off_lanczos = [abs(got.getpixel(xy) - lanczos.getpixel(xy)) for xy in cells]
        off_bicubic = [abs(got.getpixel(xy) - bicubic.getpixel(xy)) for xy in cells]
        assert max(off_lanczos) <= 8
        assert sum(off_lanczos) < sum(off_bicubic)
        # and encoded as JPEG at quality 95 with full-resolution colour.
        reference = io.BytesIO()
        PILImage.new("RGB", (8, 8)).save(reference, format="JPEG", quality=95, subsampling=0)
        with PILImage.open(reference) as expected:
            assert image.quantization == expected.quantization
        assert JpegImagePlugin.get_sampling(image) == 0


def test_a_population_with_no_images_has_no_grid():
    with pytest.raises(ValueError, match="^a population with no images has no grid$"):
        make_grid([])


# --- the Parquet formats pass their budgets on, estimate each row's size, and make their folders -----------------


def test_pickapic_row_groups_and_shards_follow_its_budgets_with_each_row_its_images_plus_256_bytes(tmp_path):
    # Given rows of a 10-byte and a 100-byte image (an estimate of 10 + 100 + 256 = 366 bytes each), a row group
    # budget of two rows and one byte, and shards of one row group,
    prompt = PromptInfo(1, "a cat", "")
    rows = [
        PairRow("q", prompt, _pair(70 + i, 5, datetime(2025, 3, 4, tzinfo=UTC), left_wins=1), population(1, "a", 3),
                population(2, "b", 3), 0, 0)
        for i in range(2)
    ]  # fmt: skip
    writer = PickapicParquetWriter(
        tmp_path / "new" / "export",
        lambda image: bytes(10 ** int(image.sha256[:2])),  # population 1: 10 bytes, population 2: 100
        ParticipantHasher(b"k"),
        max_shard_bytes=1,
        row_group_bytes=2 * 366 + 1,
    )
    writer.write_group(rows)
    writer.close()
    # then the six rows make row groups of 3, 3, each its own shard, with jpg_0 and jpg_1 stored as they are.
    paths = sorted((tmp_path / "new" / "export" / "data").iterdir())
    assert [p.name for p in paths] == ["train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]
    assert _row_groups(paths) == [3, 3]
    group = pq.ParquetFile(paths[0]).metadata.row_group(0)
    kinds = {group.column(i).path_in_schema: group.column(i).compression for i in range(group.num_columns)}
    assert (kinds["jpg_0"], kinds["jpg_1"], kinds["caption"]) == ("UNCOMPRESSED", "UNCOMPRESSED", "SNAPPY")
    # A writer opened again on the same folder starts afresh.
    assert PickapicParquetWriter(tmp_path / "new" / "export", _image_bytes, ParticipantHasher(b"k")).close() == {
        "train": 0
    }


def test_genai_bench_row_groups_and_shards_follow_its_budgets_and_declare_both_images(tmp_path):
    load = _CountingLoader({1: (200, 0, 0), 2: (0, 200, 0)})
    a, b = population(1, "gen-a", n=1), population(2, "gen-b", n=1)
    size = sum(len(make_grid([load(i) for i in p.images])) for p in (a, b)) + 256
    prompt = PromptInfo(1, "a cat", "")
    writer = GenaiBenchParquetWriter(tmp_path, load, max_shard_bytes=1, row_group_bytes=2 * size + 1)
    writer.write_group([PairRow("q", prompt, judged(left=1), a, b, 0, 0)] * 6)
    writer.close()
    paths = sorted((tmp_path / "image_generation").iterdir())
    assert [p.name for p in paths] == ["test_v1-00000-of-00002.parquet", "test_v1-00001-of-00002.parquet"]
    assert _row_groups(paths) == [3, 3]
    features = json.loads(pq.read_schema(paths[0]).metadata[b"huggingface"])["info"]["features"]
    assert features["left_image"] == features["right_image"] == {"_type": "Image"}


def test_a_shard_closes_once_its_row_groups_reach_its_budget(tmp_path):
    # Row groups of 300 bytes, shards of 601: a shard takes a third group (600 < 601) and closes at 900.
    writer = ShardedParquetWriter(tmp_path, "train", _SHARD_SCHEMA, max_shard_bytes=601, row_group_bytes=300)
    for i in range(12):
        writer.add(_shard_row(i), 100)
    paths = writer.close()
    assert [pq.ParquetFile(p).num_row_groups for p in paths] == [3, 1]


def test_genai_bench_keeps_at_least_the_newest_grid_and_drops_the_rest_over_budget(tmp_path, monkeypatch):
    # Given a grid cache of one byte: only the grid just made stays,
    load = _CountingLoader(dict.fromkeys((1, 2, 3), (9, 9, 9)))
    monkeypatch.setattr(genai_bench_parquet, "GRID_CACHE_BYTES", 1)
    a, b = population(1, "gen-1", n=1), population(2, "gen-2", n=1)
    writer = GenaiBenchParquetWriter(tmp_path, load)
    prompt = PromptInfo(1, "a cat", "")
    # so b, just made, is reused, and a, pushed out by b, is made again.
    writer.write_group(
        [PairRow("q", prompt, judged(left=1), a, b, 0, 0), PairRow("q", prompt, judged(left=1), b, a, 0, 0)]
    )
    assert load.loads == {1: 2, 2: 1}
    writer.close()


def test_genai_bench_counts_the_bytes_left_after_each_eviction(tmp_path, monkeypatch):
    # Given grids of one size and a cache of two,
    load, (a, b, c) = grids_of_one_size_and_a_cache_of_two(monkeypatch)
    writer = GenaiBenchParquetWriter(tmp_path, load)
    prompt = PromptInfo(1, "a cat", "")
    # when a, b; c (pushing out a), b; b, a (pushing out c); c (pushing out b), b (pushing out a),
    for left, right in ((a, b), (c, b), (b, a), (c, b)):
        writer.write_group([PairRow("q", prompt, judged(left=1), left, right, 0, 0)])
    # then each was made twice: the cache held two grids, not three, after each eviction.
    assert load.loads == {1: 2, 2: 2, 3: 2}
    writer.close()


def test_pickapic_created_at_is_utc_without_a_zone_whatever_the_servers_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        aware = datetime(2025, 3, 4, 12, 30, tzinfo=timezone(timedelta(hours=2)))
        assert naive_utc(aware) == datetime(2025, 3, 4, 10, 30, tzinfo=UTC).replace(tzinfo=None)
        assert naive_utc(aware).tzinfo is None
        naive = aware.replace(tzinfo=None)  # already UTC by convention: left as it is
        assert naive_utc(naive) == naive
    finally:
        monkeypatch.undo()
        time.tzset()
