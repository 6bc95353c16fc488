"""GPU smoke test and baselines: Qwen2.5-VL with the 7B configuration, random weights, a few GRPO steps per mode.

    .venv/bin/python benchmarks/gpu_smoke.py              # on one GPU: writes docs/baselines.md (aim: < 8 min)
    .venv/bin/python benchmarks/gpu_smoke.py --dry-run    # anywhere: meta device, every mode's configuration

No download: the model is Qwen2.5-VL-7B's published configuration (``orsta_trl.models.known_configs``) with the
tiny processor's tokenizer (its special-token ids written into the config), initialised at random directly on
the GPU in bf16 and saved once to a temporary folder (vLLM and both trainers load it from there). Data: the
synthetic V-Triune mix (``orsta_trl.data.synth``). Modes, each ``--steps`` GRPO steps after one warm-up step:

1. ``hf_lora``: HF generation, LoRA (r 16 on the attention and MLP projections);
2. ``full_frozen_vision``: full fine-tuning of the language model, vision tower and merger frozen;
3. ``vllm_colocate``: colocated vLLM (LoRA), when ``import vllm`` works;
4. ``zero2``: DeepSpeed ZeRO-2 on one GPU (full fine-tuning), when ``import deepspeed`` works.

Each mode runs our OrstaGRPOTrainer and TRL's plain GRPOTrainer (the same verifiers as a plain reward function)
on the same model folder, rows and config. Per trainer: step time split into generation, rewards and the rest
(forward, backward, optimizer, logging), completion tokens per second of generation, and peak GPU memory
(``torch.cuda.max_memory_allocated``), next to ``orsta-trl plan``'s estimate for the same mode. A mode that
fails is recorded with its error and the others still run. ``--dry-run`` builds the model on the meta device,
checks its parameter counts, builds each mode's recipe (``load_recipe(check=True)``), the LoRA adapter on the
meta model and the DeepSpeed config when DeepSpeed imports, and reports which modes this machine can run.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
LORA = {"use_peft": True, "lora_r": 16, "lora_alpha": 32}
LORA["lora_target_modules"] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ZERO2 = {
    "zero_optimization": {"stage": 2, "overlap_comm": False, "contiguous_gradients": True},
    "bf16": {"enabled": "auto"},
    "train_micro_batch_size_per_gpu": "auto",
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
}
MODES = {
    "hf_lora": {**LORA, "use_vllm": False},
    "full_frozen_vision": {"use_vllm": False, "freeze_vision": True, "freeze_merger": True},
    "vllm_colocate": {
        **LORA,
        "use_vllm": True,
        "vllm_mode": "colocate",
        "vllm_gpu_memory_utilization": 0.3,
        "vllm_enable_sleep_mode": False,
    },
    "zero2": {"use_vllm": False, "deepspeed": ZERO2},
}
NEEDS = {"vllm_colocate": "vllm", "zero2": "deepspeed"}


def importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def common(model_dir: str, data: str, out: str, steps: int) -> dict:
    return {
        "model_name_or_path": model_dir,
        "dtype": "bfloat16",
        "attn_implementation": "sdpa",
        "train_files": [data],
        "eval_datasets": [],
        "output_dir": out,
        "max_steps": steps + 1,
        "per_device_train_batch_size": 8,
        "num_generations": 4,
        "gradient_accumulation_steps": 1,
        "max_completion_length": 128,
        "max_prompt_length": 2048,
        "min_pixels": 3136,
        "max_pixels": 200704,
        "learning_rate": 1e-6,
        "bf16": True,
        "gradient_checkpointing": True,
        "logging_steps": 1,
        "report_to": [],
        "save_strategy": "no",
        "seed": 0,
    }


def seven_b_config(tiny_dir: Path):
    """Qwen2.5-VL-7B's configuration with the tiny tokenizer's special-token ids."""
    from transformers import AutoConfig

    from orsta_trl.models.known_configs import known_config

    config, tiny = known_config(MODEL), AutoConfig.from_pretrained(tiny_dir)
    for key in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
        setattr(config, key, getattr(tiny, key))
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(config.text_config, key, getattr(tiny.text_config, key))
    return config


def dry_run(tmp: Path) -> list[str]:
    """Check every mode's configuration on the meta device; return the lines printed."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForImageTextToText
    from trl import get_peft_config

    from orsta_trl.data.synth import synth
    from orsta_trl.memory_plan import model_sizes
    from orsta_trl.models.loading import freeze_vision, parameter_counts
    from orsta_trl.models.tiny import make_tiny_vl
    from orsta_trl.recipe import load_recipe

    tiny, data = make_tiny_vl(tmp / "tiny"), synth(tmp / "data", n=2)
    config = seven_b_config(tiny)
    assert max(config.image_token_id, config.vision_end_token_id) < config.text_config.vocab_size
    assert config.vision_config.out_hidden_size == config.text_config.hidden_size
    lines = []
    for mode, keys in MODES.items():
        if "deepspeed" in keys and not importable("deepspeed"):  # TrainingArguments requires the package
            keys = {k: v for k, v in keys.items() if k != "deepspeed"}
        recipe = load_recipe(None, {**common(str(tiny), str(data), str(tmp / mode), 2), **keys}, check=True)
        with torch.device("meta"):
            model = AutoModelForImageTextToText.from_config(config)
        total = sum(p.numel() for p in model.parameters())
        assert abs(total / 1e9 - 8.29) < 0.01, total
        peft = get_peft_config(recipe.model)
        if peft is not None:
            model = get_peft_model(model, peft)
        if (
            recipe.orsta.freeze_vision
        ):  # after PEFT, as OrstaGRPOTrainer does (LoRA in the tower stays frozen)
            freeze_vision(model, freeze_merger=recipe.orsta.freeze_merger)
        counts = parameter_counts(model)
        assert counts["vision_trainable"] == 0 and 0 < counts["trainable"] < total, (mode, counts)
        need = NEEDS.get(mode)
        if mode == "zero2" and importable("deepspeed"):
            from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

            HfTrainerDeepSpeedConfig(recipe.grpo.deepspeed)
        ready = (
            "runnable here" if need is None or importable(need) else f"skipped here ({need} not installed)"
        )
        lines.append(
            f"{mode:<20} ok: {total / 1e9:.3f} B parameters, {counts['trainable'] / 1e9:.3f} B trainable; "
            f"use_vllm={recipe.grpo.use_vllm}, peft={peft is not None}, "
            f"deepspeed={'ZeRO-2' if recipe.grpo.deepspeed else 'no'}; {ready}"
        )
    sizes = model_sizes(MODEL)
    lines.append(
        f"plan check: {sizes.total / 1e9:.3f} B parameters, vision {sizes.vision / 1e9:.3f} B (meta device)"
    )
    return lines


