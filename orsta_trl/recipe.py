"""Recipes: flat YAML whose keys are fields of TRL's ``GRPOConfig`` and ``ModelConfig`` or of our :class:`OrstaConfig`.

``load_recipe("recipes/det_7b.yaml", ["--learning_rate", "2e-6"])`` returns a :class:`Recipe` with the three
dataclasses filled in. An unknown key fails with its name and the nearest valid key; a value of the wrong type
fails with the key. ``check=True`` validates a recipe meant for GPUs on a machine without one: settings that
TrainingArguments checks against the hardware (bf16/fp16) are validated as booleans and then restored.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orsta_trl.errors import RecipeError
from orsta_trl.keys import not_one_of, unknown_key_message
from orsta_trl.verifiers.base import (
    DEFAULT_IOU_SCHEDULE,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    RewardSettings,
)


@dataclass
class OrstaConfig:
    """orsta-trl's own settings, next to TRL's GRPOConfig and ModelConfig.

    Data: ``train_files``. Vision: ``freeze_vision``, ``freeze_merger``, ``min_pixels``, ``max_pixels``.
    Prompts: ``max_prompt_length``. Rewards: ``iou_schedule``, ``reward_timeout_s``, ``reward_workers``,
    ``rewrite_embedder``, ``verifier_modules``, ``reward_funcs``. Evaluation: ``eval_datasets``, ``eval_iou_threshold``, ``eval_max_samples``.
    Monitoring: ``dump_completions``, ``dump_format``, ``correct_threshold``, ``reflection_words``.
    Data engineering: ``prompt_pool*``, ``datasets`` (a weighted mixture), ``curriculum``, ``skip_invalid``.
    Tools: ``tools``, ``tool_modules``, ``mcp_servers``, ``tool_timeout_s``, ``tool_memory_mb``.
    Warm-up: ``warmup_sft_*``. Judges: ``judges``, ``judge_failure``. LoRA keys are TRL's ``ModelConfig``'s.
    """

    train_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Dataset files in the record contract (JSONL or Parquet) or hub dataset names ('org/name[:split]')."
        },
    )
    freeze_vision: bool = field(
        default=True, metadata={"help": "Freeze the vision tower (V-Triune trains with a frozen ViT)."}
    )
    freeze_merger: bool = field(
        default=True,
        metadata={"help": "Also freeze the vision-language merger (ignored when freeze_vision is false)."},
    )
    min_pixels: int = field(
        default=DEFAULT_MIN_PIXELS,
        metadata={
            "help": "Smallest image area after the processor's resize. The one source of truth for the trainer's "
            "processor, the processor config that colocated vLLM reads, and box rescaling."
        },
    )
    max_pixels: int = field(default=DEFAULT_MAX_PIXELS, metadata={"help": "Largest image area after resize."})
    max_prompt_length: int = field(
        default=4096,
        metadata={
            "help": "Prompts longer than this many tokens (image tokens included) are dropped before training."
        },
    )
    iou_schedule: list = field(
        default_factory=lambda: [list(p) for p in DEFAULT_IOU_SCHEDULE],
        metadata={
            "help": "Dynamic IoU threshold: pairs [progress_from, threshold], progress = global step / max steps."
        },
    )
    reward_timeout_s: float = field(
        default=2.0,
        metadata={
            "help": "Per-job CPU-time limit, in seconds, of verifiers that run in worker processes (math, tool); "
            "a wall-clock backstop catches jobs that stall without using CPU."
        },
    )
    reward_workers: int = field(
        default=0,
        metadata={
            "help": "Reward worker processes per rank (0: the usable cores divided among the node's ranks)."
        },
    )
    verifier_modules: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Python modules whose public functions fn(completion, ground_truth, **params) -> float | dict "
            "(and Verifier subclasses) become verifiers named after them (README: Your own reward)."
        },
    )
    reward_funcs: list[str] = field(
        default_factory=list,
        metadata={
            "help": "TRL reward functions by dotted name (trl.rewards.think_format_reward, my_pkg.f), each a "
            "verifier named after the function, called with TRL's batch signature."
        },
    )
    rewrite_embedder: str | None = field(
        default=None,
        metadata={
            "help": "Sentence-embedding model of the 'rewrite' verifier (a hub name, a folder, or a package that "
            "ships one)."
        },
    )
    eval_datasets: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Held-out files evaluated greedily before training and every eval_steps (eval/<source>/<metric>)."
        },
    )
    eval_iou_threshold: float | str = field(
        default="average",
        metadata={
            "help": "Fixed IoU setting of evaluation (a number or 'average'); never the training schedule."
        },
    )
    eval_max_samples: int = field(
        default=0, metadata={"help": "Evaluate at most this many records of each data_source (0: all)."}
    )
    dump_completions: float = field(
        default=0.0,
        metadata={
            "help": "Share of completions written per step to output_dir/completions/ (0: none, 1: all)."
        },
    )
    dump_format: str = field(default="jsonl", metadata={"help": "'jsonl' or 'parquet'."})
    correct_threshold: float = field(
        default=1.0,
        metadata={
            "help": "A completion counts as correct when its accuracy is at least this (monitoring splits)."
        },
    )
    reflection_words: list[str] | None = field(
        default=None,
        metadata={"help": "Reflection words matched as lowercase substrings (default: V-Triune's list)."},
    )
    # --- data: prompt pool, mixtures, curriculum (issue 10) ---
    prompt_pool: bool = field(
        default=False,
        metadata={
            "help": "Append a seeded 'reason step by step' + 'answer format' sentence pair to prompts."
        },
    )
    prompt_pool_verifiers: list[str] | None = field(
        default=None,
        metadata={
            "help": "Verifiers whose records get the prompt pool's sentences (null: every verifier whose ground "
            "truth is a short answer: math, count, ocr, and user verifiers that declare short_answer)."
        },
    )
    prompt_pool_seed: int = field(default=0, metadata={"help": "Same seed, same sentences per record."})
    prompt_pool_free_form: list | None = field(
        default=None,
        metadata={"help": "Replace the free-form pool: [[first sentences], [second sentences]]."},
    )
    prompt_pool_tagged: list | None = field(
        default=None,
        metadata={"help": "Replace the <think>/<answer> pool: [[first sentences], [second sentences]]."},
    )
    datasets: list | None = field(
        default=None,
        metadata={"help": "A weighted mixture instead of train_files: [{path: ..., weight: ...}, ...]."},
    )
    curriculum: str | None = field(
        default=None,
        metadata={
            "help": "'pass_rate': each epoch goes from easy to hard by extra.pass_rate (difficulty filter)."
        },
    )
    # --- tool use (issue 11) ---
    tools: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Built-in tools by name: calculator, python, crop, zoom (crop/zoom: vision models)."
        },
    )
    tool_modules: list[str] = field(
        default_factory=list,
        metadata={"help": "Python modules whose public functions (type hints + docstring) become tools."},
    )
    mcp_servers: list[dict] = field(
        default_factory=list,
        metadata={
            "help": "MCP servers over stdio: [{name, command, args, env}]; their tools are listed at start."
        },
    )
    tool_timeout_s: float = field(
        default=10.0,
        metadata={
            "help": "Wall-time limit of one tool call (python sandbox, MCP call, user tool), in seconds."
        },
    )
    tool_memory_mb: int = field(
        default=1024, metadata={"help": "Address-space limit of the python tool's sandbox process, in MB."}
    )
    # --- supervised warm-up and LoRA (issue 15) ---
    warmup_sft_steps: int = field(
        default=0,
        metadata={
            "help": "Steps of the supervised warm-up (`orsta-trl sft RECIPE OUT`) on the training records' "
            "reference answers, with TRL's SFTTrainer: the 'instruct' starting point of GRPO."
        },
    )
    warmup_sft_learning_rate: float = field(default=1e-3, metadata={"help": "Learning rate of the warm-up."})
    warmup_sft_batch_size: int = field(default=8, metadata={"help": "Records per warm-up step."})
    warmup_sft_template: str = field(
        default="<answer>{answer}</answer>",
        metadata={"help": "The warm-up completion; {answer} is the record's extra.answer (or string gold)."},
    )
    # --- reliability (issue 13) ---
    skip_invalid: bool = field(
        default=False,
        metadata={
            "help": "Train on the valid records and report the invalid ones (count and reasons per source) "
            "instead of stopping; a missing or unreadable file still stops the run."
        },
    )
    # --- judges (issue 14) ---
    judges: dict = field(
        default_factory=dict,
        metadata={
            "help": "Model judges for the 'judge' verifier: {name: {backend: transformers|openai, model, ...}} "
            "(see orsta_trl/rewards/judges.py for each backend's keys)."
        },
    )
    judge_failure: str = field(
        default="zero",
        metadata={
            "help": "What a judge that gives no reply (timeout, error) scores: 'zero', or 'skip' (None to TRL, "
            "which leaves the completion out of the advantage)."
        },
    )

    def __post_init__(self):
        if isinstance(self.train_files, str):
            self.train_files = [self.train_files]
        if self.min_pixels <= 0 or self.max_pixels < self.min_pixels:
            raise ValueError(
                f"need 0 < min_pixels <= max_pixels, got {self.min_pixels} and {self.max_pixels}"
            )
        if self.reward_timeout_s <= 0:
            raise ValueError(f"reward_timeout_s must be > 0, got {self.reward_timeout_s}")
        if isinstance(self.eval_datasets, str):
            self.eval_datasets = [self.eval_datasets]
        if not (
            self.eval_iou_threshold == "average"
            or (isinstance(self.eval_iou_threshold, int | float) and 0 < self.eval_iou_threshold <= 1)
        ):
            raise ValueError(
                f"eval_iou_threshold must be 'average' or a number in (0, 1], got {self.eval_iou_threshold!r}"
            )
        if not 0.0 <= self.dump_completions <= 1.0:
            raise ValueError(f"dump_completions is a share in [0, 1], got {self.dump_completions}")
        if self.dump_format not in ("jsonl", "parquet"):
            raise ValueError(f"dump_format must be 'jsonl' or 'parquet', got {self.dump_format!r}")
        from orsta_trl.verifiers.schedule import validate_schedule

        pairs = validate_schedule(self.iou_schedule)
        thresholds = [threshold for _, threshold in pairs]
        if any(later < earlier for earlier, later in itertools.pairwise(thresholds)):
            import warnings

            warnings.warn(
                f"iou_schedule: the IoU threshold decreases over training ({' -> '.join(map(str, thresholds))}); "
                "V-Triune raises it (0.85 -> 0.95 -> 0.99). Ignore this if it is on purpose.",
                UserWarning,
                stacklevel=2,
            )
        _check_user_verifiers(self)
        _check_data_settings(self)
        _check_tools(self)
        _check_warmup(self)
        _check_judges(self)

    def reward_settings(self) -> RewardSettings:
        """The reward settings of this recipe, one object, filled by field name (each is a recipe key)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(RewardSettings)}
        values["iou_schedule"] = tuple(tuple(p) for p in self.iou_schedule)
        return RewardSettings(**values)


