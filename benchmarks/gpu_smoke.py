"""GPU smoke test and baselines: Qwen2.5-VL with the 3B (or 7B) configuration, random weights, a few GRPO steps
per mode.

    .venv/bin/python benchmarks/gpu_smoke.py              # on one GPU: writes docs/baselines.md (aim: < 8 min)
    .venv/bin/python benchmarks/gpu_smoke.py --model 7b   # the 7B shape (more memory and time)
    .venv/bin/python benchmarks/gpu_smoke.py --dry-run    # anywhere: meta device, every mode's configuration
    .venv/bin/python benchmarks/gpu_smoke.py --carry      # the wheels the lent GPU machine lacks, and their size

The lent GPU machine (one H100 or H200, no network) has torch 2.11, transformers 5.17, accelerate, peft and
pandas but no trl, deepspeed or vllm, and takes at most 64 MiB of wheels per call. ``--carry`` lists what this
path imports that the machine lacks (:data:`CARRY`, versions and sizes from ``uv.lock``) and prints the commands
that fetch the wheels and run the check there; ``tests/test_gpu_smoke.py`` checks the total and that every
package imported on this path is carried or on the machine (:data:`ON_MACHINE`). vLLM cannot travel (its wheel
is hundreds of MiB), so ``vllm_colocate`` runs only where vLLM is installed.

No download: the model is Qwen2.5-VL-7B's published configuration (``orsta_trl.models.known_configs``) with the
tiny processor's tokenizer (its special-token ids written into the config), initialised at random directly on
the GPU in bf16 and saved once to a temporary folder (vLLM and both trainers load it from there). Data: the
synthetic V-Triune mix (``orsta_trl.data.synth``). Modes, each ``--steps`` GRPO steps after one warm-up step:

1. ``hf_lora``: HF generation, LoRA (r 16 on the attention and MLP projections);
2. ``full_frozen_vision``: full fine-tuning of the language model, vision tower and merger frozen;
3. ``vllm_colocate``: colocated vLLM (LoRA), when ``import vllm`` works;
4. ``zero2``: DeepSpeed ZeRO-2 on one GPU (full fine-tuning), when ``import deepspeed`` works;
5. ``zero3``: DeepSpeed ZeRO-3 on one GPU (full fine-tuning, parameters partitioned and gathered per module).

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

MODELS = {"3b": "Qwen/Qwen2.5-VL-3B-Instruct", "7b": "Qwen/Qwen2.5-VL-7B-Instruct"}
MODEL = MODELS["7b"]  # the dry run's shape; ``--model`` picks the GPU run's
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
ZERO3 = {**ZERO2, "zero_optimization": {"stage": 3, "overlap_comm": False, "contiguous_gradients": True}}
MODES["zero3"] = {"use_vllm": False, "deepspeed": ZERO3}
NEEDS = {"vllm_colocate": "vllm", "zero2": "deepspeed", "zero3": "deepspeed"}

#: Distributions this path imports that the lent GPU machine lacks (normalised names; versions from uv.lock).
CARRY = [
    "trl",
    "deepspeed",
    "hjson",
    "datasets",
    "dill",
    "multiprocess",
    "math-verify",
    "latex2sympy2-extended",
    "antlr4-python3-runtime",
    "rapidfuzz",
    "jsonschema",
    "jsonschema-specifications",
    "referencing",
    "rpds-py",
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-inspection",
]
#: Python packages of the lent machines' image ("cuda"), as /work/.library/device/KINDS.md listed them on
#: 2026-11-17 (torch 2.11, transformers 5.17, accelerate 1.15, peft, pandas; no trl, deepspeed or vllm).
ON_MACHINE = set(
    """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
    charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
    cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
    flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
    huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
    jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
    llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
    multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
    nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
    nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
    nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
    opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec
    patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
    py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
    pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
    safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
    setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
    tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio
    torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
    typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
    zipp""".split()
)
CARRY_LIMIT_MIB = 64
MIB = 1024**2


def normalise(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def carry_wheels(lock: Path = REPO / "uv.lock") -> list[dict]:
    """One row per :data:`CARRY` package: its locked version and the file that travels (the CPython 3.12
    manylinux x86-64 wheel, else the pure-Python wheel; deepspeed publishes only a source archive, built here
    into a wheel of about its size), with the size uv.lock records."""
    import tomllib

    packages = {normalise(p["name"]): p for p in tomllib.loads(lock.read_text())["package"]}
    rows = []
    for name in CARRY:
        package = packages[name]
        wheels = package.get("wheels", [])

        def pick(*parts, wheels=wheels):
            return next((w for w in wheels if all(p in w["url"] for p in parts)), None)

        chosen = (
            pick("cp312-cp312-manylinux", "x86_64")
            or pick("-py312-none-any")
            or pick("-py3-none-any")
            or pick("py2.py3-none-any")
        )
        built = chosen is None
        chosen = chosen or package["sdist"]
        rows.append(
            {
                "name": name,
                "version": package["version"],
                "file": chosen["url"].rsplit("/", 1)[-1],
                "bytes": chosen["size"],
                "built_here": built,
            }
        )
    return rows


def carry_text() -> str:
    rows = carry_wheels()
    total = sum(r["bytes"] for r in rows)
    lines = [
        f"{r['file']:<80} {r['bytes'] / MIB:6.2f} MiB{'  (pip wheel, from the sdist)' if r['built_here'] else ''}"
        for r in rows
    ]
    lines.append(f"total {total / MIB:.2f} MiB of {CARRY_LIMIT_MIB} MiB ({len(rows)} packages)")
    download = " ".join(f"{r['name']}=={r['version']}" for r in rows if not r["built_here"])
    built = " ".join(f"{r['name']}=={r['version']}" for r in rows if r["built_here"])
    lines += [
        "",
        "fetch (here, in the repository root; .whl/ ignored through .git/info/exclude):",
        "  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "
        "--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 "
        f"--platform manylinux2014_x86_64 -d .whl {download}",
        f"  python3 -m pip wheel --no-deps -w .whl {built}",
        "run there (carry .whl):",
        "  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && "
        "PYTHONPATH=/tmp/site:. python3 benchmarks/gpu_smoke.py --model 3b",
    ]
    return "\n".join(lines)


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


def seven_b_config(tiny_dir: Path, name: str = MODEL):
    """A shipped Qwen2.5-VL configuration (7B unless ``name`` says) with the tiny tokenizer's special-token ids."""
    from transformers import AutoConfig

    from orsta_trl.models.known_configs import known_config

    config, tiny = known_config(name), AutoConfig.from_pretrained(tiny_dir)
    for key in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
        setattr(config, key, getattr(tiny, key))
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(config.text_config, key, getattr(tiny.text_config, key))
    return config