class Timer:
    """Per-step generation, reward and step wall times of one trainer (CUDA synchronised)."""

    def __init__(self, trainer):
        import torch
        from transformers import TrainerCallback

        self.gen, self.rewards, self.steps, self.tokens = [], [], [], []
        timer = self

        def wrap(fn, sink):
            def wrapped(*args, **kwargs):
                torch.cuda.synchronize()
                start = time.perf_counter()
                out = fn(*args, **kwargs)
                torch.cuda.synchronize()
                sink.append(time.perf_counter() - start)
                if sink is timer.gen:
                    timer.tokens.append(sum(len(ids) for ids in out[0]))
                return out

            return wrapped

        trainer._generate_single_turn = wrap(trainer._generate_single_turn, self.gen)
        trainer.reward_funcs = [wrap(f, self.rewards) for f in trainer.reward_funcs]

        class StepTimes(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                torch.cuda.synchronize()
                self.start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                torch.cuda.synchronize()
                timer.steps.append(time.perf_counter() - self.start)

        trainer.add_callback(StepTimes())

    def summary(self) -> dict:
        import statistics

        def med(xs):
            return statistics.median(xs[1:]) if len(xs) > 1 else float("nan")  # the warm-up step dropped

        gen, rew, step = med(self.gen), med(self.rewards), med(self.steps)
        return {
            "step": step,
            "gen": gen,
            "rewards": rew,
            "train": step - gen - rew,
            "tok_s": med(self.tokens) / gen,
        }


def run_mode(mode: str, model_dir: Path, data: Path, tmp: Path, steps: int) -> dict:
    import torch
    from trainer_overhead import plain_trainer

    from orsta_trl.api import build_trainer
    from orsta_trl.memory_plan import plan_recipe
    from orsta_trl.recipe import load_recipe

    recipe = load_recipe(None, {**common(str(model_dir), str(data), str(tmp / mode), steps), **MODES[mode]})
    plan = plan_recipe(recipe, gpus=1, gpu_gib=torch.cuda.get_device_properties(0).total_memory / 1024**3)
    result = {"plan_gib": next(r["total"] for r in plan["rows"] if r["recipe"] and r["zero"] == 2)}
    torch.cuda.reset_peak_memory_stats()
    ours = build_trainer(recipe)
    router, dataset = ours.router, ours.train_dataset
    try:
        timer = Timer(ours)
        ours.train()
        result["orsta"] = {**timer.summary(), "peak_gib": torch.cuda.max_memory_allocated() / 1024**3}
        ours.accelerator.free_memory()  # drop our model and optimizer before TRL's copy loads
        del ours, timer
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        plain = plain_trainer(dataset, router, recipe, tmp / f"{mode}-trl")
        timer = Timer(plain)
        plain.train()
        result["trl"] = {**timer.summary(), "peak_gib": torch.cuda.max_memory_allocated() / 1024**3}
        plain.accelerator.free_memory()
        del plain
    finally:
        router.close()
        gc.collect()
        torch.cuda.empty_cache()
    return result


def write_baselines(results: dict, command: str, seconds: float, device: str) -> Path:
    out = REPO / "docs/baselines.md"
    rows = []
    for mode, r in results.items():
        if "error" in r:
            rows.append(f"| {mode} | not measured: {r['error']} | | | | | | |")
            continue
        for who in ("orsta", "trl"):
            m = r[who]
            rows.append(
                f"| {mode} | {'orsta-trl' if who == 'orsta' else 'TRL GRPOTrainer'} | {m['step']:.2f} | {m['gen']:.2f} "
                f"| {m['rewards']:.3f} | {m['train']:.2f} | {m['tok_s']:,.0f} | {m['peak_gib']:.1f} (plan {r['plan_gib']:.1f}) |"
            )
    text = (
        "# GPU baselines\n\nMeasured by `benchmarks/gpu_smoke.py` on "
        + device
        + f" in {seconds / 60:.1f} min:\n\n"
        f"    {command}\n\nQwen2.5-VL with the 7B configuration and random weights (bf16), batch 8 = 2 prompts x 4 "
        "generations, 128 completion tokens, synthetic V-Triune mix; medians over the steps after a warm-up step; "
        "seconds per step.\n\n| mode | trainer | step | generation | rewards | rest (train) | tokens/s | peak GiB |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    out.write_text(text, encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="meta device only: check every mode's configuration"
    )
    parser.add_argument(
        "--steps", type=int, default=3, help="timed steps per trainer (after one warm-up step)"
    )
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.dry_run:
            for line in dry_run(tmp):
                print(line)
            return 0
        return gpu_run(args, tmp)


def gpu_run(args, tmp: Path) -> int:
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from orsta_trl.data.synth import synth
    from orsta_trl.models.tiny import make_tiny_vl

    if not torch.cuda.is_available():
        print("no GPU here: run with --dry-run, or on a machine with one", file=sys.stderr)
        return 2
    started = time.perf_counter()
    tiny, data, model_dir = make_tiny_vl(tmp / "tiny"), synth(tmp / "data", n=8), tmp / "qwen2.5-vl-7b-random"
    with torch.device("cuda"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(seven_b_config(tiny), dtype=torch.bfloat16)
    model.save_pretrained(model_dir)
    del model
    for item in tiny.iterdir():  # tokenizer, chat template, processor and generation configs
        if item.is_file() and item.name != "config.json" and not item.name.endswith(".safetensors"):
            shutil.copy(item, model_dir / item.name)
    torch.cuda.empty_cache()
    results = {}
    for mode in args.modes:
        need = NEEDS.get(mode)
        if need and not importable(need):
            results[mode] = {"error": f"`import {need}` fails here"}
            continue
        try:
            results[mode] = run_mode(mode, model_dir, data, tmp, args.steps)
        except Exception as exc:  # record it; the other modes still run
            traceback.print_exc()
            results[mode] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        print(mode, results[mode], flush=True)
    command = "python benchmarks/gpu_smoke.py " + " ".join(sys.argv[1:])
    out = write_baselines(
        results, command.strip(), time.perf_counter() - started, torch.cuda.get_device_name(0)
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
