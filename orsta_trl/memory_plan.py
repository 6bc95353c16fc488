"""``orsta-trl plan``: will a recipe fit its GPUs? Per-GPU memory from the model built on the meta device.

The model is instantiated from its configuration on PyTorch's meta device (no weights, no download): a local
folder's ``config.json``, or for a hub name one of the shipped sizes in :mod:`orsta_trl.models.known_configs`.
Per GPU, in GiB, for DeepSpeed ZeRO-2 and ZeRO-3, full fine-tuning and LoRA, vision tower frozen or trained:

* weights: every parameter in the recipe's dtype (ZeRO-3 shards them over the GPUs, and gathers the largest
  module, the embedding or output head, whole: its weights and gradients, 2 x dtype bytes per parameter);
* gradients: trainable parameters in that dtype, sharded (ZeRO-2 and -3);
* optimizer: AdamW's fp32 master copy and two moments plus DeepSpeed's fp32 copy of the gradient partition,
  16 bytes per trainable parameter, sharded;
* activations (rough): per micro-batch of ``per_device_train_batch_size`` sequences of prompt + completion
  tokens, 34 x tokens x hidden bytes per layer without gradient checkpointing, 2 x per layer plus one layer's
  34 x with it (Korthikanti et al. 2022, attention by SDPA so no seq^2 term), plus the completion logits in
  bf16 and their fp32 log-softmax; the vision tower's activations only when it trains;
* vLLM (colocate): ``vllm_gpu_memory_utilization`` x the GPU, which holds vLLM's own weights and its KV cache;
  the KV cache the generation batch needs (``per_device_train_batch_size x steps_per_generation`` sequences,
  at least ``num_generations``, of ``max_prompt_length + max_completion_length`` tokens) is checked against it.
  In ``server`` mode vLLM runs on other GPUs and takes nothing here.

Weights, gradients and optimizer ("model states") follow DeepSpeed's own accounting: with every parameter
trained, the recipe's 16-bit dtype and no offload they equal DeepSpeed's
``estimate_zero2_model_states_mem_needs`` (2 + 18 / GPUs bytes per parameter) and
``estimate_zero3_model_states_mem_needs`` (18 / GPUs bytes per parameter + 4 bytes per parameter of the largest
module) exactly; ``benchmarks/memory_plan_vs_deepspeed.py`` prints both for every shipped size. Where the plan
goes beyond them: it knows frozen parameters (no gradient, no optimizer state), LoRA, and a 32-bit dtype
(DeepSpeed's formulas assume 16-bit weights); and it adds activations, vLLM and the CUDA context, which the
estimators leave out. The total counts the fp32 gradient partition and the activations as one peak, the larger
of the two: DeepSpeed casts the gradients to fp32 in the optimizer step, after backward freed the activations.
On the CPU under fp32 the persistent states a rank really holds (its weights, fp32 master
partition and moments) match the plan to within DeepSpeed's partition padding (tests/test_deepspeed.py); the
16-bit and fp32 gradients are transient (alive from backward to the optimizer step) and were not measured.

Estimates, not measurements: allocator fragmentation, CUDA context (about 1 GiB, counted) and NCCL buffers vary.
Where the recipe does not fit, the plan names the first of these changes that makes it fit: ZeRO-3, LoRA,
gradient checkpointing, a lower ``vllm_gpu_memory_utilization`` that still holds the KV cache, fewer
sequences per micro-batch, vLLM in server mode.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from orsta_trl.models.sizes import ModelSizes, model_sizes

GIB = 1024**3
_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "auto": 2, None: 2}
CONTEXT_GIB = 1.0  # CUDA context and library workspaces per GPU
#: per trainable parameter, sharded: fp32 master weight 4, AdamW moments 8, DeepSpeed's fp32 gradient partition 4
OPTIMIZER_BYTES = 16
FP32_GRAD_BYTES = 4  # the part of OPTIMIZER_BYTES alive only during the optimizer step


@dataclass(frozen=True)
class Row:
    """One scenario's per-GPU estimate (GiB)."""

    zero: int
    lora: bool
    vision_frozen: bool
    weights: float
    gradients: float
    optimizer: float
    activations: float
    vllm: float
    total: float
    fits: bool
    recipe: bool  # the recipe's own training mode (LoRA or not, vision frozen or not)


