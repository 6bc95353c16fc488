"""Every value check of a recipe, in one place; each returns the problems it finds instead of raising.

The loader collects the problems of every key, TRL's and ours, and reports them together (as torchtune's
config validation does), so one run of ``orsta-trl check-recipe`` names everything to change.

* TRL's and transformers' values that are accepted when the config is built but rejected later (after the
  model has loaded), or never: numeric ranges (:data:`RANGES`), TRL's own choices (:data:`CHOICES`) and a few
  enumerations without an ``Enum`` in transformers (:func:`choices`, read from the installed libraries where
  they have one: ``ModelConfig`` field metadata, torch's distributed backends and compile modes,
  transformers' attention registry, so they follow upgrades). The keys that transformers types with an
  ``Enum`` (``lr_scheduler_type``, ``optim``, ``save_strategy`` ...) are rejected when ``GRPOConfig`` is built.
* orsta-trl's own settings (:func:`settings_problems`): each section's keys, with the small normalisations
  the rest of the code relies on (a string where a list is expected becomes a one-item list).
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

from orsta_trl import keys
from orsta_trl.keys import unknown_key_message


class RecipeProblems(ValueError):
    """Every problem found in one set of settings; ``problems`` lists them, one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def not_one_of(key: str, value: Any, valid) -> str:
    """``loss_type: 'dapoo' is not one of [...] (did you mean 'dapo'?)`` (the wording: :func:`keys.not_one_of`)."""
    return f"{key}: {keys.not_one_of(value, valid)}"


