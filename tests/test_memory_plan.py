"""``orsta-trl plan``: parameter counts against the published sizes, every shipped recipe, JSON, fixes."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from conftest import REPO

from orsta_trl.cli import build_parser, exit_on_error
from orsta_trl.memory_plan import model_sizes, plan_recipe
from orsta_trl.models.known_configs import KNOWN
from orsta_trl.recipe import load_recipe

RECIPES = sorted((REPO / "recipes").glob("*.yaml"))


def run_cli(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return exit_on_error(lambda: args.func(args))


@pytest.mark.parametrize(
    ("name", "billions", "vision"),
    [
        # the hub's safetensors parameter counts of each model card
        ("Qwen/Qwen2.5-VL-7B-Instruct", 8.29, 0.68),
        ("Qwen/Qwen2.5-VL-3B-Instruct", 3.75, 0.67),
        ("Qwen/Qwen2.5-VL-72B-Instruct", 73.4, 0.70),
        ("Qwen/Qwen2.5-7B-Instruct", 7.62, 0.0),
        ("Qwen/Qwen2.5-1.5B", 1.54, 0.0),
    ],
)
def test_counts_of_the_shipped_configurations_match_the_published_sizes(name, billions, vision):
    sizes = model_sizes(name)
    assert sizes.total / 1e9 == pytest.approx(billions, abs=0.006 * billions)
    assert sizes.vision / 1e9 == pytest.approx(vision, abs=0.01)


def test_a_local_folder_counts_as_the_real_model(tiny_vl):
    from orsta_trl.models.loading import load_model

    model = load_model(str(tiny_vl), vision=True)
    sizes = model_sizes(str(tiny_vl), lora_r=4, lora_targets=["q_proj"])
    assert sizes.total == sum(p.numel() for p in model.parameters())
    assert sizes.vision == sum(p.numel() for p in model.model.visual.parameters())
    q = [m for n, m in model.named_modules() if n.endswith("q_proj") and "visual" not in n]
    assert q and sizes.lora == sum(4 * (m.in_features + m.out_features) for m in q)


def test_lora_counts_follow_what_training_adapts(tiny_vl):
    """No targets: the projections training adapts (models/lora.py); all-linear: every language linear layer
    but the head. Counted against the modules themselves."""
    from orsta_trl.models.loading import load_model
    from orsta_trl.models.lora import PROJECTIONS

    model = load_model(str(tiny_vl), vision=True)
    language = [
        (n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and "visual" not in n
    ]

    def count(names):
        return sum(4 * (m.in_features + m.out_features) for n, m in language if n.split(".")[-1] in names)

    assert model_sizes(str(tiny_vl), lora_r=4).lora == count(PROJECTIONS) > 0
    every = {n.split(".")[-1] for n, _ in language} - {"lm_head"}
    assert (
        model_sizes(str(tiny_vl), lora_r=4, lora_targets=["all-linear"]).lora
        == count(every)
        >= count(PROJECTIONS)
    )


def test_plan_prints_a_table_for_every_shipped_recipe(tiny_vl, tmp_path, monkeypatch, capsys):
    (tmp_path / "demo").mkdir()
    # the CPU recipes' models, as `make demo` builds them (the tiny model and its warmed-up copies: one architecture)
    for model in {yaml.safe_load(p.read_text()).get("model_name_or_path", "") for p in RECIPES}:
        if str(model).startswith("demo/"):
            (tmp_path / model).symlink_to(tiny_vl)
    monkeypatch.chdir(tmp_path)
    assert len(RECIPES) >= 4
    assert run_cli(["plan", *map(str, RECIPES)]) == 0
    out = capsys.readouterr().out
    for path in RECIPES:
        assert f"{path}:" in out
    assert out.count("verdict:") == len(RECIPES)
    assert (
        run_cli(["plan", str(REPO / "recipes/det_7b.yaml"), "--gpus", "1", "--gpu-memory", "24", "--json"])
        == 0
    )
    plan = json.loads(capsys.readouterr().out)
    assert plan["fits"] is False and plan["fix"]
    assert len(plan["rows"]) == 8 and sum(r["recipe"] for r in plan["rows"]) == 2


def test_scenarios_move_memory_the_right_way():
    plan = plan_recipe(load_recipe(REPO / "recipes/det_7b.yaml", check=True), gpus=8, gpu_gib=80)
    rows = {(r["zero"], r["lora"], r["vision_frozen"]): r for r in plan["rows"]}
    assert plan["model"]["total"] / 1e9 == pytest.approx(8.29, abs=0.01)
    assert plan["fits"] is True and plan["fix"] is None
    # ZeRO-3: a shard of the weights, plus the largest module (the embedding) gathered with its gradient
    gathered = 2 * 2 * plan["model"]["largest_layer"] / 1024**3
    assert plan["model"]["largest_layer"] == 152064 * 3584
    assert rows[3, False, True]["weights"] == pytest.approx(rows[2, False, True]["weights"] / 8 + gathered)
    assert rows[2, True, True]["optimizer"] < 0.01 * rows[2, False, True]["optimizer"]
    assert rows[2, False, False]["optimizer"] > rows[2, False, True]["optimizer"]  # the tower trains too
    assert rows[2, False, False]["activations"] > rows[2, False, True]["activations"]
    # 8.29 B parameters: 16 bytes of AdamW state and fp32 gradient each, over 8 GPUs, minus the frozen tower
    trainable = plan["model"]["total"] - plan["model"]["vision"]  # freeze_merger: true
    assert rows[2, False, True]["optimizer"] == pytest.approx(trainable * 16 / 8 / 1024**3, rel=1e-6)
    small = plan_recipe(load_recipe(REPO / "recipes/det_7b.yaml", check=True), gpus=2, gpu_gib=80)
    assert small["fits"] is False and "LoRA" in small["fix"]


def test_an_unknown_hub_model_is_an_error_naming_the_key(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model_name_or_path: someone/unknown-model\n")
    assert run_cli(["plan", str(recipe)]) == 1
    err = capsys.readouterr().err
    assert "model_name_or_path" in err and "unknown-model" in err and "qwen2.5-vl-7b" in err


@pytest.mark.parametrize("key", sorted(KNOWN))
def test_model_states_against_deepspeeds_own_estimators(key):
    """Every shipped size, the estimators' assumptions (all trained, bf16, no offload, 8 GPUs): ZeRO-2 equal;
    ZeRO-3 above DeepSpeed by exactly the 2 bytes per parameter (sharded) its 18-byte figure leaves out of the
    20 its ZeRO-2 estimate itemises (16-bit weights and gradients, fp32 weights, gradients, two moments)."""
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    from memory_plan_vs_deepspeed import compare

    from orsta_trl.memory_plan import GIB

    r = compare(key, gpus=8)
    assert r["largest_layer"] >= 151936 * 1536  # the embedding (or output head), gathered whole by ZeRO-3
    assert r["plan2"] == pytest.approx(r["ds2"], rel=1e-6)
    assert r["plan3"] == pytest.approx(r["ds3"] + 2 * r["params"] / 8 / GIB, rel=1e-6)
    assert r["plan3"] == pytest.approx(r["ds3"], rel=0.12)
