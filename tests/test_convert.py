"""Importers: small files in the real foreign schemas (V-Triune / verl Parquet written with ``datasets``, COCO
JSON, RefCOCO rows, QA CSV) -> records that ``check-data`` and ``load_records`` accept."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from orsta_trl.cli import main
from orsta_trl.data import convert
from orsta_trl.data.records import load_records
from orsta_trl.rewards.router import RewardRouter


def png(width: int, height: int, color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def cli(*argv) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    return exit_info.value.code


def vtriune_rows() -> list[dict]:
    """Rows in V-Triune's schema (rl_dataset.py / remote.py / verify.py of MiniMax-AI/One-RL-to-See-Them-All)."""
    ratio = {"iou_max_label_first": 1.0, "iou_max_iou_first": 0.0, "iou_completeness": 0.3,
             "map": 0.0, "map50": 0.5, "map75": 0.0}  # fmt: skip

    def row(i, source, verifier, prompt, images, truth, fmt, normalized=False):
        return {
            "data_source": source,
            "prompt": [{"role": "user", "content": prompt}],
            "images": [{"bytes": b, "path": None} for b in images],
            "ability": "math" if verifier == "mathverify" else "detection",
            "reward_model": {
                "verifier": verifier, "ground_truth": truth, "answer": truth, "accuracy_ratio": 1.0,
                "format_ratio": fmt,
                "verifier_parm": {"det_verifier_normalized": normalized, "det_reward_ratio": ratio},
            },
            "extra_info": {"id": i},
        }  # fmt: skip

    red, blue = png(280, 140, "red"), png(56, 56, "blue")
    det = "<answer>[{'bbox_2d': [100, 200, 500, 600], 'label': 'dog'}]</answer>"
    return [
        row(0, "mm_math", "mathverify", "<image>What is 3+4?", [red], "7", 0.0),
        row(1, "mm_math", "mathverify", "Solve <image> then 2*3.", [blue], "6", 0.1),
        row(2, "v3det", "detection", "<image>Find the dog.", [red], det, 0.1, normalized=True),
        row(3, "other", "chartqa_verifier", "<image>?", [red], "1", 0.1),
        row(4, "mm_math", "mathverify", "<image>Bad gold", [red], "", 0.0),
    ]


@pytest.fixture(scope="module")
def vtriune_parquet(tmp_path_factory) -> Path:
    import datasets

    path = tmp_path_factory.mktemp("vtriune") / "train.parquet"
    datasets.Dataset.from_list(vtriune_rows()).to_parquet(str(path))
    return path


def test_vtriune_parquet_maps_every_field(vtriune_parquet, tmp_path):
    report = convert.vtriune(vtriune_parquet, tmp_path / "a" / "out.jsonl")
    assert report.written == 3
    assert report.skipped == {"unknown_verifier": 1, "invalid_reward": 1}
    assert report.images_written == 2 and report.images_reused == 2  # the red image is stored once
    records = {r.id: r for r in load_records(tmp_path / "a" / "out.jsonl")}
    raw = [json.loads(line) for line in (tmp_path / "a" / "out.jsonl").read_text().splitlines()]
    free, closed, det = raw
    assert free["prompt"][0]["content"] == [{"type": "image"}, {"type": "text", "text": "What is 3+4?"}]
    assert free["reward"]["params"] == {"format": "none"} and free["reward"]["format_weight"] == 0.0
    assert closed["reward"]["params"] == {"format": "think_answer"}
    assert [p["type"] for p in closed["prompt"][0]["content"]] == ["text", "image", "text"]
    # 0-1000 grid -> original pixels of the 280x140 image
    assert det["reward"]["ground_truth"] == [{"bbox_2d": [28.0, 28.0, 140.0, 84.0], "label": "dog"}]
    assert det["reward"]["params"] == {"completeness_weight": 0.3, "matching": "greedy_label_first"}
    assert det["reward"]["accuracy_weight"] == pytest.approx(2 / 3)
    assert det["reward"]["extra_weights"] == {"ap50": pytest.approx(1 / 3)}
    assert det["extra"]["vtriune"]["extra_info"] == {"id": 2}
    # the converted detection record scores 1 for the right box, given in the model's (resized) pixels
    router = RewardRouter(list(records.values()))
    good = '<answer>[{"bbox_2d": [28, 28, 140, 84], "label": "dog"}]</answer>'
    [sample] = router.score([records["2"]], [good])
    assert sample.accuracy == pytest.approx(1.0) and sample.reward == pytest.approx(1.0, abs=0.01)


