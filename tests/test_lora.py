"""LoRA on the tiny models: default targets, only adapters train, checkpoints hold the adapter, resume, merge."""

from __future__ import annotations

import pytest
import torch
from conftest import RECIPE, ocr_ned_dataset, sevens_dataset

from orsta_trl.errors import MissingFileError, RecipeError


def _adapted(model_path, vision: bool, targets) -> list[str]:
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText
    from trl import ModelConfig

    from orsta_trl.models.lora import lora_config

    cls = AutoModelForImageTextToText if vision else AutoModelForCausalLM
    model = get_peft_model(
        cls.from_pretrained(model_path),
        lora_config(ModelConfig(use_peft=True, lora_target_modules=targets), vision=vision),
    )
    return [n for n, _ in model.named_parameters() if "lora_A" in n]


@pytest.mark.parametrize("targets", [None, "all-linear", ["gate_proj", "up_proj", "down_proj"]])
def test_adapters_go_into_the_language_model_only(tiny_vl, targets):
    names = _adapted(tiny_vl, True, targets)
    assert names and all(".language_model." in n for n in names), names
    # every decoder layer's projections: 7 per layer by default and for all-linear, 3 MLP ones when asked
    assert len(names) == (6 if isinstance(targets, list) else 14)


def test_text_model_defaults_are_the_attention_and_mlp_projections(tiny_lm):
    names = _adapted(tiny_lm, False, None)
    leaves = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n in names}
    assert leaves == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert len(names) == 14


@pytest.fixture(scope="module")
def lora_run(tiny_vl, synth_data, tmp_path_factory):
    """Two LoRA GRPO steps on the tiny VL (checkpoint at each step), trained in-process."""
    from orsta_trl.api import train
    from orsta_trl.recipe import load_recipe

    folder = tmp_path_factory.mktemp("lora")
    keys = dict(
        model_name_or_path=str(tiny_vl), train_files=[str(ocr_ned_dataset(synth_data, folder / "data"))],
        output_dir=str(folder / "run"), eval_datasets=[], dump_completions=0, report_to=[], logging_steps=1,
        max_steps=2, save_steps=1, save_total_limit=None, num_generations=4, per_device_train_batch_size=8,
        max_completion_length=8, learning_rate=1e-2, use_peft=True, lora_r=8, lora_alpha=16,
    )  # fmt: skip
    result = train(load_recipe(RECIPE, keys))
    return result, keys, folder


def _base_name(name: str) -> str:
    return name.removeprefix("base_model.model.").replace(".base_layer", "")


def test_only_adapter_weights_change_and_checkpoints_hold_the_adapter(lora_run, tiny_vl):
    from transformers import AutoModelForImageTextToText

    result, _, _ = lora_run
    base = dict(AutoModelForImageTextToText.from_pretrained(tiny_vl).named_parameters())
    trained = dict(result.trainer.model.named_parameters())
    frozen = {n: p for n, p in trained.items() if "lora_" not in n}
    assert sum(".visual." in n for n in frozen) > 10
    changed = [n for n, p in frozen.items() if not torch.equal(p.detach(), base[_base_name(n)].detach())]
    assert changed == []  # vision and base weights untouched
    lora_b = [p for n, p in trained.items() if "lora_B" in n]
    assert lora_b and all(p.abs().max() > 0 for p in lora_b)  # B starts at zero: every adapter trained
    for folder in (result.output_dir, result.output_dir / "checkpoint-1", result.output_dir / "checkpoint-2"):
        assert (folder / "adapter_model.safetensors").is_file()
        assert not (folder / "model.safetensors").exists()


def test_training_resumes_from_an_adapter_checkpoint(lora_run):
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    from orsta_trl.api import build_trainer
    from orsta_trl.recipe import load_recipe

    _, keys, folder = lora_run
    checkpoint = folder / "run" / "checkpoint-1"
    saved = load_file(str(checkpoint / "adapter_model.safetensors"))
    seen = {}

    class FirstStep(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, **kwargs):
            if not seen:
                seen["step"] = state.global_step
                seen["weights"] = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}

    trainer = build_trainer(load_recipe(RECIPE, {**keys, "output_dir": str(folder / "resumed")}))
    trainer.add_callback(FirstStep())
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint))
    finally:
        trainer.router.close()
    assert seen["step"] == 1 and trainer.state.global_step == 2
    assert len(saved) == len(seen["weights"]) > 0
    for name, tensor in saved.items():  # the run started from the checkpoint's adapter, not a fresh one
        live = next(
            v
            for k, v in seen["weights"].items()
            if k.replace(".default", "").endswith(name.split("model.", 1)[1])
        )
        assert torch.equal(live, tensor), name


def test_merged_model_gives_the_logits_of_base_plus_adapter(lora_run, tiny_vl, tmp_path):
    from peft import PeftModel
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from orsta_trl.models.lora import merge_adapter

    result, _, _ = lora_run
    merged_dir = merge_adapter(result.output_dir, tmp_path / "merged")
    processor = AutoProcessor.from_pretrained(merged_dir)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Write sevens"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[text], images=[Image.new("RGB", (84, 56), "white")], return_tensors="pt")
    with torch.no_grad():
        merged = AutoModelForImageTextToText.from_pretrained(merged_dir).eval()(**inputs).logits
        base_model = AutoModelForImageTextToText.from_pretrained(tiny_vl).eval()
        base = base_model(**inputs).logits
        adapted = PeftModel.from_pretrained(base_model, str(result.output_dir)).eval()(**inputs).logits
    assert not torch.allclose(base, adapted, atol=1e-5)  # the adapter changes the output
    torch.testing.assert_close(merged, adapted, atol=1e-4, rtol=1e-4)
    with pytest.raises(MissingFileError, match="not a LoRA checkpoint"):
        merge_adapter(merged_dir, tmp_path / "again")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the message is for machines without a GPU")
def test_qlora_without_a_gpu_stops_before_the_model_loads(tiny_vl, tmp_path):
    from orsta_trl.api import build_trainer
    from orsta_trl.recipe import load_recipe

    keys = dict(
        model_name_or_path=str(tiny_vl), train_files=[str(sevens_dataset(tmp_path, n=2))],
        output_dir=str(tmp_path / "run"), eval_datasets=[], use_peft=True, load_in_4bit=True,
    )  # fmt: skip
    with pytest.raises(RecipeError, match="load_in_4bit: QLoRA .* needs a CUDA GPU"):
        build_trainer(load_recipe(RECIPE, keys))