def _check_user_verifiers(config: OrstaConfig) -> None:
    """``verifier_modules`` and ``reward_funcs``: imported and registered now, so records can name them."""
    from orsta_trl.verifiers.registry import load_user_verifiers

    for key in ("verifier_modules", "reward_funcs"):
        if isinstance(getattr(config, key), str):
            setattr(config, key, [getattr(config, key)])
    load_user_verifiers(config.verifier_modules, config.reward_funcs)


def _check_data_settings(orsta: OrstaConfig) -> None:
    """Prompt pool, mixture and curriculum keys (issue 10); a mixture fills ``train_files`` with its paths."""
    from orsta_trl.data.prompt_pool import check_pool

    for key in ("prompt_pool_free_form", "prompt_pool_tagged"):
        if getattr(orsta, key) is not None:
            check_pool(getattr(orsta, key), key)
    if isinstance(orsta.prompt_pool_verifiers, str):
        orsta.prompt_pool_verifiers = [orsta.prompt_pool_verifiers]
    if orsta.curriculum not in (None, "pass_rate"):
        raise ValueError(f"curriculum must be 'pass_rate' or null, got {orsta.curriculum!r}")
    if orsta.datasets is None:
        return
    if not isinstance(orsta.datasets, list) or not orsta.datasets:
        raise ValueError("datasets must be a non-empty list like [{path: data.jsonl, weight: 1.0}]")
    for i, item in enumerate(orsta.datasets):
        if (
            not isinstance(item, dict)
            or set(item) - {"path", "weight"}
            or not isinstance(item.get("path"), str)
        ):
            raise ValueError(f"datasets[{i}] must be {{path: FILE, weight: NUMBER}}, got {item!r}")
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise ValueError(f"datasets[{i}].weight must be a number > 0, got {weight!r}")
    paths = [item["path"] for item in orsta.datasets]
    if orsta.train_files and orsta.train_files != paths:
        raise ValueError("give either train_files or datasets (a weighted mixture), not both")
    orsta.train_files = paths


