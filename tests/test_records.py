"""The record contract: loading JSONL and Parquet, every error named by source, record and field."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from orsta_trl.data.records import DatasetError, load_records

GOOD = {
    "id": "a-1",
    "data_source": "toy_ocr",
    "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Read it."}]}],
    "images": ["img.png"],
    "reward": {"verifier": "ocr", "ground_truth": "stop", "accuracy_weight": 1.0, "format_weight": 0.1},
}


@pytest.fixture()
def folder(tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 48), "white").save(tmp_path / "img.png")
    return tmp_path


def write(folder, rows, name="d.jsonl"):
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_good_record_loads_with_image_size(folder):
    (record,) = load_records(write(folder, [GOOD]))
    assert record.key == ("toy_ocr", "a-1")
    assert record.image_sizes == [(64, 48)]
    assert record.images == [str(folder / "img.png")]
    assert record.reward.verifier.name == "ocr" and record.reward.gold == "stop"


def test_text_only_record_normalises_string_content(folder):
    row = {
        **GOOD,
        "images": [],
        "prompt": [{"role": "user", "content": "What is 2+2?"}],
        "reward": {"verifier": "math", "ground_truth": "4"},
    }
    (record,) = load_records(write(folder, [row]))
    assert record.prompt == [{"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]}]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"images": []}, "images"),
        ({"images": ["missing.png"]}, "images[0]"),
        ({"id": ""}, "id"),
        ({"data_source": None}, "data_source"),
        ({"prompt": "hi"}, "prompt"),
        ({"prompt": [{"role": "robot", "content": "x"}]}, "prompt[0]"),
        ({"reward": {"verifier": "ocr"}}, "reward.ground_truth"),
        ({"reward": {"verifier": "orc", "ground_truth": "x"}}, "reward.verifier"),
        (
            {"reward": {"verifier": "ocr", "ground_truth": "x", "params": {"mode": "fuzzy"}}},
            "reward.params.mode",
        ),
        ({"reward": {"verifier": "count", "ground_truth": "many"}}, "reward.ground_truth"),
        (
            {"reward": {"verifier": "ocr", "ground_truth": "x", "accuracy_weight": 0}},
            "reward.accuracy_weight",
        ),
        ({"rewards": {}}, "rewards"),
    ],
)
def test_bad_record_names_source_record_and_field(folder, change, field):
    row = {**GOOD, **change}
    with pytest.raises(DatasetError) as err:
        load_records(write(folder, [GOOD, row]))
    (error,) = err.value.errors
    assert error.field == field
    assert error.location.endswith("d.jsonl:2")
    assert error.data_source == row.get("data_source")


def test_all_errors_are_collected_and_duplicates_rejected(folder):
    rows = [GOOD, GOOD, {**GOOD, "id": "b", "images": []}, "not a record"]
    path = folder / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken json\n")
    with pytest.raises(DatasetError) as err:
        load_records(path)
    fields = [e.field for e in err.value.errors]
    assert fields == ["id", "images", "(record)", "(line)"]
    assert "duplicate" in err.value.errors[0].message


def test_parquet_with_json_reward_column(folder):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {**GOOD, "reward": json.dumps(GOOD["reward"])},
        {**GOOD, "id": "a-2", "reward": json.dumps({"verifier": "count", "ground_truth": 3})},
    ]
    pq.write_table(pa.Table.from_pylist(rows), folder / "d.parquet")
    records = load_records(folder / "d.parquet")
    assert [r.reward.verifier.name for r in records] == ["ocr", "count"]


def test_check_data_cli(folder, synth_data):
    ok = subprocess.run(
        [sys.executable, "-m", "orsta_trl.cli", "check-data", str(synth_data)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "synth_detection" in ok.stdout and "detection=4" in ok.stdout
    bad = write(
        folder, [GOOD, {**GOOD, "id": "z", "reward": {"verifier": "ocr", "ground_truth": "x", "oops": 1}}]
    )
    failed = subprocess.run(
        [sys.executable, "-m", "orsta_trl.cli", "check-data", str(bad)], capture_output=True, text=True
    )
    assert failed.returncode == 1
    assert "source 'toy_ocr', record 'z', field 'reward.oops'" in failed.stderr


def test_parquet_written_by_datasets_with_embedded_images(tmp_path):
    import datasets
    from PIL import Image

    from orsta_trl.data.rows import to_trl_dataset

    rows = [
        {
            **GOOD,
            "id": f"e{i}",
            "images": [Image.new("RGB", (40 + i, 30), "red")],
            "reward": json.dumps(GOOD["reward"]),
        }
        for i in range(2)
    ]
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "data_source": datasets.Value("string"),
            "prompt": datasets.List(
                {
                    "role": datasets.Value("string"),
                    "content": datasets.List(
                        {"type": datasets.Value("string"), "text": datasets.Value("string")}
                    ),
                }
            ),
            "images": datasets.List(datasets.Image()),
            "reward": datasets.Value("string"),
        }
    )
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(tmp_path / "hub.parquet"))
    records = load_records(tmp_path / "hub.parquet")
    assert [r.image_sizes for r in records] == [[(40, 30)], [(41, 30)]]
    dataset = to_trl_dataset(records, vision=True)
    assert dataset[1]["images"][0].size == (41, 30)