@dataclass(frozen=True)
class Setup:
    """The recipe's knobs that move memory."""

    gpus: int
    gpu_gib: float
    dtype_bytes: int
    micro_batch: int
    prompt_len: int
    completion_len: int
    generation_batch: int
    checkpointing: bool
    vllm_colocate: bool
    vllm_util: float
    image_tokens: int  # vision patches per sequence at max_pixels

    def replace(self, **changes: Any) -> Setup:
        return dataclasses.replace(self, **changes)


def setup_from(recipe, gpus: int, gpu_gib: float) -> Setup:
    """The :class:`Setup` of a loaded recipe on ``gpus`` GPUs of ``gpu_gib`` GiB each."""
    g, m, o = recipe.grpo, recipe.model, recipe.orsta
    prompt = o.max_prompt_length or 512  # ours: TRL 1.16 has no max_prompt_length
    steps_per_gen = getattr(g, "steps_per_generation", None) or g.gradient_accumulation_steps
    return Setup(
        gpus=gpus,
        gpu_gib=gpu_gib,
        dtype_bytes=_BYTES.get(m.dtype, 2),
        micro_batch=g.per_device_train_batch_size,
        prompt_len=prompt,
        completion_len=g.max_completion_length,
        generation_batch=max(g.per_device_train_batch_size * steps_per_gen, g.num_generations),
        checkpointing=bool(g.gradient_checkpointing),
        vllm_colocate=bool(g.use_vllm) and g.vllm_mode == "colocate",
        vllm_util=float(g.vllm_gpu_memory_utilization) if g.use_vllm else 0.0,
        image_tokens=int(o.max_pixels) // (14 * 14),
    )


def kv_cache_gib(sizes: ModelSizes, s: Setup) -> float:
    """KV cache (bf16) for the generation batch at full prompt + completion length."""
    return s.generation_batch * (s.prompt_len + s.completion_len) * sizes.kv_per_token * 2 / GIB


def estimate(sizes: ModelSizes, s: Setup, zero: int, lora: bool, vision_frozen: bool, merger_frozen: bool):
    """One scenario's per-GPU memory: a :class:`Row` (``recipe`` False)."""
    frozen = (sizes.vision - (0 if merger_frozen else sizes.merger)) if vision_frozen else 0
    trainable = sizes.lora if lora else sizes.total - frozen
    shard = s.gpus if zero in (2, 3) else 1
    weights = sizes.total * s.dtype_bytes / (s.gpus if zero == 3 else 1)
    if zero == 3:  # the largest module gathered whole, with its gradient (DeepSpeed's largest_layer_memory)
        weights += 2 * s.dtype_bytes * sizes.largest_layer
    if lora:
        weights += sizes.lora * s.dtype_bytes
    grads = trainable * s.dtype_bytes / shard
    optim = trainable * OPTIMIZER_BYTES / shard
    tokens = s.micro_batch * (s.prompt_len + s.completion_len)
    per_layer = 34 * tokens * sizes.hidden
    layers = (
        (2 * tokens * sizes.hidden * sizes.layers + per_layer)
        if s.checkpointing
        else per_layer * sizes.layers
    )
    logits = s.micro_batch * s.completion_len * sizes.vocab * (2 + 4)
    vision = 0
    if not vision_frozen and sizes.vision_layers:
        v_tokens = s.micro_batch * s.image_tokens
        v_layer = 34 * v_tokens * sizes.vision_hidden
        vision = (
            (2 * v_tokens * sizes.vision_hidden * sizes.vision_layers + v_layer)
            if s.checkpointing
            else (v_layer * sizes.vision_layers)
        )
    acts = layers + logits + vision
    vllm = s.vllm_util * s.gpu_gib if s.vllm_colocate else 0.0
    gib = [x / GIB for x in (weights, grads, optim, acts)]
    # the fp32 gradient partition exists only in the optimizer step, after backward has freed the activations
    fp32_grads = trainable * FP32_GRAD_BYTES / shard / GIB
    total = gib[0] + gib[1] + gib[2] - fp32_grads + max(gib[3], fp32_grads) + vllm + CONTEXT_GIB
    fits = total <= s.gpu_gib and (not s.vllm_colocate or vllm_need_gib(sizes, s) <= vllm)
    return Row(zero, lora, vision_frozen, *gib, vllm, total, fits, False)