def _check_tools(config: OrstaConfig) -> None:
    """The tool keys (issue 11): names known, user modules importable with usable schemas, MCP entries
    well-formed, limits positive. Nothing is started here."""
    if isinstance(config.tools, str):
        config.tools = [config.tools]
    if isinstance(config.tool_modules, str):
        config.tool_modules = [config.tool_modules]
    if not (config.tools or config.tool_modules or config.mcp_servers):
        if config.tool_timeout_s <= 0:
            raise ValueError(f"tool_timeout_s: a positive number of seconds, got {config.tool_timeout_s!r}")
        return
    from orsta_trl.tools.registry import check_tool_settings

    problems = check_tool_settings(
        config.tools, config.tool_modules, config.mcp_servers, config.tool_timeout_s
    )
    if config.tool_memory_mb < 64:
        problems.append(f"tool_memory_mb: at least 64, got {config.tool_memory_mb}")
    if problems:
        raise ValueError("; ".join(problems))


def _check_warmup(config: OrstaConfig) -> None:
    """The warm-up keys (issue 15)."""
    if (
        config.warmup_sft_steps < 0
        or config.warmup_sft_batch_size <= 0
        or config.warmup_sft_learning_rate <= 0
    ):
        raise ValueError(
            "warmup_sft_steps must be >= 0, warmup_sft_batch_size and warmup_sft_learning_rate > 0; got "
            f"{config.warmup_sft_steps}, {config.warmup_sft_batch_size}, {config.warmup_sft_learning_rate}"
        )
    if "{answer}" not in config.warmup_sft_template:
        raise ValueError(f"warmup_sft_template must contain {{answer}}, got {config.warmup_sft_template!r}")