#: GRPOConfig keys whose values TRL 1.16 checks only once the trainer is built (or never).
CHOICES: dict[str, tuple[str, ...]] = {
    "loss_type": ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"),
    "vllm_mode": ("server", "colocate"),
    "vllm_model_impl": ("transformers", "vllm"),
    "importance_sampling_level": ("token", "sequence"),
}

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
    """The enumerated keys of :func:`library_problems`, with their valid values read from the installed libraries.

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


def library_problems(values: dict[str, Any]) -> list[str]:
    """TRL's and transformers' keys (GRPOConfig's and ModelConfig's) that the libraries check late or never.

    Args:
        values: the recipe's keys and values for TRL's two configs.

    Returns:
        One line per problem, naming the key, the bad value and the valid ones (or the nearest).
    """
    problems = [
        not_one_of(key, values[key], valid)
        for key, valid in CHOICES.items()
        if key in values and values[key] not in valid
    ]
    steps = values.get("max_steps")
    if steps is not None and (steps == 0 or steps < -1):
        problems.append(f"max_steps: {steps} trains nothing; give a positive number, or -1 to use epochs")
    reports = values.get("report_to")
    if reports is not None:
        from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

        valid = ("all", "none", *INTEGRATION_TO_CALLBACK)
        for name in [reports] if isinstance(reports, str) else list(reports):
            if name not in valid:
                problems.append(f"report_to: {unknown_key_message('integration', str(name), valid)}")
    for key, (test, rule) in RANGES.items():
        value = values.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value) or not test(value):
            problems.append(f"{key}: {value!r} is out of range: give {rule}")
    for key, valid in choices().items():
        value = values.get(key)
        if value is None or not valid or value in valid:
            continue
        if key == "attn_implementation" and isinstance(value, str) and "/" in value:
            continue  # a hub kernel, e.g. "kernels-community/flash-attn"
        problems.append(not_one_of(key, value, valid))
    return problems


def _as_list(settings: Any, *keys: str) -> None:
    for key in keys:
        if isinstance(getattr(settings, key), str):
            setattr(settings, key, [getattr(settings, key)])


def settings_problems(settings: Any) -> list[str]:
    """Every problem in orsta-trl's own settings (an :class:`~orsta_trl.recipe.OrstaConfig`), section by section.

    Normalises as it goes: a string where a list is expected becomes a one-item list, ``judges: null`` an empty
    mapping, ``iou_schedule`` a tuple of pairs, and a mixture (``datasets``) fills ``train_files``.
    """
    _as_list(settings, "train_files", "eval_datasets", "prompt_pool_verifiers", "tools", "tool_modules")
    _as_list(settings, "verifier_modules", "reward_funcs")
    problems: list[str] = []
    for section in (_data, _rewards, _evaluation, _monitor, _tools, _warmup):
        problems += section(settings)
    return problems


def _data(s: Any) -> list[str]:
    """Mixture, curriculum and prompt pool."""
    from orsta_trl.data.prompt_pool import check_pool

    problems = []
    for key in ("prompt_pool_free_form", "prompt_pool_tagged"):
        if getattr(s, key) is not None:
            try:
                check_pool(getattr(s, key), key)
            except ValueError as exc:
                problems.append(str(exc))
    if s.curriculum not in (None, "pass_rate"):
        problems.append(f"curriculum must be 'pass_rate' or null, got {s.curriculum!r}")
    if s.datasets is None:
        return problems
    if not isinstance(s.datasets, list) or not s.datasets:
        return [*problems, "datasets must be a non-empty list like [{path: data.jsonl, weight: 1.0}]"]
    for i, item in enumerate(s.datasets):
        if (
            not isinstance(item, dict)
            or set(item) - {"path", "weight"}
            or not isinstance(item.get("path"), str)
        ):
            problems.append(f"datasets[{i}] must be {{path: FILE, weight: NUMBER}}, got {item!r}")
            continue
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            problems.append(f"datasets[{i}].weight must be a number > 0, got {weight!r}")
    paths = [
        item["path"] for item in s.datasets if isinstance(item, dict) and isinstance(item.get("path"), str)
    ]
    if s.train_files and s.train_files != paths:
        problems.append("give either train_files or datasets (a weighted mixture), not both")
    else:
        s.train_files = paths
    return problems


def _rewards(s: Any) -> list[str]:
    """Pixel bounds, worker limits, the IoU schedule (a decreasing one is warned about), the judges, and the user's
    verifiers (``verifier_modules``, ``reward_funcs``: imported and registered now, so that records can name them)."""
    from orsta_trl.errors import RecipeError
    from orsta_trl.rewards.judges import judge_configs
    from orsta_trl.verifiers.registry import load_user_verifiers
    from orsta_trl.verifiers.schedule import validate_schedule

    problems = []
    try:
        load_user_verifiers(s.verifier_modules, s.reward_funcs)
    except RecipeError as exc:
        problems.append(str(exc))
    if s.min_pixels <= 0 or s.max_pixels < s.min_pixels:
        problems.append(f"need 0 < min_pixels <= max_pixels, got {s.min_pixels} and {s.max_pixels}")
    if s.reward_timeout_s <= 0:
        problems.append(f"reward_timeout_s must be > 0, got {s.reward_timeout_s}")
    try:
        s.iou_schedule = validate_schedule(s.iou_schedule)
    except ValueError as exc:
        problems.append(f"iou_schedule: {exc}")
    else:
        thresholds = [threshold for _, threshold in s.iou_schedule]
        if any(later < earlier for earlier, later in itertools.pairwise(thresholds)):
            warnings.warn(
                f"iou_schedule: the IoU threshold decreases over training ({' -> '.join(map(str, thresholds))}); "
                "V-Triune raises it (0.85 -> 0.95 -> 0.99). Ignore this if it is on purpose.",
                UserWarning,
                stacklevel=5,
            )
    if s.judge_failure not in ("zero", "skip"):
        problems.append(f"judge_failure must be 'zero' or 'skip', got {s.judge_failure!r}")
    if s.judges is None:  # `judges:` left empty in YAML
        s.judges = {}
    try:
        judge_configs(s.judges)
    except ValueError as exc:
        problems.append(str(exc))
    return problems


def _evaluation(s: Any) -> list[str]:
    threshold = s.eval_iou_threshold
    if threshold == "average" or (
        not isinstance(threshold, bool) and isinstance(threshold, int | float) and 0 < threshold <= 1
    ):
        return []
    return [f"eval_iou_threshold must be 'average' or a number in (0, 1], got {threshold!r}"]


def _monitor(s: Any) -> list[str]:
    problems = []
    if not 0.0 <= s.dump_completions <= 1.0:
        problems.append(f"dump_completions is a share in [0, 1], got {s.dump_completions}")
    if s.dump_format not in ("jsonl", "parquet"):
        problems.append(f"dump_format must be 'jsonl' or 'parquet', got {s.dump_format!r}")
    return problems


def _tools(s: Any) -> list[str]:
    """Tool names known, user modules importable with usable schemas, MCP entries well-formed, limits positive.
    Nothing is started here."""
    if not (s.tools or s.tool_modules or s.mcp_servers):
        if s.tool_timeout_s <= 0:
            return [f"tool_timeout_s: a positive number of seconds, got {s.tool_timeout_s!r}"]
        return []
    from orsta_trl.tools.registry import check_tool_settings

    problems = check_tool_settings(s.tools, s.tool_modules, s.mcp_servers, s.tool_timeout_s)
    if s.tool_memory_mb < 64:
        problems.append(f"tool_memory_mb: at least 64, got {s.tool_memory_mb}")
    return problems


def _warmup(s: Any) -> list[str]:
    problems = []
    if s.warmup_sft_steps < 0 or s.warmup_sft_batch_size <= 0 or s.warmup_sft_learning_rate <= 0:
        problems.append(
            "warmup_sft_steps must be >= 0, warmup_sft_batch_size and warmup_sft_learning_rate > 0; got "
            f"{s.warmup_sft_steps}, {s.warmup_sft_batch_size}, {s.warmup_sft_learning_rate}"
        )
    if "{answer}" not in s.warmup_sft_template:
        problems.append(f"warmup_sft_template must contain {{answer}}, got {s.warmup_sft_template!r}")
    return problems


def path_problems(recipe: Any, *, files: bool = True, here: bool = True) -> list[str]:
    """The recipe's local paths: the model folder, the output folder's place, and (``files``) every train and
    eval file. Hub names (``org/name``, ``org/name[:split]``) are left to the hub, as training does.

    Args:
        recipe: a loaded :class:`~orsta_trl.recipe.Recipe`.
        files: also check ``train_files`` (``datasets``' paths) and ``eval_datasets``.
        here: the recipe runs on this machine, so a hub id the offline hub cannot serve is a problem; False
            (``check-recipe``) leaves every hub-shaped id to the hub, for a recipe meant for another machine.

    Returns:
        One line per problem, naming the key and the path.
    """
    from pathlib import Path

    problems = []
    name = recipe.model.model_name_or_path
    if name:
        from orsta_trl.models.paths import missing_model_message

        problem = missing_model_message(name, offline_counts=here)  # a typo fails now, not after hub retries
        if problem and "has no config.json" in problem:
            problems.append(f"model_name_or_path: {problem}")
        elif problem:
            problems.append(
                f"model_name_or_path: {problem}, and not a hub model id like 'Qwen/Qwen2.5-VL-7B-Instruct'"
            )
    out = Path(recipe.grpo.output_dir)
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        problems.append(f"output_dir: {existing} is a file, so {out} cannot be created")
    if files:
        for key in ("train_files", "eval_datasets"):
            for item in getattr(recipe.orsta, key):
                if isinstance(item, str) and not _dataset_exists(item):
                    problems.append(
                        f"{key}: {item}: no such file (relative paths start at {Path.cwd()}), "
                        "and not a hub dataset name like 'org/name[:split]'"
                    )
    return problems


def _dataset_exists(item: str) -> bool:
    """A file that exists, or a name that can only be a hub dataset (``org/name[:split]``, no file suffix)."""
    from pathlib import Path

    if Path(item).expanduser().exists():
        return True
    name = item.partition(":")[0]
    return name.count("/") == 1 and not name.startswith((".", "/", "~")) and Path(name).suffix not in (
        ".jsonl", ".json", ".parquet",
    )  # fmt: skip
