"""Mixtures and the pass_rate curriculum: TRL's RepeatSampler contract kept, weights followed, easy to hard,
an order that depends on (seed, epoch) only; and a real in-process run that logs per-source prompts seen."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import RECIPE
from PIL import Image
from trl.trainer.utils import RepeatSampler

from orsta_trl.data.records import load_records
from orsta_trl.data.sampling import MixtureSampler, sampling_plan
from orsta_trl.errors import DataError


def test_repeat_contract_matches_trl():
    sampler = MixtureSampler(7, mini_repeat_count=2, batch_size=3, repeat_count=2, seed=5)
    sampler.set_epoch(1)
    order = sampler.order(1)
    assert sorted(order) == list(range(7))  # no weights: a permutation
    reference = RepeatSampler(order, mini_repeat_count=2, batch_size=3, repeat_count=2, shuffle=False)
    assert list(sampler) == [order[i] for i in reference]  # TRL's own repetition of the same order
    assert len(sampler) == len(reference)


def test_order_depends_on_seed_and_epoch_only():
    a = MixtureSampler(50, mini_repeat_count=1, seed=3, weights=[1.0] * 50)
    b = MixtureSampler(50, mini_repeat_count=1, seed=3, weights=[1.0] * 50)
    for epoch in (0, 1, 2):  # a walks every epoch; b jumps to epoch 2 as a resumed run does
        a.set_epoch(epoch)
        first = list(a)
    b.set_epoch(2)
    assert list(b) == first
    b.set_epoch(0)
    assert list(b) != first


def test_weights_and_curriculum():
    # file 0 holds 10 records, file 1 holds 90; weights 3:1 -> file 0 gets 3/4 of the draws
    weights = [0.75 / 10] * 10 + [0.25 / 90] * 90
    sampler = MixtureSampler(100, mini_repeat_count=1, seed=0, weights=weights)
    draws = [i for epoch in range(40) for i in sampler.order(epoch)]
    assert sum(i < 10 for i in draws) / len(draws) == pytest.approx(0.75, abs=0.02)
    rates = [(i % 5) / 4 for i in range(20)]
    curriculum = MixtureSampler(20, mini_repeat_count=2, seed=0, pass_rates=rates)
    seen = [rates[i] for i in list(curriculum)[::2]]
    assert seen == sorted(seen, reverse=True)  # easy (high pass rate) first


def dataset(folder: Path, source: str, n: int, rates: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (56, 56), "white").save(folder / "blank.png")
    rows = [
        {"id": f"{source}{i}", "data_source": source, "images": ["blank.png"],
         "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"Say {i}"}]}],
         "reward": {"verifier": "ocr", "ground_truth": str(i), "params": {"mode": "ned"}},
         "extra": {"pass_rate": (i % 4) / 4} if rates else {}}
        for i in range(n)
    ]  # fmt: skip
    path = folder / f"{source}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_plan_rejects_curriculum_without_pass_rate(tmp_path):
    records = load_records(dataset(tmp_path, "raw", 3, rates=False))
    with pytest.raises(DataError, match="extra.pass_rate.*filter difficulty"):
        sampling_plan(records, {}, None, "pass_rate")
    plan = sampling_plan(records, {r.key: 0 for r in records}, [2.0], None)
    assert sum(plan.weights.values()) == pytest.approx(1.0) and plan.pass_rates is None


def test_mixture_with_curriculum_trains_and_logs_seen(tiny_vl, tmp_path):
    import orsta_trl
    from orsta_trl.recipe import load_recipe

    a, b = dataset(tmp_path / "a", "alpha", 4), dataset(tmp_path / "b", "beta", 12)
    recipe = load_recipe(RECIPE, {
        "model_name_or_path": str(tiny_vl), "train_files": [],
        "datasets": [{"path": str(a), "weight": 3.0}, {"path": str(b), "weight": 1.0}],
        "curriculum": "pass_rate", "output_dir": str(tmp_path / "run"), "max_steps": 3,
        "max_completion_length": 4, "num_generations": 2, "per_device_train_batch_size": 4,
        "save_strategy": "no", "report_to": [], "eval_datasets": [], "logging_steps": 1, "dump_completions": 1.0,
    })  # fmt: skip
    assert recipe.orsta.train_files == [str(a), str(b)]
    result = orsta_trl.train(recipe)
    trainer = result.trainer
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, MixtureSampler)
    order = sampler.order(0)
    keys = list(zip(trainer.train_dataset["data_source"], trainer.train_dataset["id"], strict=True))
    rates = [trainer.router.records[k].extra["pass_rate"] for k in keys]
    assert [rates[i] for i in order] == sorted((rates[i] for i in order), reverse=True)
    # the prompts trained on are the sampler's, step by step (2 prompts per step)
    for step in (1, 2, 3):
        dumped = (tmp_path / "run" / "completions" / f"step_{step:07d}.jsonl").read_text().splitlines()
        ids = [json.loads(line)["id"] for line in dumped][::2]  # num_generations = 2 rows per prompt
        assert ids == [keys[i][1] for i in order[2 * (step - 1) : 2 * step]]
    last = [h for h in trainer.state.log_history if "loss" in h][-1]
    seen = {k.removeprefix("data/seen/"): v for k, v in last.items() if k.startswith("data/seen/")}
    expected = Counter(keys[i][0] for i in order[:6])
    assert seen == {s: float(n) for s, n in expected.items()}


def test_mixture_order_survives_a_resume_in_the_second_epoch(tiny_vl, tmp_path):
    import shutil

    import orsta_trl
    from orsta_trl.recipe import load_recipe

    a, b = dataset(tmp_path / "a", "alpha", 2), dataset(tmp_path / "b", "beta", 2)

    def run(out: Path, **extra):
        recipe = load_recipe(RECIPE, {
            "model_name_or_path": str(tiny_vl), "train_files": [], "output_dir": str(out),
            "datasets": [{"path": str(a), "weight": 1.0}, {"path": str(b), "weight": 2.0}], "max_steps": 4,
            "max_completion_length": 2, "num_generations": 2, "per_device_train_batch_size": 4, "save_steps": 3,
            "report_to": [], "eval_datasets": [], "logging_steps": 1, "dump_completions": 1.0, **extra,
        })  # fmt: skip
        return orsta_trl.train(recipe).trainer

    def ids(out: Path, step: int) -> list[str]:
        lines = (out / "completions" / f"step_{step:07d}.jsonl").read_text().splitlines()
        return [json.loads(line)["id"] for line in lines][::2]

    trainer = run(tmp_path / "full")  # 4 records, 2 prompts a step: steps 3 and 4 are the second epoch
    keys = list(zip(trainer.train_dataset["data_source"], trainer.train_dataset["id"], strict=True))
    second = [keys[i][1] for i in trainer._get_train_sampler().order(1)]
    assert ids(tmp_path / "full", 3) + ids(tmp_path / "full", 4) == second
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(
        tmp_path / "full" / "checkpoint-3", resumed / "checkpoint-3"
    )  # as if stopped after step 3
    run(resumed, resume_from_checkpoint=str(resumed / "checkpoint-3"))
    assert ids(resumed, 4) == ids(tmp_path / "full", 4)


def test_curriculum_without_pass_rate_fails_before_the_model_loads(tmp_path, monkeypatch):
    import orsta_trl
    from orsta_trl.models import loading

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(loading, "load_model", no_model)
    monkeypatch.setattr(loading, "load_processor", no_model)
    data = dataset(tmp_path / "d", "raw", 2, rates=False)
    model = tmp_path / "model"  # a model folder to pass the path check (the model itself is never loaded)
    model.mkdir()
    (model / "config.json").write_text("{}")
    recipe = orsta_trl.load_recipe(RECIPE, {"train_files": [str(data)], "curriculum": "pass_rate",
                                            "model_name_or_path": str(model),
                                            "output_dir": str(tmp_path / "run"), "eval_datasets": []})  # fmt: skip
    with pytest.raises(DataError, match="raw0.*extra.pass_rate"):
        orsta_trl.build_trainer(recipe)