def _check_judges(config: OrstaConfig) -> None:
    """``judges`` and ``judge_failure`` (issue 14): every judge definition is checked here, with the recipe."""
    from orsta_trl.rewards.judges import judge_configs

    if config.judge_failure not in ("zero", "skip"):
        raise ValueError(f"judge_failure must be 'zero' or 'skip', got {config.judge_failure!r}")
    if config.judges is None:  # `judges:` left empty in YAML
        config.judges = {}
    judge_configs(config.judges)


def orsta_config_from(path: str | Path | None) -> OrstaConfig:
    """Only our keys of a recipe (pixel bounds, IoU schedule, ...), for tools that do not train; none: defaults."""
    if path is None:
        return OrstaConfig()
    try:
        values = read_yaml(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RecipeError(f"{path}: cannot read the recipe: {exc}") from None
    names = {f.name for f in dataclasses.fields(OrstaConfig)}
    try:
        return OrstaConfig(**{k: v for k, v in values.items() if k in names})
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"{path}: {exc}") from None


@dataclass
class Recipe:
    grpo: Any  # trl.GRPOConfig
    model: Any  # trl.ModelConfig
    orsta: OrstaConfig
    path: str | None = None


def recipe_fields() -> dict[str, list[type]]:
    """Every valid recipe key and the dataclasses that own it."""
    from trl import GRPOConfig, ModelConfig

    owners: dict[str, list[type]] = {}
    for cls in (GRPOConfig, ModelConfig, OrstaConfig):
        for f in dataclasses.fields(cls):
            if f.init:
                owners.setdefault(f.name, []).append(cls)
    return owners


