"""The trainer's seams: left padding, frozen vision, pixel bounds (one source of truth), the prompt-length
filter, and placeholder tokens kept out of completions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from orsta_trl.data.records import load_records
from orsta_trl.data.rows import filter_long_prompts, prompt_length, to_trl_dataset
from orsta_trl.models.loading import (
    freeze_vision,
    load_model,
    load_processor,
    model_view,
    parameter_counts,
    set_pixel_bounds,
)
from orsta_trl.models.tokens import drop_placeholders, placeholder_ids, stop_ids


def image_records(folder, sizes):
    rows = []
    for i, (w, h) in enumerate(sizes):
        Image.new("RGB", (w, h), "white").save(folder / f"{i}.png")
        rows.append(
            {
                "id": str(i),
                "data_source": "toy",
                "images": [f"{i}.png"],
                "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi?"}]}],
                "reward": {"verifier": "ocr", "ground_truth": "x"},
            }
        )
    (folder / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return load_records(folder / "d.jsonl")


def test_pixel_bounds_reach_the_processor_and_the_vllm_view(tiny_vl, tmp_path):
    processor = load_processor(str(tiny_vl), min_pixels=3136, max_pixels=3136 * 4)
    assert processor.image_processor.size["longest_edge"] == 3136 * 4
    assert processor.tokenizer.padding_side == "left"
    before = {p.name: p.read_bytes() for p in tiny_vl.iterdir() if p.is_file()}
    view = model_view(str(tiny_vl), processor, tmp_path / "view")
    view = model_view(str(tiny_vl), processor, tmp_path / "view")  # rebuilt on the next run
    assert (view / "model.safetensors").is_symlink()
    assert not (view / "processor_config.json").is_symlink() and not (view / "tokenizer.json").is_symlink()
    assert {p.name: p.read_bytes() for p in tiny_vl.iterdir() if p.is_file()} == before  # source untouched
    with pytest.raises(FileExistsError):
        model_view(str(tiny_vl), processor, tiny_vl)  # never overwrite a folder that is not a view
    reloaded = load_processor(str(view))  # what colocated vLLM would read
    assert reloaded.image_processor.size["shortest_edge"] == 3136
    assert reloaded.image_processor.size["longest_edge"] == 3136 * 4
    image = Image.new("RGB", (400, 300))
    grids = [p.image_processor(images=[image])["image_grid_thw"].tolist() for p in (processor, reloaded)]
    assert grids[0] == grids[1]
    assert grids[0][0][1] * grids[0][0][2] * 196 <= 3136 * 4  # resized within the recipe's bound
    # a fresh size dict each time: the class default is never mutated
    set_pixel_bounds(processor, 784, 1568)
    assert type(processor.image_processor)().size["longest_edge"] != 1568


def test_prompt_length_counts_image_tokens_exactly(tiny_vl, tmp_path):
    processor = load_processor(str(tiny_vl), min_pixels=3136, max_pixels=50176)
    records = image_records(tmp_path, [(56, 56), (224, 168), (300, 200)])
    for record in records:
        image = Image.open(record.images[0])
        messages = [
            {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "Hi?"}]}
        ]
        actual = processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        assert prompt_length(record, processor) == len(actual["input_ids"][0])
    limit = prompt_length(records[1], processor)
    kept, dropped = filter_long_prompts(records, processor, limit)
    assert [r.id for r in kept] == ["0", "1"] and dropped == {"toy": 1}


def test_rows_carry_prompt_images_and_reward_keys(tiny_vl, tmp_path):
    records = image_records(tmp_path, [(56, 56), (84, 56)])
    dataset = to_trl_dataset(records, vision=True)
    row = dataset[1]
    assert (row["data_source"], row["id"]) == ("toy", "1")
    assert row["images"][0].size == (84, 56)
    assert row["prompt"][0]["content"][0]["type"] == "image"


def test_vision_freezing_and_counts(tiny_vl):
    model = load_model(str(tiny_vl), vision=True, dtype="float32")
    before = parameter_counts(model)
    assert before["vision_trainable"] == before["vision"] > 0
    frozen = freeze_vision(model, freeze_merger=False)
    after = parameter_counts(model)
    merger = sum(p.numel() for p in model.model.visual.merger.parameters())
    assert frozen == before["vision"] - merger
    assert after["vision_trainable"] == merger
    freeze_vision(model)
    assert parameter_counts(model)["vision_trainable"] == 0
    assert parameter_counts(model)["trainable"] == before["total"] - before["vision"]


def test_placeholders_are_dropped_with_their_logprobs():
    ids, logprobs, dropped = drop_placeholders(
        [[1, 998, 2], [999, 999], [3]], [[-1.0, -2.0, -3.0], [-4.0, -5.0], [-6.0]], [998, 999], 7
    )
    assert ids == [[1, 2], [7], [3]] and logprobs == [[-1.0, -3.0], [None], [-6.0]] and dropped == 3
    assert drop_placeholders([[1, 2]], None, [9], 7) == ([[1, 2]], None, 0)


def qwen25_vl_tokenizer():
    """A tokenizer with Qwen2.5-VL's real special-token ids (151643 ...), built offline: filler ids below them."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from orsta_trl.models.tiny import SPECIAL_TOKENS

    vocab = {f"t{i}": i for i in range(151643)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="t0"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend)
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS)})  # in Qwen's order
    tokenizer.eos_token, tokenizer.pad_token = "<|im_end|>", "<|endoftext|>"
    return tokenizer


