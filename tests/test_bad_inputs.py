"""Bad input is rejected before the model loads, with the key or the record and field, and what to change.

The model folder used here is poisoned: its config is real but its weights file is garbage, so any check that
ran after the model load would surface as a safetensors error instead of the message asserted below.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import orsta_trl
from orsta_trl.errors import DataError, RecipeError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def poisoned_model(tiny_vl, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("poisoned") / "model"
    shutil.copytree(tiny_vl, folder)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    return folder


def record(rid="r1", verifier="ocr", gt="stop", images=(), **reward) -> dict:
    content = [{"type": "image"} for _ in images] + [{"type": "text", "text": "Read it."}]
    return {
        "id": rid,
        "data_source": "bad",
        "prompt": [{"role": "user", "content": content}],
        "images": list(images),
        "reward": {"verifier": verifier, "ground_truth": gt, **reward},
    }


def write(folder: Path, rows, name="data.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def truncated_png(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), "white").save(folder / "full.png")
    data = (folder / "full.png").read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    return "cut.png"


def blank_png(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (100, 80), "white").save(folder / "blank.png")
    return "blank.png"


BAD_DATA = {
    "truncated image": (
        lambda d: [record(images=[truncated_png(d)])],
        ["images[0]", "cannot read image", "truncated"],
    ),
    "ocr ground truth as a number": (
        lambda d: [record(gt=3.10)],
        ["reward.ground_truth", "ocr needs the text as a string", "quote it"],
    ),
    "box outside the image": (
        lambda d: [
            record(
                verifier="detection",
                gt=[{"bbox_2d": [120, 10, 150, 40], "label": "a"}],
                images=[blank_png(d)],
            )
        ],
        ["reward.ground_truth", "outside its 100x80 image"],
    ),
    "negative box": (
        lambda d: [
            record(
                verifier="detection", gt=[{"bbox_2d": [-5, 10, 50, 40], "label": "a"}], images=[blank_png(d)]
            )
        ],
        ["reward.ground_truth", "negative coordinates"],
    ),
    "duplicate id": (lambda d: [record(), record()], ["field 'id'", "duplicate id"]),
    "placeholders and images differ": (
        lambda d: [{**record(images=[blank_png(d)]), "prompt": [{"role": "user", "content": "no image"}]}],
        ["field 'images'", "1 image(s) but 0"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_is_rejected_by_check_data_and_by_training(case, tmp_path, poisoned_model):
    build, needles = BAD_DATA[case]
    data = write(tmp_path / "data", build(tmp_path / "data"))
    check = subprocess.run(
        [sys.executable, "-m", "orsta_trl.cli", "check-data", str(data)], capture_output=True, text=True
    )
    assert check.returncode == 1
    for needle in needles + ["source 'bad'", "record 'r1'", f"{data}:"]:
        assert needle in check.stderr, (needle, check.stderr)
    recipe = orsta_trl.load_recipe(
        None,
        model_name_or_path=str(poisoned_model),
        train_files=[str(data)],
        output_dir=str(tmp_path / "run"),
        use_cpu=True,
        bf16=False,
    )
    with pytest.raises(DataError) as error:
        orsta_trl.build_trainer(recipe)
    assert all(needle in str(error.value) for needle in needles), str(error.value)


def test_empty_csv_and_missing_files_fail_before_the_model(tmp_path, poisoned_model):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    csv = tmp_path / "data.csv"
    csv.write_text("id,question\n1,x\n")
    cases = {
        str(empty): "no records to train on",
        str(csv): "unsupported dataset file",
        "nope/data.jsonl": "no such file",
    }
    for path, message in cases.items():
        recipe = orsta_trl.load_recipe(
            None,
            model_name_or_path=str(poisoned_model),
            train_files=[path],
            output_dir=str(tmp_path / "run"),
            use_cpu=True,
            bf16=False,
        )
        with pytest.raises(DataError, match=message):
            orsta_trl.build_trainer(recipe)
    check = subprocess.run(
        [sys.executable, "-m", "orsta_trl.cli", "check-data", str(empty)], capture_output=True, text=True
    )
    assert check.returncode == 1 and "no records" in check.stderr


BAD_RECIPES = {
    "loss_type typo": ({"loss_type": "dapoo"}, "loss_type: 'dapoo' is not one of", "did you mean 'dapo'"),
    "vllm_mode typo": ({"vllm_mode": "colocated"}, "vllm_mode: 'colocated'", "did you mean 'colocate'"),
    "max_steps 0": ({"max_steps": 0}, "max_steps: 0 trains nothing", "-1 to use epochs"),
    "max_steps true": ({"max_steps": True}, "max_steps: expected int", "True"),
    "report_to typo": ({"report_to": ["tensorbord"]}, "report_to", "did you mean 'tensorboard'"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECIPES))
def test_bad_recipe_values_fail_when_the_recipe_loads(case, tmp_path):
    values, *needles = BAD_RECIPES[case]
    path = tmp_path / "r.yaml"
    path.write_text(
        "model_name_or_path: m\ntrain_files: [x.jsonl]\n"
        + "".join(f"{k}: {json.dumps(v)}\n" for k, v in values.items())
    )
    with pytest.raises(RecipeError) as error:
        orsta_trl.load_recipe(path)
    assert all(n in str(error.value) for n in needles), str(error.value)
    check = subprocess.run(
        [sys.executable, "-m", "orsta_trl.cli", "check-recipe", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert check.returncode == 1 and needles[0] in check.stderr


def test_bad_paths_fail_before_the_model_loads(tmp_path, poisoned_model, synth_data):
    (tmp_path / "a_file").write_text("x")
    base = {
        "model_name_or_path": str(poisoned_model),
        "train_files": [str(synth_data)],
        "use_cpu": True,
        "bf16": False,
    }
    cases = [
        (
            {"output_dir": str(tmp_path / "a_file" / "run")},
            "output_dir: " + str(tmp_path / "a_file") + " is a file",
        ),
        (
            {"model_name_or_path": "./no/such/model", "output_dir": str(tmp_path / "r")},
            "model_name_or_path: no such folder",
        ),
        ({"output_dir": str(tmp_path / "r"), "resume_from_checkpoint": True}, "holds no checkpoint"),
        ({"output_dir": str(tmp_path / "r"), "eval_datasets": ["held_out/missing.jsonl"]}, "no such file"),
    ]
    for overrides, message in cases:
        recipe = orsta_trl.load_recipe(None, **{**base, **overrides})
        with pytest.raises((RecipeError, DataError)) as error:
            orsta_trl.build_trainer(recipe)
        assert message in str(error.value), str(error.value)
    assert (
        orsta_trl.load_recipe(None, **base, resume_from_checkpoint=True).grpo.resume_from_checkpoint is True
    )


def test_a_decreasing_iou_schedule_is_warned_about():
    with pytest.warns(
        UserWarning, match=r"iou_schedule: the IoU threshold decreases over training \(0.95 -> 0.85\)"
    ):
        orsta_trl.load_recipe(None, iou_schedule=[[0.0, 0.95], [0.5, 0.85]], use_cpu=True, bf16=False)


def test_worker_processes_leave_no_traceback_when_replaced_or_closed():
    code = (
        "from orsta_trl.rewards.pool import Task, WorkerPool\n"
        "pool = WorkerPool(timeout_s=0.5, workers=2)\n"
        "jobs = [Task('math', ('3', r'\\boxed{9^{9^{9^{9^9}}}}')), Task('math', ('3', r'\\boxed{6/2}'))]\n"
        "print(pool.map(jobs), pool.replaced)\n"
        "pool.close()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["['timeout',", "True]", "1"]
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr


def test_invalid_utf8_names_the_line(tmp_path):
    good = json.dumps(record()) + "\n"
    data = tmp_path / "data.jsonl"
    data.write_bytes(good.encode() + b'{"id": "\xff\xfe"}\n')
    with pytest.raises(DataError, match=r"data.jsonl:2.*not valid UTF-8"):
        orsta_trl.load_records(data)
    completions = tmp_path / "c.jsonl"
    completions.write_bytes(b'{"id": "r1", "data_source": "bad", "completion": "\xff"}\n')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "orsta_trl.cli",
            "score",
            str(write(tmp_path / "ok", [record()])),
            str(completions),
            "-o",
            str(tmp_path / "o.jsonl"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "c.jsonl:1: not valid UTF-8" in result.stderr, result.stderr