def vllm_need_gib(sizes: ModelSizes, s: Setup) -> float:
    """What colocated vLLM must hold: its bf16 weights (tensor parallel 1), the KV cache, 1 GiB of slack."""
    return sizes.total * 2 / GIB + kv_cache_gib(sizes, s) + 1.0


def _rows(sizes, s, recipe) -> list[Row]:
    o, peft = recipe.orsta, bool(recipe.model.use_peft)
    rows = []
    for zero in (2, 3):
        for lora in (False, True):
            for frozen in (True, False):
                row = estimate(sizes, s, zero, lora, frozen, o.freeze_merger)
                mine = lora == peft and frozen == bool(o.freeze_vision)
                rows.append(dataclasses.replace(row, recipe=mine))
    return rows


def _fix(sizes, s: Setup, recipe) -> str | None:
    """The first single change that makes the recipe's own mode fit, or None when nothing listed does."""
    o, peft = recipe.orsta, bool(recipe.model.use_peft)
    frozen, merger = bool(o.freeze_vision), o.freeze_merger

    def fits(setup, zero=2, lora=peft):
        return estimate(sizes, setup, zero, lora, frozen, merger).fits

    if fits(s, zero=3):
        return "use ZeRO-3 (recipes/accelerate/zero3.yaml)"
    if not peft and fits(s, lora=True):
        return "train LoRA adapters (use_peft: true)"
    if not s.checkpointing and fits(s.replace(checkpointing=True)):
        return "turn on gradient_checkpointing"
    if s.vllm_colocate:
        util = round(min(0.9, vllm_need_gib(sizes, s) / s.gpu_gib + 0.02), 2)
        if util != s.vllm_util and fits(s.replace(vllm_util=util)):
            return f"set vllm_gpu_memory_utilization to {util} (vLLM's weights and KV cache)"
    for batch in (s.micro_batch // 2, s.micro_batch // 4, 1):
        if 0 < batch < s.micro_batch and fits(s.replace(micro_batch=batch)):
            return f"per_device_train_batch_size: {batch} (more gradient_accumulation_steps, fewer sequences)"
    if s.vllm_colocate and fits(s.replace(vllm_colocate=False)):
        return "run vLLM on its own GPUs (vllm_mode: server, trl vllm-serve; recipes/det_7b_server.yaml)"
    if fits(s.replace(vllm_colocate=False), zero=3, lora=True):
        return "combine ZeRO-3, LoRA and vLLM in server mode"
    if fits(s.replace(vllm_colocate=False, micro_batch=1, checkpointing=True), zero=3, lora=True):
        return "combine ZeRO-3, LoRA, vLLM in server mode and per_device_train_batch_size: 1"
    return None


def plan_recipe(recipe, gpus: int = 8, gpu_gib: float = 80.0) -> dict[str, Any]:
    """The memory plan of a loaded recipe.

    Args:
        recipe: a :class:`orsta_trl.recipe.Recipe` (``load_recipe(path, check=True)``).
        gpus: GPUs that train (the ZeRO shard count).
        gpu_gib: memory of each GPU in GiB.

    Returns:
        A JSON-ready dict: ``model`` (parameter counts), ``setup``, ``kv_cache_gib``, ``rows`` (one per
        scenario), ``fits`` (the recipe's own mode under ZeRO-2 or ZeRO-3) and ``fix`` (a change, or None).
    """
    m = recipe.model
    sizes = model_sizes(m.model_name_or_path, m.lora_r, m.lora_target_modules)
    s = setup_from(recipe, gpus, gpu_gib)
    rows = _rows(sizes, s, recipe)
    fits = any(r.fits for r in rows if r.recipe)
    kv = kv_cache_gib(sizes, s)
    return {
        "recipe": recipe.path,
        "model": dataclasses.asdict(sizes),
        "setup": dataclasses.asdict(s),
        "kv_cache_gib": kv,
        "vllm_need_gib": vllm_need_gib(sizes, s) if s.vllm_colocate else None,
        "kv_cache_fits_vllm": (vllm_need_gib(sizes, s) <= s.vllm_util * s.gpu_gib)
        if s.vllm_colocate
        else None,
        "rows": [dataclasses.asdict(r) for r in rows],
        "fits": fits,
        "fix": None if fits else _fix(sizes, s, recipe),
    }


def format_plan(plan: dict[str, Any]) -> str:
    """One table per recipe, in the manner of ``accelerate estimate-memory``."""
    md, s = plan["model"], plan["setup"]
    b = lambda n: f"{n / 1e9:.3f} B" if n >= 1e8 else f"{n / 1e6:.2f} M"  # noqa: E731
    lines = [
        f"{plan['recipe']}: {md['name']} — {b(md['total'])} parameters, vision tower {b(md['vision'])}"
        f" (merger {b(md['merger'])}), LoRA {b(md['lora'])}",
        f"per GPU, {s['gpus']} x {s['gpu_gib']:g} GiB; micro-batch {s['micro_batch']} x "
        f"{s['prompt_len']}+{s['completion_len']} tokens, gradient checkpointing "
        f"{'on' if s['checkpointing'] else 'off'}, vLLM "
        + (f"colocated at {s['vllm_util']:g}" if s["vllm_colocate"] else "not on these GPUs"),
    ]
    if s["vllm_colocate"]:
        ok = "fits" if plan["kv_cache_fits_vllm"] else "does NOT fit"
        lines.append(
            f"vLLM: KV cache for {s['generation_batch']} sequences {plan['kv_cache_gib']:.1f} GiB, with its "
            f"weights {plan['vllm_need_gib']:.1f} GiB: {ok} its share of {s['vllm_util'] * s['gpu_gib']:.1f} GiB"
        )
    header = f"{'':2}{'ZeRO':<5}{'tuning':<7}{'vision':<8}{'weights':>8}{'grads':>8}{'optim':>8}{'activ.':>8}{'vLLM':>7}{'total':>8}  fits"
    lines += [header, "-" * len(header)]
    for r in plan["rows"]:
        lines.append(
            f"{'*' if r['recipe'] else ' ':2}{r['zero']:<5}{'LoRA' if r['lora'] else 'full':<7}"
            f"{'frozen' if r['vision_frozen'] else 'trained':<8}{r['weights']:8.1f}{r['gradients']:8.1f}"
            f"{r['optimizer']:8.1f}{r['activations']:8.1f}{r['vllm']:7.1f}{r['total']:8.1f}  "
            f"{'yes' if r['fits'] else 'no'}"
        )
    lines.append("(GiB per GPU; * the recipe's own tuning; estimates, not measurements)")
    if plan["fits"]:
        lines.append("verdict: fits")
    else:
        lines.append(
            f"verdict: does NOT fit; {'try: ' + plan['fix'] if plan['fix'] else 'no single change found'}"
        )
    return "\n".join(lines)


def plan_command(paths: list[str], gpus: int, gpu_gib: float, as_json: bool) -> str:
    """The text (or JSON) ``orsta-trl plan`` prints for ``paths``."""
    from orsta_trl.recipe import load_recipe

    plans = [plan_recipe(load_recipe(p, check=True), gpus, gpu_gib) for p in paths]
    if as_json:
        return json.dumps(plans if len(plans) > 1 else plans[0], indent=2)
    return "\n\n".join(format_plan(p) for p in plans)