def parse_overrides(argv: list[str]) -> dict[str, Any]:
    """``["--lr", "1e-6", "--use_vllm", "false"]`` → ``{"lr": 1e-6, "use_vllm": False}`` (values read as YAML)."""
    overrides: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--"):
            raise RecipeError(f"expected --key value after the recipe path, got {token!r}")
        key, eq, value = token[2:].partition("=")
        if not key:
            raise RecipeError(f"expected --key value, got {token!r} (no key)")
        if not eq:
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                value = "true"  # a bare flag
            else:
                i += 1
                value = argv[i]
        overrides[key.replace("-", "_")] = read_yaml(value) if value != "" else ""
        i += 1
    return overrides


def load_recipe(
    path: str | Path | None = None,
    overrides: list[str] | dict | None = None,
    *,
    check: bool = False,
    **keys: Any,
) -> Recipe:
    """Read a YAML recipe (or none), apply overrides, and build the three configs.

    Args:
        path: a flat YAML recipe, or None for TRL's and our defaults.
        overrides: ``["--key", "value", ...]`` as on the command line, or a dict of recipe keys.
        check: validate a GPU recipe on a machine without one (bf16/fp16 are checked as booleans only).
        **keys: more recipe keys as keyword arguments; they win over ``overrides`` and the file.

    Returns:
        A :class:`Recipe` with ``grpo`` (TRL's GRPOConfig), ``model`` (ModelConfig) and ``orsta``
        (:class:`OrstaConfig`).

    Raises:
        RecipeError: an unknown key (with the nearest valid one), a value of the wrong type, or a file that
        cannot be read.

    >>> recipe = load_recipe(None, max_steps=3, use_cpu=True, bf16=False, output_dir="/tmp/orsta-doc")
    >>> recipe.grpo.max_steps, recipe.orsta.freeze_vision
    (3, True)
    """
    values: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise RecipeError(f"{path}: cannot read the recipe ({exc.strerror or exc})") from None
        try:
            loaded = read_yaml(text) or {}
        except yaml.YAMLError as exc:
            raise RecipeError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise RecipeError(f"{path}: a recipe is a flat mapping of keys to values")
        values.update(loaded)
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    values.update(overrides or {})
    values.update(keys)
    return build_recipe(values, path=str(path) if path else None, check=check)


def build_recipe(values: dict[str, Any], path: str | None = None, *, check: bool = False) -> Recipe:
    from trl import GRPOConfig, ModelConfig

    from orsta_trl.recipe_limits import check_limits

    owners = recipe_fields()
    where = f"{path}: " if path else ""
    kwargs: dict[type, dict[str, Any]] = {GRPOConfig: {}, ModelConfig: {}, OrstaConfig: {}}
    for key, value in values.items():
        if key not in owners:
            raise RecipeError(where + unknown_key_message("recipe key", key, owners))
        for cls in owners[key]:
            kwargs[cls][key] = _coerce(cls, key, value, where)
    restore = {}
    if check:  # validate a GPU recipe here: TrainingArguments rejects bf16/fp16 without the hardware
        for key in ("bf16", "fp16", "tf32"):
            if key in kwargs[GRPOConfig] or key == "bf16":  # TRL's default is bf16=True
                restore[key] = kwargs[GRPOConfig].get(key, True)
                kwargs[GRPOConfig][key] = False
    kwargs[GRPOConfig].setdefault("output_dir", "runs/orsta")
    check_values(kwargs[GRPOConfig], where)
    check_limits({**kwargs[GRPOConfig], **kwargs[ModelConfig]}, where)  # ranges, library enums (issue 13)
    try:
        orsta = OrstaConfig(**kwargs[OrstaConfig])
        model = ModelConfig(**kwargs[ModelConfig])
        grpo = GRPOConfig(**kwargs[GRPOConfig])
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"{where}{exc}") from exc
    for key, value in restore.items():
        setattr(grpo, key, value)
    return Recipe(grpo, model, orsta, path)


