"""Pure writers: Pick-a-Pic's exact schema, sharding, grids, the KTO labels, Hugging Face YAML, the zip stream."""

from __future__ import annotations

import io
import json
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image as PILImage

from exports import cards
from exports.rows import ImageInfo, PairRow, PromptInfo
from exports.writers.genai_bench_parquet import make_grid
from exports.writers.kto_csv import KTO_BOTH, KTO_LOSE, KTO_WIN, KtoImage, KtoLabels, kto_rows
from exports.writers.parquet import ShardedParquetWriter, hf_features
from exports.writers.pickapic_parquet import PICKAPIC_SCHEMA
from exports.writers.popalign_csv import PopalignCsvWriter
from exports.writers.population_jsonl import POPULATION_JSONL_FILE, PopulationJsonlWriter
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
