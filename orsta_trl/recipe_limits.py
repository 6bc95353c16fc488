"""Recipe values that transformers and TRL accept when the config is built but reject later (after the model
has loaded), or never: numeric ranges and a few enumerations without an ``Enum`` in transformers.

The enumerated keys that transformers types with an ``Enum`` (``lr_scheduler_type``, ``optim``,
``save_strategy``, ``eval_strategy``, ``logging_strategy``, ``hub_strategy``) are already rejected when
``GRPOConfig`` is built, with the valid values listed; TRL's own choices are in ``recipe.CHOICES``. The lists
here are read from the installed libraries where they have one (``ModelConfig`` field metadata, torch's
distributed backends and compile modes, transformers' attention registry), so they follow upgrades.
"""

from __future__ import annotations

import math
from typing import Any

from orsta_trl.errors import RecipeError
from orsta_trl.keys import not_one_of

#: key -> (test, what the value must be); a key is checked only when the recipe gives it
RANGES: dict[str, tuple[Any, str]] = {
    "learning_rate": (lambda v: v >= 0, "a number >= 0"),
    "temperature": (lambda v: v > 0, "a number > 0 (sampling; GRPO needs varied completions)"),
    "top_p": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "min_p": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "top_k": (lambda v: v >= 0, "an integer >= 0 (0 turns top-k off)"),
    "repetition_penalty": (lambda v: v > 0, "a number > 0"),
    "beta": (lambda v: v >= 0, "a number >= 0"),
    "epsilon": (lambda v: v >= 0, "a number >= 0"),
    "epsilon_high": (lambda v: v >= 0, "a number >= 0"),
    "weight_decay": (lambda v: v >= 0, "a number >= 0"),
    "max_grad_norm": (lambda v: v >= 0, "a number >= 0 (0 turns clipping off)"),
    "per_device_train_batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "gradient_accumulation_steps": (lambda v: v >= 1, "an integer >= 1"),
    "num_iterations": (lambda v: v >= 1, "an integer >= 1"),
    "steps_per_generation": (lambda v: v >= 1, "an integer >= 1"),
    "max_completion_length": (lambda v: v >= 1, "an integer >= 1"),
    "logging_steps": (lambda v: v > 0, "a number > 0 (below 1: a share of the run)"),
    "save_steps": (lambda v: v > 0, "a number > 0 (below 1: a share of the run)"),
    "eval_steps": (lambda v: v > 0, "a number > 0 (below 1: a share of the run)"),
    "save_total_limit": (lambda v: v >= 1, "an integer >= 1, or null to keep every checkpoint"),
    "seed": (lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)"),
    "data_seed": (lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)"),
    "vllm_gpu_memory_utilization": (lambda v: 0 < v <= 1, "a share in (0, 1]"),
    "dataloader_num_workers": (lambda v: v >= 0, "an integer >= 0"),
}


def choices() -> dict[str, tuple]:
    """The enumerated keys checked here, with their valid values read from the installed libraries.

    Returns:
        key -> valid values.
    """
    import dataclasses

    import torch.distributed
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from trl import ModelConfig

    found = {
        f.name: tuple(f.metadata["choices"])
        for f in dataclasses.fields(ModelConfig)
        if f.metadata.get("choices")
    }
    found["attn_implementation"] = ("eager", *ALL_ATTENTION_FUNCTIONS.valid_keys())
    backends = [b for b in torch.distributed.Backend.backend_list if b != "undefined"]
    found["ddp_backend"] = tuple(dict.fromkeys([*backends, "hccl", "ccl", "cncl", "mccl"]))
    found["torch_compile_mode"] = _compile_modes()
    found["scale_rewards"] = ("group", "batch", "none", True, False)
    return found


def _compile_modes() -> tuple[str, ...]:
    try:
        import torch._inductor

        return tuple(torch._inductor.list_mode_options())
    except Exception:  # an inductor-less torch: nothing to compare with
        return ()


def check_limits(values: dict[str, Any], where: str = "") -> None:
    """Reject out-of-range numbers and unknown enumerated values among the keys a recipe gives.

    Args:
        values: recipe keys and values (GRPOConfig's and ModelConfig's).
        where: the recipe's path and ``": "``, prefixed to the message.

    Raises:
        RecipeError: naming the key, the bad value and the valid ones (or the nearest).
    """
    for key, (test, rule) in RANGES.items():
        value = values.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value) or not test(value):
            raise RecipeError(f"{where}{key}: {value!r} is out of range: give {rule}")
    for key, valid in choices().items():
        value = values.get(key)
        if value is None or not valid or value in valid:
            continue
        if key == "attn_implementation" and isinstance(value, str) and "/" in value:
            continue  # a hub kernel, e.g. "kernels-community/flash-attn"
        raise RecipeError(f"{where}{key}: {not_one_of(value, valid)}")