def test_qwen25_vl_real_ids_placeholders_dropped_never_become_a_stop():
    """Qwen2.5-VL-Instruct: eos <|im_end|> 151645, pad <|endoftext|> 151643, generation_config eos [151645, 151643],
    placeholders 151654-151656. The pad token is a stop token, so it cannot stand in for a placeholder."""
    tokenizer = qwen25_vl_tokenizer()
    ids = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>", "<|vision_pad|>", "<|image_pad|>"])
    assert ids == [151643, 151645, 151654, 151655]
    assert placeholder_ids(tokenizer) == [151654, 151655, 151656]
    stops = stop_ids(tokenizer, [151645, 151643])
    assert tokenizer.pad_token_id in stops  # why replacing by pad cut completions short
    completion = [17, 151655, 18, 151656, 19, 151645]
    kept, _, dropped = drop_placeholders([completion], None, placeholder_ids(tokenizer), 151645)
    assert kept == [[17, 18, 19, 151645]] and dropped == 2
    assert not stops & set(kept[0][:-1])  # the only stop token is the one the model sampled last


def test_trainer_forces_left_padding_and_drops_placeholders_from_generations(tiny_vl, tmp_path, monkeypatch):
    from trl import GRPOTrainer

    from orsta_trl.recipe import load_recipe
    from orsta_trl.rewards.router import RewardRouter
    from orsta_trl.trainer import OrstaGRPOTrainer

    records = image_records(tmp_path, [(56, 56), (84, 56)])
    processor = load_processor(str(tiny_vl))
    processor.tokenizer.padding_side = "right"
    recipe = load_recipe(
        None,
        {
            "output_dir": str(tmp_path / "run"),
            "use_cpu": True,
            "bf16": False,
            "num_generations": 2,
            "per_device_train_batch_size": 2,
            "report_to": [],
        },
    )
    trainer = OrstaGRPOTrainer(
        model=load_model(str(tiny_vl), vision=True),
        args=recipe.grpo,
        train_dataset=to_trl_dataset(records, vision=True),
        processing_class=processor,
        router=RewardRouter(records),
        orsta=recipe.orsta,
    )
    assert trainer.processing_class.tokenizer.padding_side == "left"
    assert trainer.parameter_counts["vision_trainable"] == 0
    assert trainer._placeholder_ids == sorted(
        processor.tokenizer.convert_tokens_to_ids(["<|image_pad|>", "<|video_pad|>", "<|vision_pad|>"])
    )
    # the seam: what TRL's generation returns (vLLM's path returns sampling logprobs, which cannot run here: the
    # parent's method is replaced by one returning such a pair) reaches the training forward without placeholders,
    # and the logprobs lose the same positions
    image_pad = trainer._placeholder_ids[0]
    generated = ([[17, image_pad, 18, trainer.eos_token_ids[0]]], [[-0.1, -0.2, -0.3, -0.4]])
    monkeypatch.setattr(GRPOTrainer, "_generate_single_turn", lambda self, *args: generated)
    trainer.model.train()  # as in a training step: the count goes to the training metrics
    ids, logprobs = trainer._generate_single_turn([[1, 2]], None, {}, 1)
    assert ids == [[17, 18, trainer.eos_token_ids[0]]] and logprobs == [[-0.1, -0.3, -0.4]]
    assert trainer._metrics["train"]["completions/placeholders_dropped"] == [1.0]


@pytest.mark.parametrize("bad", ["x", "--", "--=3", "-lr"])
def test_parse_overrides_rejects_bad_tokens(bad):
    from orsta_trl.recipe import RecipeError, parse_overrides

    with pytest.raises(RecipeError, match=repr(bad)):
        parse_overrides([bad])


def test_a_bare_flag_is_true_and_an_unknown_one_is_rejected_by_the_recipe():
    from orsta_trl.recipe import RecipeError, load_recipe, parse_overrides

    assert parse_overrides(["--bogus"]) == {"bogus": True}
    with pytest.raises(RecipeError, match="unknown recipe key 'bogus'"):
        load_recipe(None, ["--bogus"])


def test_build_trainer_checks_verifiers_and_plans_sampling_once(tiny_vl, synth_data, tmp_path, monkeypatch):
    """The phases of build_trainer run each check once: verifiers are checked ready with the records (before the
    model loads), the sampling plan is made on the rows that fit; the evaluator is handed to the trainer."""
    import orsta_trl
    import orsta_trl.data.sampling as sampling
    import orsta_trl.rewards.router as router_module
    from orsta_trl.evaluation import Scorer

    calls = {"ready": 0, "plan": 0}
    ready, plan = router_module.check_ready, sampling.sampling_plan

    def counted_ready(*args, **kwargs):
        calls["ready"] += 1
        return ready(*args, **kwargs)

    def counted_plan(*args, **kwargs):
        calls["plan"] += 1
        return plan(*args, **kwargs)

    monkeypatch.setattr(router_module, "check_ready", counted_ready)
    monkeypatch.setattr(sampling, "sampling_plan", counted_plan)
    recipe = orsta_trl.load_recipe(
        None,
        model_name_or_path=str(tiny_vl),
        datasets=[{"path": str(synth_data), "weight": 1.0}],
        eval_datasets=[str(synth_data)],
        eval_max_samples=1,
        output_dir=str(tmp_path / "run"),
        use_cpu=True,
        bf16=False,
        report_to=[],
        max_prompt_length=100_000,
    )
    trainer = orsta_trl.build_trainer(recipe)
    trainer.router.close()
    assert calls == {"ready": 1, "plan": 1}
    assert trainer.sampling.active and set(trainer.sampling.weights) == {
        (r.data_source, r.id) for r in trainer.router.records.values()
    }
    assert isinstance(trainer.evaluator, Scorer) and trainer.evaluator.router is trainer.router
    assert trainer.eval_records
    import ast

    import orsta_trl.trainer

    tree = ast.parse(Path(orsta_trl.trainer.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and m.startswith("orsta_trl.evaluation") for m in imported)  # handed, not imported
