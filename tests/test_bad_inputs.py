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


def without(row: dict, *path: str) -> dict:
    row = json.loads(json.dumps(row))
    holder = row
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]
    return row


def unreadable_png(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "text.png").write_text("this is not an image")
    return "text.png"


BAD_DATA = {
    # the record itself
    "missing prompt": (lambda d: [without(record(), "prompt")], ["field 'prompt'"]),
    "missing ground truth": (
        lambda d: [without(record(), "reward", "ground_truth")],
        ["reward.ground_truth"],
    ),
    "unknown record field": (
        lambda d: [{**record(), "prmpt": "x"}],
        ["field 'prmpt'", "did you mean 'prompt'"],
    ),
    "id not a string": (lambda d: [{**record(), "id": ["r1"]}], ["field 'id'", "non-empty string"]),
    "duplicate id": (lambda d: [record(), record()], ["field 'id'", "duplicate id"]),
    # the reward
    "unknown verifier": (lambda d: [record(verifier="mathh")], ["reward.verifier", "did you mean 'math'"]),
    "unknown param": (
        lambda d: [record(params={"modee": "ned"})],
        ["reward.params.modee", "did you mean 'mode'"],
    ),
    "bad param value": (lambda d: [record(params={"mode": "fuzzy"})], ["reward.params.mode", "'fuzzy'"]),
    "all-zero weights": (
        lambda d: [record(accuracy_weight=0, format_weight=0)],
        ["reward.accuracy_weight", "all weights are zero"],
    ),
    "negative weight": (lambda d: [record(accuracy_weight=-1)], ["reward.accuracy_weight"]),
    "unknown extra weight": (lambda d: [record(extra_weights={"edit": 1})], ["reward.extra_weights.edit"]),
    # a wrong ground-truth type, per verifier
    "math: a list": (lambda d: [record(verifier="math", gt=[1, 2])], ["reward.ground_truth", "math needs"]),
    "count: a word": (
        lambda d: [record(verifier="count", gt="three")],
        ["reward.ground_truth", "an integer"],
    ),
    "ocr: a number": (
        lambda d: [record(gt=3.10)],
        ["reward.ground_truth", "ocr needs the text as a string", "quote it"],
    ),
    "detection: a string": (
        lambda d: [record(verifier="detection", gt="cat", images=[blank_png(d)])],
        ["reward.ground_truth", "list of boxes"],
    ),
    "docparse: a number": (
        lambda d: [record(verifier="docparse", gt=5)],
        ["reward.ground_truth", "Markdown"],
    ),
    "rewrite: a number": (lambda d: [record(verifier="rewrite", gt=5)], ["reward.ground_truth", "query"]),
    "plan: not JSON": (
        lambda d: [record(verifier="plan", gt="x")],
        ["reward.ground_truth", "not valid JSON"],
    ),
    "json: a bad schema": (
        lambda d: [record(verifier="json", gt=None, params={"schema": {"type": 5}})],
        ["reward.params.schema", "invalid JSON Schema"],
    ),
    "tool: unknown answer verifier": (
        lambda d: [record(verifier="tool", gt="4", params={"answer_verifier": "mathh"})],
        ["reward.params.answer_verifier", "did you mean 'math'"],
    ),
    # images
    "missing image": (lambda d: [record(images=["nope.png"])], ["images[0]", "nope.png"]),
    "unreadable image": (lambda d: [record(images=[unreadable_png(d)])], ["images[0]", "cannot read image"]),
    "truncated image": (
        lambda d: [record(images=[truncated_png(d)])],
        ["images[0]", "cannot read image", "truncated"],
    ),
    "placeholders and images differ": (
        lambda d: [{**record(images=[blank_png(d)]), "prompt": [{"role": "user", "content": "no image"}]}],
        ["field 'images'", "1 image(s) but 0"],
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
}


def slug(case: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in case)


def test_every_bad_record_kind_is_rejected_by_check_data_and_by_training(tmp_path, poisoned_model):
    """One file per kind (its own data_source); one ``check-data`` over all of them, then training on each."""
    files = {}
    for case, (build, _) in BAD_DATA.items():
        folder = tmp_path / slug(case)
        files[case] = write(folder, [{**row, "data_source": slug(case)} for row in build(folder)])
    check = subprocess.run(
        [sys.executable, "-m", "orsta_trl.cli", "check-data", *map(str, files.values())],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 1
    table = ["| kind | message |", "|---|---|"]
    for case, (_, needles) in BAD_DATA.items():
        lines = [line for line in check.stderr.splitlines() if line.startswith(f"{files[case]}:")]
        assert len(lines) == 1, (case, check.stderr)
        for needle in needles + [f"source '{slug(case)}'", "record ", "'r1'"]:
            assert needle in lines[0], (case, needle, lines[0])
        recipe = orsta_trl.load_recipe(
            None,
            model_name_or_path=str(poisoned_model),
            train_files=[str(files[case])],
            output_dir=str(tmp_path / "run"),
            use_cpu=True,
            bf16=False,
        )
        with pytest.raises(DataError) as error:
            orsta_trl.build_trainer(recipe)
        assert all(needle in str(error.value) for needle in needles), (case, str(error.value))
        table.append(f"| {case} | `{lines[0].split(': ', 1)[1]}` |")
    print("\n".join(table))  # the table of the note: pytest -s -k every_bad_record


def test_skip_invalid_trains_on_the_valid_records_and_reports_the_rest(tmp_path, capsys, tiny_vl):
    from orsta_trl.data.records import split_records

    folder = tmp_path / "data"
    good = [record(rid=f"g{i}") for i in range(3)]
    bad = [
        record(rid="b1", params={"mode": "fuzzy"}),
        record(rid="g0"),
        record(rid="b2", images=["nope.png"]),
    ]
    data = write(folder, [good[0], bad[0], good[1], bad[1], good[2], bad[2]])
    records, errors = split_records([data])
    assert [r.id for r in records] == ["g0", "g1", "g2"]  # none of the valid ones lost, in order
    assert [(e.record_id, e.field) for e in errors] == [
        ("b1", "reward.params.mode"),
        ("g0", "id"),
        ("b2", "images[0]"),
    ]
    check = subprocess.run(
        [sys.executable, "-m", "orsta_trl.cli", "check-data", str(data)], capture_output=True, text=True
    )
    assert check.returncode == 1 and "3 invalid record(s)" in check.stderr
    skipping = subprocess.run(
        [sys.executable, "-m", "orsta_trl.cli", "check-data", "--skip-invalid", str(data)],
        capture_output=True,
        text=True,
    )
    assert skipping.returncode == 0, skipping.stderr
    assert "skipped 3 invalid record(s)" in skipping.stderr
    assert "bad: 3 skipped (reward.params.mode: 1, id: 1, images[0]: 1)" in skipping.stderr
    assert "3 valid record(s) in 1 source(s)" in skipping.stdout
    # training with skip_invalid: the valid records reach the trainer, the skipped ones are reported
    trainer = orsta_trl.build_trainer(
        orsta_trl.load_recipe(
            None,
            model_name_or_path=str(tiny_vl),
            train_files=[str(data)],
            output_dir=str(tmp_path / "run"),
            skip_invalid=True,
            use_cpu=True,
            bf16=False,
            report_to=[],
        )
    )
    trainer.router.close()
    assert sorted(trainer.train_dataset["id"]) == ["g0", "g1", "g2"]
    assert [e.record_id for e in trainer.skipped] == ["b1", "g0", "b2"]
    out = capsys.readouterr().out
    assert "skip_invalid: skipped 3 invalid training record(s), kept 3" in out
    assert "bad: 3 skipped (reward.params.mode: 1, id: 1, images[0]: 1)" in out


def test_parquet_struct_rewards_with_different_params_per_row(tmp_path):
    """Parquet fills the params a row lacks with null: they read as absent (the default), not as 'got None'."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from orsta_trl.data.records import load_records

    rows = [
        record(rid="a", params={"mode": "ned"}),
        record(rid="b", params={"case_sensitive": True}),
        record(rid="c", accuracy_weight=2.0),
        record(rid="d", gt="x", format_weight=0.5),
    ]
    path = tmp_path / "mixed.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert (
        pq.read_table(path).to_pylist()[0]["reward"]["params"]["case_sensitive"] is None
    )  # what Parquet does
    loaded = {r.id: r for r in load_records(path)}
    assert loaded["a"].reward.params.mode == "ned" and loaded["b"].reward.params.mode == "exact"
    assert (
        loaded["b"].reward.params.case_sensitive is True and loaded["a"].reward.params.case_sensitive is False
    )
    assert loaded["c"].reward.accuracy_weight == 2.0 and loaded["a"].reward.accuracy_weight == 1.0
    assert loaded["a"].reward.format_weight == 0.0 and loaded["d"].reward.format_weight == 0.5
    # a real error in such a file still names the row and the field
    pq.write_table(pa.Table.from_pylist([*rows, record(rid="e", params={"mode": "fuzzy"})]), path)
    with pytest.raises(
        DataError, match=r"mixed.parquet\[4\]: source 'bad', record 'e', field 'reward.params.mode'"
    ):
        load_records(path)


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


#: values that transformers or TRL would reject only after the model loaded, or never (recipe/checks.py), and
#: the enumerations transformers types as Enums (rejected when the config is built)
LATE_RECIPE_VALUES = {
    "loss_type": ("dapoo", "loss_type: 'dapoo' is not one of [", "did you mean 'dapo'"),
    "vllm_mode": ("colocated", "did you mean 'colocate'"),
    "max_steps": (0, "max_steps: 0 trains nothing; give a positive number, or -1 to use epochs"),
    "max_steps ": (True, "max_steps: expected int, got True"),
    "report_to": (["tensorbord"], "did you mean 'tensorboard'"),
    "lr_scheduler_type": ("cosine_with_warmup", "is not a valid SchedulerType"),
    "optim": ("adamw_torchh", "is not a valid OptimizerNames"),
    "save_strategy": ("step", "is not a valid SaveStrategy"),
    "eval_strategy": ("step", "is not a valid IntervalStrategy"),
    "logging_strategy": ("epochs", "is not a valid IntervalStrategy"),
    "num_generations": (3, "must be divisible by num_generations (3)"),
    "scale_rewards": ("groupp", "did you mean 'group'"),
    "torch_compile_mode": ("fast", "is not one of ['default'"),
    "ddp_backend": ("glo", "did you mean 'gloo'"),
    "dtype": ("float31", "did you mean 'float32'"),
    "attn_implementation": ("sdpaa", "did you mean 'sdpa'"),
    "learning_rate": (-1e-6, "give a number >= 0"),
    "temperature": (0, "give a number > 0"),
    "top_p": (1.5, "give a number in (0, 1]"),
    "beta": (-0.1, "give a number >= 0"),
    "gradient_accumulation_steps": (0, "give an integer >= 1"),
    "max_completion_length": (0, "give an integer >= 1"),
    "save_steps": (0, "give a number > 0"),
    "logging_steps": (-1, "give a number > 0"),
    "save_total_limit": (-3, "give an integer >= 1"),
    "num_iterations": (0, "give an integer >= 1"),
    "vllm_gpu_memory_utilization": (1.5, "give a share in (0, 1]"),
    "seed": (-1, "give an integer in [0, 2**32)"),
}


def test_bad_recipe_values_fail_in_check_recipe_and_when_the_recipe_loads(tmp_path):
    """One recipe per bad value (a key with a trailing space: a second case of that key)."""
    paths = {}
    for case, (value, *needles) in LATE_RECIPE_VALUES.items():
        key = case.strip()
        paths[case] = path = tmp_path / f"{slug(case)}.yaml"
        path.write_text(
            f"model_name_or_path: m\ntrain_files: [x.jsonl]\nbf16: false\n{key}: {json.dumps(value)}\n"
        )
        with pytest.raises(RecipeError) as error:
            orsta_trl.load_recipe(path)
        message = str(error.value)
        assert str(path) in message and all(n in message for n in needles), (case, message)
    check = subprocess.run(
        [sys.executable, "-m", "orsta_trl.cli", "check-recipe", *map(str, paths.values())],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert check.returncode == 1
    failures = [line for line in check.stderr.splitlines() if line.startswith("FAIL ")]
    assert len(failures) == len(LATE_RECIPE_VALUES), check.stderr
    table = ["| key | value | message |", "|---|---|---|"]
    for case, (value, *needles) in LATE_RECIPE_VALUES.items():
        line = next((line for line in failures if f"{paths[case]}:" in line), "")
        assert all(n in line for n in needles), (case, check.stderr)
        table.append(f"| `{case.strip()}` | `{json.dumps(value)}` | `{line.split(': ', 1)[1][:160]}` |")
    print("\n".join(table))  # the table of the note: pytest -s -k bad_recipe_values
    # the shipped recipes stay valid (tests/test_recipe.py checks each in full)
    assert orsta_trl.load_recipe(REPO / "recipes/tiny_cpu.yaml").grpo.learning_rate > 0


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
        ({"output_dir": str(tmp_path / "r"), "resume_from_checkpoint": True}, "holds no complete checkpoint"),
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