def zero_name(keys: dict) -> str:
    return f"ZeRO-{keys['deepspeed']['zero_optimization']['stage']}"


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
        # TrainingArguments with a DeepSpeed block starts torch.distributed (a world of one): not in a dry run,
        # which may share its process; the block is checked below on its own
        plain = {k: v for k, v in keys.items() if k != "deepspeed"}
        recipe = load_recipe(None, {**common(str(tiny), str(data), str(tmp / mode), 2), **plain}, check=True)
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
        if mode in ("zero2", "zero3") and importable("deepspeed"):
            from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

            HfTrainerDeepSpeedConfig(keys["deepspeed"])
        ready = (
            "runnable here" if need is None or importable(need) else f"skipped here ({need} not installed)"
        )
        lines.append(
            f"{mode:<20} ok: {total / 1e9:.3f} B parameters, {counts['trainable'] / 1e9:.3f} B trainable; "
            f"use_vllm={recipe.grpo.use_vllm}, peft={peft is not None}, "
            f"deepspeed={zero_name(keys) if 'deepspeed' in keys else 'no'}; {ready}"
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
    zero = 3 if mode == "zero3" else 2
    result = {"plan_gib": next(r["total"] for r in plan["rows"] if r["recipe"] and r["zero"] == zero)}
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


def write_baselines(results: dict, command: str, seconds: float, device: str, name: str = MODEL) -> Path:
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
        f"    {command}\n\n{name}'s configuration with random weights (bf16), batch 8 = 2 prompts x 4 "
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
    parser.add_argument("--model", choices=list(MODELS), default="3b", help="the shape of the GPU run")
    parser.add_argument("--carry", action="store_true", help="list the wheels the lent GPU machine needs")
    args = parser.parse_args(argv)
    if args.carry:
        print(carry_text())
        return 0
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
    # DeepSpeed in one process, without a launcher: a world of one
    for key, value in {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29517",
        "RANK": "0",
        "LOCAL_RANK": "0",
    }.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("WORLD_SIZE", "1")
    name = MODELS[args.model]
    tiny, data = make_tiny_vl(tmp / "tiny"), synth(tmp / "data", n=8)
    model_dir = tmp / f"qwen2.5-vl-{args.model}-random"
    with torch.device("cuda"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            seven_b_config(tiny, name), dtype=torch.bfloat16
        )
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
        results, command.strip(), time.perf_counter() - started, torch.cuda.get_device_name(0), name
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
