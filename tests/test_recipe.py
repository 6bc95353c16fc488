"""Recipes: every shipped recipe validates; unknown keys and bad values fail with the key and the nearest one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orsta_trl.recipe import RecipeError, load_recipe, parse_overrides

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))


def test_there_are_recipes():
    assert {p.name for p in RECIPES} >= {"det_7b.yaml", "orsta_7b.yaml", "tiny_cpu.yaml"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipe_validates(path):
    recipe = load_recipe(path, check=True)
    raw = yaml.safe_load(path.read_text())
    assert recipe.model.model_name_or_path == raw["model_name_or_path"]
    assert recipe.orsta.train_files == raw["train_files"]
    assert recipe.grpo.learning_rate == pytest.approx(float(raw["learning_rate"]))
    assert recipe.grpo.bf16 is raw.get("bf16", True)  # TRL's default is bf16=True; check mode restores it


def test_orsta_7b_has_the_paper_settings():
    recipe = load_recipe(REPO / "recipes/orsta_7b.yaml", check=True)
    g, o = recipe.grpo, recipe.orsta
    assert (g.num_generations, g.learning_rate, g.epsilon, g.epsilon_high) == (8, 1e-6, 0.2, 0.28)
    assert (g.max_completion_length, g.beta, g.lr_scheduler_type.value) == (2048, 0.0, "constant_with_warmup")
    assert g.warmup_steps == 0.05 and o.freeze_vision and len(o.train_files) == 8
    assert g.bf16 and g.use_vllm and g.vllm_mode == "colocate"


def test_accelerate_configs_name_deepspeed():
    for stage in (2, 3):
        config = yaml.safe_load((REPO / f"recipes/accelerate/zero{stage}.yaml").read_text())
        assert config["distributed_type"] == "DEEPSPEED"
        assert config["deepspeed_config"]["zero_stage"] == stage
        assert (config["num_processes"], config["mixed_precision"]) == (8, "bf16")


def test_unknown_key_names_the_nearest(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model_name_or_path: m\nlearning_rat: 1.0e-6\n")
    with pytest.raises(RecipeError, match=r"'learning_rat' \(did you mean 'learning_rate'\?\)"):
        load_recipe(path)
    with pytest.raises(RecipeError, match="did you mean 'freeze_vision'"):
        load_recipe(None, {"freeze_visoin": True})


def test_every_problem_is_reported_at_once(tmp_path):
    """One bad key per section and an unknown key: one error names them all, each with its key."""
    path = tmp_path / "r.yaml"
    path.write_text(
        "model_name_or_path: m\nbf16: false\nlearning_rat: 1.0e-6\nloss_type: dapoo\ntop_p: 1.5\n"
        "max_steps: true\ndump_format: csv\ncurriculum: easy_first\nmin_pixels: 9000\nmax_pixels: 100\n"
        "judge_failure: ignore\nwarmup_sft_template: no answer\ntool_timeout_s: -1\n"
        "eval_iou_threshold: 2.0\n"
    )
    with pytest.raises(RecipeError) as error:
        load_recipe(path)
    message = str(error.value)
    needles = [
        "'learning_rat' (did you mean 'learning_rate'?)",
        "loss_type: 'dapoo' is not one of [",
        "top_p: 1.5 is out of range",
        "max_steps: expected int, got True",
        "dump_format must be 'jsonl' or 'parquet', got 'csv'",
        "curriculum must be 'pass_rate' or null, got 'easy_first'",
        "need 0 < min_pixels <= max_pixels, got 9000 and 100",
        "judge_failure must be 'zero' or 'skip', got 'ignore'",
        "warmup_sft_template must contain {answer}",
        "tool_timeout_s: a positive number of seconds, got -1",
        "eval_iou_threshold must be 'average' or a number in (0, 1], got 2.0",
    ]
    assert message.startswith(f"{path}: {len(needles)} problems:"), message
    lines = message.splitlines()[1:]
    assert len(lines) == len(needles) and all(line.startswith(f"  {path}: ") for line in lines), message
    assert [n for n in needles if not any(n in line for line in lines)] == []


def test_each_key_is_declared_once_and_the_reward_section_is_the_verifiers_settings():
    import dataclasses

    from orsta_trl.recipe import SECTIONS, OrstaConfig, section_of
    from orsta_trl.verifiers.base import RewardSettings

    declared = [f.name for section in SECTIONS for f in dataclasses.fields(section)]
    assert len(declared) == len(set(declared)), "a key in two sections"
    assert sorted(f.name for f in dataclasses.fields(OrstaConfig)) == sorted(declared)
    assert all(f.metadata.get("help") for f in dataclasses.fields(OrstaConfig)), "a key without help"
    reward_keys = {f.name for f in dataclasses.fields(RewardSettings)}
    assert {k for k in declared if section_of(k) is RewardSettings} == reward_keys
    orsta = load_recipe(None, use_cpu=True, bf16=False, min_pixels=1000, iou_schedule=[[0, 0.5]]).orsta
    settings = orsta.reward_settings()
    assert type(settings) is RewardSettings and settings is not orsta
    assert (settings.min_pixels, settings.iou_schedule) == (1000, ((0.0, 0.5),))
    assert {k: getattr(settings, k) for k in reward_keys} == {k: getattr(orsta, k) for k in reward_keys}


def test_overrides_and_types(tmp_path):
    assert parse_overrides(["--learning_rate", "2e-6", "--use_vllm", "false", "--max-steps=3", "--bf16"]) == {
        "learning_rate": "2e-6",
        "use_vllm": False,
        "max_steps": 3,
        "bf16": True,
    }
    recipe = load_recipe(REPO / "recipes/tiny_cpu.yaml", ["--learning_rate", "2e-6", "--max_steps", "7"])
    assert recipe.grpo.learning_rate == 2e-6 and recipe.grpo.max_steps == 7
    with pytest.raises(RecipeError, match="max_steps: expected int"):
        load_recipe(REPO / "recipes/tiny_cpu.yaml", ["--max_steps", "many"])
    with pytest.raises(RecipeError, match="min_pixels"):
        load_recipe(REPO / "recipes/tiny_cpu.yaml", ["--min_pixels", "9000", "--max_pixels", "100"])
    with pytest.raises(RecipeError, match="IoU schedule"):
        load_recipe(REPO / "recipes/tiny_cpu.yaml", ["--iou_schedule", "[[0.5, 0.9], [0.1, 0.95]]"])


def test_entry_point_reports_a_bad_key(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model_name_or_path: m\ntrain_file: [x.jsonl]\n")
    result = subprocess.run(
        [sys.executable, str(REPO / "orsta_trl/train.py"), str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "did you mean 'train_files'" in result.stderr
    check = subprocess.run(  # the shipped recipes name data the user prepares: keys and values only
        [sys.executable, "-m", "orsta_trl.cli", "check-recipe", "--skip-paths", *map(str, RECIPES)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.count("ok ") == len(RECIPES)


def test_check_recipe_checks_local_paths_and_allows_hub_names(tmp_path):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "train.jsonl").write_text("")
    base = "bf16: false\n"
    recipes = {
        "bad.yaml": base
        + "model_name_or_path: ./no/such/model\ntrain_files: [missing.jsonl, org/set:train]\n"
        "eval_datasets: [held_out/missing.jsonl]\noutput_dir: a_file/run\n",
        "hub.yaml": base + "model_name_or_path: Qwen/Qwen2.5-VL-7B-Instruct\ntrain_files: [org/set:train]\n",
        "local.yaml": base + "model_name_or_path: model\ntrain_files: [train.jsonl]\noutput_dir: runs/x\n",
    }
    for name, text in recipes.items():
        (tmp_path / name).write_text(text)
    # with the hub switched off a hub id could only be a missing folder; check-recipe itself never goes online
    online = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    check = subprocess.run(
        [sys.executable, "-m", "orsta_trl.cli", "check-recipe", *recipes],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=online,
    )
    assert check.returncode == 1
    assert (
        check.stdout.count("ok ") == 2
        and "ok   hub.yaml" in check.stdout
        and "ok   local.yaml" in check.stdout
    )
    failure = check.stderr
    assert failure.startswith("FAIL bad.yaml: 4 problems:"), failure
    for needle in (
        "model_name_or_path: no such folder ./no/such/model",
        "train_files: missing.jsonl: no such file",
        "eval_datasets: held_out/missing.jsonl: no such file",
        "output_dir: a_file is a file, so a_file/run cannot be created",
    ):
        assert needle in failure, (needle, failure)
    assert "org/set" not in failure  # a hub dataset name is left to the hub
    shipped = subprocess.run(  # without --skip-paths, a shipped recipe's unprepared data is named
        [sys.executable, "-m", "orsta_trl.cli", "check-recipe", "recipes/det_7b.yaml"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=online,
    )
    assert shipped.returncode == 1 and "train_files: data/det_train.jsonl: no such file" in shipped.stderr
    assert "model_name_or_path" not in shipped.stderr  # Qwen/... is a hub model


@pytest.mark.parametrize(
    "entry", [["-m", "orsta_trl.train"], ["-m", "orsta_trl.cli", "train"]], ids=["module", "cli"]
)
def test_every_entry_point_reads_the_recipe(tmp_path, entry):
    path = tmp_path / "r.yaml"
    path.write_text("model_name_or_path: m\nnum_generatons: 8\n")
    result = subprocess.run([sys.executable, *entry, str(path)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode != 0
    assert "'num_generatons' (did you mean 'num_generations'?)" in result.stderr


def test_multinode_config_and_server_recipe():
    """The multi-node accelerate config reads through accelerate's own loader; the server recipe talks to a
    `trl vllm-serve` whose pixel bounds (given in the recipe's comment) are the recipe's."""
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(REPO / "recipes/accelerate/multinode_zero3.yaml"))
    assert config.distributed_type == "DEEPSPEED" and config.deepspeed_config["zero_stage"] == 3
    assert config.num_machines >= 2 and config.num_processes == 8 * config.num_machines
    assert config.main_process_ip and config.main_process_port and config.machine_rank == 0
    path = REPO / "recipes/det_7b_server.yaml"
    recipe = load_recipe(path, check=True)
    assert recipe.grpo.use_vllm and recipe.grpo.vllm_mode == "server"
    o = recipe.orsta
    assert f'"min_pixels": {o.min_pixels}, "max_pixels": {o.max_pixels}' in path.read_text()


def test_tool_recipes_name_their_tools():
    math = load_recipe(REPO / "recipes/tool_math_3b.yaml", check=True)
    zoom = load_recipe(REPO / "recipes/tool_zoom_7b.yaml", check=True)
    assert math.orsta.tools == ["python"] and math.model.model_name_or_path == "Qwen/Qwen2.5-3B-Instruct"
    assert zoom.orsta.tools == ["crop"] and zoom.model.model_name_or_path == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert math.grpo.max_tool_calling_iterations == 4 and zoom.grpo.max_tool_calling_iterations == 3