def test_vtriune_rows_of_wrong_types_are_skipped_with_a_reason(tmp_path):
    good = {"data_source": "m", "prompt": [{"role": "user", "content": "1+1?"}], "extra_info": {"id": 1},
            "reward_model": {"verifier": "mathverify", "ground_truth": "2", "format_ratio": 0.0}}  # fmt: skip
    bad_ratio = {
        **good,
        "extra_info": {"id": 2},
        "reward_model": {**good["reward_model"], "format_ratio": "high"},
    }
    bad_prompt = {**good, "extra_info": {"id": 3}, "prompt": [{"role": "user", "content": 7}]}
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in (good, bad_ratio, bad_prompt)) + "{not json\n")
    report = convert.vtriune(src, tmp_path / "out" / "rows.jsonl")
    assert report.written == 1
    assert report.skipped == {"bad_row": 1, "bad_prompt": 1, "bad_json": 1}
    assert "high" in report.examples["bad_row"] and "rows.jsonl:2" in report.examples["bad_row"]


def test_vtriune_output_is_byte_deterministic(vtriune_parquet, tmp_path):
    convert.vtriune(vtriune_parquet, tmp_path / "a" / "out.jsonl")
    convert.vtriune(vtriune_parquet, tmp_path / "b" / "out.jsonl")
    again = convert.vtriune(vtriune_parquet, tmp_path / "a" / "out.jsonl")
    assert again.images_written == 0  # written once, reused on a rerun
    assert (tmp_path / "a/out.jsonl").read_bytes() == (tmp_path / "b/out.jsonl").read_bytes()
    assert sorted(p.name for p in (tmp_path / "a/images").iterdir()) == sorted(
        p.name for p in (tmp_path / "b/images").iterdir()
    )


def test_verl_generic_with_mapping_and_cli(tmp_path, capsys):
    import datasets

    rows = [
        {"data_source": "openai/gsm8k", "prompt": [{"role": "user", "content": "Natalia sold 48 clips..."}],
         "ability": "math", "reward_model": {"style": "rule", "ground_truth": ["72"]}, "extra_info": {"index": 7}},
        {"data_source": "openai/gsm8k", "prompt": [{"role": "user", "content": "Rate this"}],
         "ability": "math", "reward_model": {"style": "model", "ground_truth": ["x"]}, "extra_info": {"index": 8}},
        {"data_source": "counting", "prompt": [{"role": "user", "content": "How many?"}],
         "ability": "count", "reward_model": {"style": "rule", "ground_truth": ["3"]}, "extra_info": {"index": 9}},
        {"data_source": "unknown", "prompt": [{"role": "user", "content": "?"}],
         "ability": "x", "reward_model": {"style": "rule", "ground_truth": ["3"]}, "extra_info": {"index": 10}},
    ]  # fmt: skip
    src = tmp_path / "verl.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(src))
    (tmp_path / "map.yaml").write_text("openai/gsm8k: math\ncounting: count\n")
    out = tmp_path / "out" / "verl.jsonl"
    assert cli("convert", "verl", src, out, "--map", tmp_path / "map.yaml") == 0
    printed = capsys.readouterr().out
    assert "wrote 2 record(s)" in printed and "model_reward" in printed and "unmapped_source" in printed
    records = load_records(out)
    assert [(r.id, r.reward.verifier.name, r.reward.gold) for r in records][1] == ("9", "count", 3)
    assert cli("check-data", out) == 0
    assert cli("convert", "verl", src, out) == 1  # neither --verifier nor --map: a clear error
    assert "give a verifier" in capsys.readouterr().err


def coco_files(root: Path) -> Path:
    (root / "img").mkdir(parents=True)
    (root / "img" / "a.png").write_bytes(png(200, 100, "white"))
    (root / "img" / "b.png").write_bytes(png(60, 60, "white"))
    data = {
        "images": [{"id": 2, "file_name": "b.png", "width": 60, "height": 60},
                   {"id": 1, "file_name": "a.png", "width": 200, "height": 100},
                   {"id": 3, "file_name": "missing.png", "width": 10, "height": 10}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "traffic light"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 30, 40], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [50, 5, 10.5, 20], "iscrowd": 0},
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100], "iscrowd": 1},
            {"id": 4, "image_id": 2, "category_id": 1, "bbox": [1, 1, 0, 5], "iscrowd": 0},
            {"id": 5, "image_id": 3, "category_id": 1, "bbox": [1, 1, 2, 2], "iscrowd": 0},
        ],
    }  # fmt: skip
    (root / "instances.json").write_text(json.dumps(data))
    return root / "instances.json"