#: GRPOConfig keys whose values TRL 1.16 checks only once the trainer is built (or never); checked here, with
#: the recipe. ``tests/test_recipe.py`` keeps each list in step with TRL's own help texts.
CHOICES: dict[str, tuple[str, ...]] = {
    "loss_type": ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"),
    "vllm_mode": ("server", "colocate"),
    "vllm_model_impl": ("transformers", "vllm"),
    "importance_sampling_level": ("token", "sequence"),
}


def check_values(values: dict[str, Any], where: str = "") -> None:
    """Reject, before anything is built, values that TRL or transformers would reject late or not at all."""
    for key, choices in CHOICES.items():
        if key in values and values[key] not in choices:
            raise RecipeError(f"{where}{key}: {not_one_of(values[key], choices)}")
    steps = values.get("max_steps")
    if steps is not None and (steps == 0 or steps < -1):
        raise RecipeError(
            f"{where}max_steps: {steps} trains nothing; give a positive number, or -1 to use epochs"
        )
    reports = values.get("report_to")
    if reports is not None:
        from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

        valid = ("all", "none", *INTEGRATION_TO_CALLBACK)
        for name in [reports] if isinstance(reports, str) else list(reports):
            if name not in valid:
                raise RecipeError(f"{where}report_to: {unknown_key_message('integration', str(name), valid)}")


class _Yaml12Loader(yaml.SafeLoader):
    """YAML with 1.2 booleans: only true/false, so ``save_strategy: no`` stays the string "no"."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def read_yaml(text: str):
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 (a SafeLoader subclass)


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _coerce(cls: type, key: str, value: Any, where: str) -> Any:
    """Turn YAML's strings for numbers like ``1e-6`` into floats, and check simple scalar types."""
    if key == "resume_from_checkpoint" and isinstance(value, bool):
        return value or None  # TRL's and transformers' "true": the last checkpoint in output_dir
    hints = typing.get_type_hints(cls)
    allowed = _scalar_types(hints.get(key))
    if isinstance(value, str) and (float in allowed or int in allowed) and _NUMBER.fullmatch(value.strip()):
        number = float(value)
        value = int(number) if int in allowed and float not in allowed and number.is_integer() else number
    if isinstance(value, bool) and allowed and bool not in allowed:  # bool is an int in Python: not here
        names = " or ".join(sorted(t.__name__ for t in allowed))
        raise RecipeError(f"{where}{key}: expected {names}, got {value!r}")
    if allowed and value is not None and not isinstance(value, tuple(allowed)):
        names = " or ".join(sorted(t.__name__ for t in allowed))
        raise RecipeError(f"{where}{key}: expected {names}, got {value!r}")
    return value


def _scalar_types(hint) -> set[type]:
    """The plain scalar types a field accepts; empty when the hint is anything richer (then no check)."""
    if hint is None:
        return set()
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    scalars = set()
    for arg in args:
        if arg is type(None):
            continue
        if arg in (bool, int, float, str):
            scalars.add(arg)
        else:
            return set()  # enums, lists, dicts, literals: leave validation to the dataclass
    if float in scalars:
        scalars.add(int)
    return scalars
