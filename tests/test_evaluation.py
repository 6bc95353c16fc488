"""Decoupled evaluation: dataset-level COCO mAP equals pycocotools' own run; ``orsta-trl eval`` on a full model
and on a LoRA adapter writes its JSON report and prints a per-source table."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from orsta_trl.data.records import load_records
from orsta_trl.evaluation import coco_map, eval_metrics, greedy_completions, score_generated
from orsta_trl.monitor.writing import tags
from orsta_trl.rewards.router import RewardRouter


def run_eval(*args) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "orsta_trl.cli", "eval", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True)


@pytest.fixture()
def detection_records(tmp_path):
    rows = []
    boxes = [[[10, 10, 40, 40]], [[5, 5, 20, 30], [50, 50, 90, 80]], [[0, 0, 60, 60]]]
    for i, gt in enumerate(boxes):
        Image.new("RGB", (100, 100)).save(tmp_path / f"{i}.png")
        rows.append(
            {
                "id": f"d{i}",
                "data_source": "det",
                "images": [f"{i}.png"],
                "prompt": [
                    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Find"}]}
                ],
                "reward": {
                    "verifier": "detection",
                    "params": {"pred_coords": "original"},
                    "ground_truth": [{"bbox_2d": b, "label": "cat"} for b in gt],
                },
            }
        )
    (tmp_path / "det.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path / "det.jsonl", boxes


def test_coco_map_of_perfect_and_partial_predictions(detection_records):
    from orsta_trl.evaluation import Generated

    path, boxes = detection_records
    records = load_records(path)
    router = RewardRouter(records)

    def answer(bs):
        return "<answer>" + json.dumps([{"bbox_2d": b, "label": "cat"} for b in bs]) + "</answer>"

    perfect = [Generated(answer(b), 10, False) for b in boxes]
    rows = score_generated(router, records, perfect)
    assert coco_map(records, rows, router) == {"det": {"map": 1.0, "map50": 1.0, "map75": 1.0}}
    assert tags(eval_metrics(rows))["eval/source/det/accuracy"] == 1.0

    partial = [
        Generated(answer([[10, 10, 40, 40]]), 10, False),
        Generated("no boxes", 5, True),
        Generated(answer([[0, 0, 60, 50]]), 10, False),
    ]  # IoU 5/6 with the third box
    rows = score_generated(router, records, partial)
    result = coco_map(records, rows, router)["det"]
    # 4 ground-truth boxes, two found at IoU >= 0.75 (AP50 = AP75 = 0.5 under COCO's 101-point interpolation)
    assert result["map50"] == pytest.approx(0.5, abs=0.01) and result["map75"] == pytest.approx(0.5, abs=0.01)
    assert 0.25 < result["map"] < 0.5


def test_greedy_completions_are_deterministic(tiny_vl, synth_data):
    from orsta_trl.models.loading import load_model, load_processor

    records = load_records(synth_data)[:3]
    model, processor = load_model(str(tiny_vl), vision=True), load_processor(str(tiny_vl))
    first = greedy_completions(model, processor, records, max_new_tokens=8, batch_size=2)
    again = greedy_completions(model, processor, records[::-1], max_new_tokens=8, batch_size=3)[::-1]
    assert [g.text for g in first] == [
        g.text for g in again
    ]  # batching and padding do not change greedy text
    assert all(0 < g.length <= 8 for g in first)


@pytest.mark.parametrize("adapter", [False, True], ids=["full", "lora"])
def test_eval_command(tiny_vl, synth_data, tmp_path, adapter):
    checkpoint = tiny_vl
    if adapter:
        from peft import LoraConfig, get_peft_model

        from orsta_trl.models.loading import load_model

        model = get_peft_model(
            load_model(str(tiny_vl), vision=True),
            LoraConfig(r=4, target_modules=r".*language_model.*\.(q_proj|v_proj)"),
        )
        checkpoint = tmp_path / "adapter"
        model.save_pretrained(checkpoint)
        assert (checkpoint / "adapter_config.json").exists()
    out = tmp_path / "report.json"
    result = run_eval(checkpoint, synth_data, "-o", out, "--max-new-tokens", 8)
    report = json.loads(out.read_text())
    assert len(report["completions"]) == 24 and report["iou_threshold"] == "average"
    assert report["pixel_bounds"] == [3136, 50176]  # the checkpoint's own processor config, not a default
    assert report["generation"] == {  # how the completions were made, so two reports can be compared
        "decoding": "greedy", "max_new_tokens": 8, "batch_size": 8,
        "stop_tokens": ["<|endoftext|>", "<|im_end|>"], "suppressed_tokens": ["<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"],
        "prompt": "chat template, add_generation_prompt=True, left padding", "tools": [],
    }  # fmt: skip
    assert {"synth_detection", "synth_grounding"} <= set(report["coco"])
    assert "eval/source/synth_ocr/reward" in report["metrics"]
    assert "synth_math" in result.stdout and "mAP" in result.stdout


def test_eval_takes_pixel_bounds_from_a_recipe(tiny_vl, synth_data, tmp_path):
    (tmp_path / "r.yaml").write_text("min_pixels: 784\nmax_pixels: 12544\n")
    out = tmp_path / "report.json"
    result = run_eval(tiny_vl, synth_data, "-o", out, "--max-new-tokens", 2, "--recipe", tmp_path / "r.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(out.read_text())["pixel_bounds"] == [784, 12544]


def test_coco_map_ignores_labels_where_the_records_do_not_match_them(detection_records):
    """Grounding records (``match_labels: false``): unlabelled or differently labelled boxes still count."""
    from orsta_trl.evaluation import Generated

    path, boxes = detection_records
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row["reward"]["params"]["match_labels"] = False
        row["images"] = [str(path.parent / image) for image in row["images"]]
    records = load_records(rows)
    router = RewardRouter(records)
    unlabelled = [
        Generated("<answer>" + json.dumps([{"bbox_2d": b} for b in bs]) + "</answer>", 10, False)
        for bs in boxes
    ]
    scored = score_generated(router, records, unlabelled)
    assert all(s.accuracy == 1.0 for s in scored)  # the verifier ignores labels here; so must COCO
    assert coco_map(records, scored, router) == {"det": {"map": 1.0, "map50": 1.0, "map75": 1.0}}
    labelled = load_records(path)  # the same boxes where labels count: unlabelled boxes match nothing
    assert (
        coco_map(
            labelled, score_generated(RewardRouter(labelled), labelled, unlabelled), RewardRouter(labelled)
        )["det"]["map50"]
        == 0.0
    )