def test_coco_per_image_and_per_category(tmp_path, capsys):
    ann = coco_files(tmp_path / "coco")
    out = tmp_path / "data" / "coco.jsonl"
    assert cli("convert", "coco", ann, out, "--images", tmp_path / "coco" / "img") == 0
    assert (
        "skipped 1 (missing_image)" in capsys.readouterr().out
    )  # image 2 has no usable box, image 3 no file
    [record] = load_records(out)
    assert record.id == "1" and record.images[0].endswith("a.png")
    assert record.raw_reward["ground_truth"] == [
        {"bbox_2d": [10.0, 20.0, 40.0, 60.0], "label": "cat"},
        {"bbox_2d": [50.0, 5.0, 60.5, 25.0], "label": "traffic light"},
    ]
    report = convert.coco(
        ann, tmp_path / "data" / "cat.jsonl", images_dir=tmp_path / "coco" / "img", per="category"
    )
    assert report.written == 2 and report.skipped == {"no_boxes": 1, "missing_image": 1}
    assert [r.id for r in load_records(tmp_path / "data" / "cat.jsonl")] == ["1-cat", "1-traffic_light"]
    text = json.loads((tmp_path / "data" / "cat.jsonl").read_text().splitlines()[1])["prompt"][0]["content"][
        1
    ]
    assert "traffic light" in text["text"] and "<answer>" in text["text"]


def test_refcoco_one_box_grounding(tmp_path):
    (tmp_path / "a.png").write_bytes(png(112, 84, "green"))  # multiples of 28: resized == original
    rows = [
        {"ref_id": 11, "image": "a.png", "bbox": [10, 10, 20, 30],
         "sentences": [{"sent": "the left man"}, {"sent": "man in red"}]},
        {"ref_id": 12, "image": "a.png", "bbox": [1, 2], "sentences": ["broken box"]},
        {"ref_id": 13, "image": "a.png", "bbox": [150, 10, 5, 5], "expression": "outside the image"},
        {"ref_id": 14, "image": "a.png", "bbox": [1, 2, "x", 4], "expression": "a word for a number"},
    ]  # fmt: skip
    (tmp_path / "refs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = convert.refcoco(tmp_path / "refs.jsonl", tmp_path / "out" / "ref.jsonl")
    assert report.written == 2 and report.skipped == {"bad_box": 1, "invalid_reward": 1, "bad_row": 1}
    records = load_records(tmp_path / "out" / "ref.jsonl")
    assert [r.id for r in records] == ["11-0", "11-1"]
    assert records[0].raw_reward["ground_truth"] == [
        {"bbox_2d": [10.0, 10.0, 30.0, 40.0], "label": "the left man"}
    ]
    router = RewardRouter(records)
    [sample] = router.score(
        [records[1]], ['<answer>[{"bbox_2d": [10, 10, 30, 40], "label": "him"}]</answer>']
    )
    assert sample.accuracy == pytest.approx(1.0)  # labels are not matched for grounding


def test_qa_csv_count_and_jsonl_math(tmp_path):
    (tmp_path / "img.png").write_bytes(png(56, 56, "white"))
    (tmp_path / "count.csv").write_text(
        "question,answer,image\nHow many dots?,3,img.png\nHow many cats?,three,img.png\nNo image?,2,\n"
        "Missing image?,2,nope.png\n"
    )
    report = convert.qa(tmp_path / "count.csv", tmp_path / "out" / "count.jsonl", verifier="count")
    assert report.written == 2
    assert report.skipped == {"invalid_reward": 1, "missing_image": 1}
    records = load_records(tmp_path / "out" / "count.jsonl")
    assert [(r.id, r.reward.gold, len(r.images)) for r in records] == [("count-2", 3, 1), ("count-4", 2, 0)]
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "q", "question": "1/2 + 1/2?", "answer": "1"}) + "\n")
    convert.qa(tmp_path / "m.jsonl", tmp_path / "out" / "m.jsonl", verifier="math", data_source="mine")
    [record] = load_records(tmp_path / "out" / "m.jsonl")
    assert record.key == ("mine", "q") and record.reward.params.format == "none"
