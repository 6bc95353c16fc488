"""orsta-trl's own recipe settings, in sections, next to TRL's ``GRPOConfig`` and ``ModelConfig``.

Each section is a small dataclass whose fields are recipe keys with a ``help`` text; :class:`OrstaConfig` is
their union, so the YAML keys stay flat (``min_pixels: 3136``, not ``rewards: {min_pixels: ...}``) and code
reads ``recipe.orsta.min_pixels``. The reward section is :class:`orsta_trl.verifiers.base.RewardSettings`
itself: its keys are declared there once, because verifiers read them. Values are checked in
:mod:`orsta_trl.recipe.checks` (every problem at once); YAML and overrides are read in
:mod:`orsta_trl.recipe.loading`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from orsta_trl.recipe.checks import RecipeProblems, settings_problems
from orsta_trl.verifiers.base import RewardSettings


@dataclass
class DataSettings:
    """Which records train: files or a weighted mixture, ordering, and what an invalid record does."""

    train_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Dataset files in the record contract (JSONL or Parquet) or hub dataset names ('org/name[:split]')."
        },
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
    skip_invalid: bool = field(
        default=False,
        metadata={
            "help": "Train on the valid records and report the invalid ones (count and reasons per source) "
            "instead of stopping; a missing or unreadable file still stops the run."
        },
    )


@dataclass
class VisionSettings:
    """What of the vision side trains (the pixel bounds are reward settings: box rescaling reads them)."""

    freeze_vision: bool = field(
        default=True, metadata={"help": "Freeze the vision tower (V-Triune trains with a frozen ViT)."}
    )
    freeze_merger: bool = field(
        default=True,
        metadata={"help": "Also freeze the vision-language merger (ignored when freeze_vision is false)."},
    )


@dataclass
class PromptSettings:
    """Prompt length and the prompt pool's sentences."""

    max_prompt_length: int = field(
        default=4096,
        metadata={
            "help": "Prompts longer than this many tokens (image tokens and tool schemas included) are dropped "
            "before training."
        },
    )
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


@dataclass
class EvalSettings:
    """Held-out evaluation during training."""

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


@dataclass
class MonitorSettings:
    """Per-source monitoring, completion dumps, and whether a run may write into another run's folder."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Train into an output_dir that holds another run's model, checkpoints or logs (transformers' "
            "former key). Off: such a folder is refused before anything is written; resume_from_checkpoint "
            "continues it instead. Nothing is deleted: the earlier run's checkpoints stay beside the new ones."
        },
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


@dataclass
class ToolSettings:
    """Tools the model may call during generation, and their limits."""

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


@dataclass
class WarmupSettings:
    """The supervised warm-up before GRPO (``orsta-trl sft RECIPE OUT``)."""

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


#: The sections in the order a reader meets them; a recipe key belongs to exactly one.
SECTIONS: tuple[type, ...] = (
    DataSettings,
    VisionSettings,
    PromptSettings,
    RewardSettings,
    EvalSettings,
    MonitorSettings,
    ToolSettings,
    WarmupSettings,
)


@dataclass
class OrstaConfig(*reversed(SECTIONS)):  # reversed: dataclass fields follow the MRO from its far end
    """orsta-trl's own settings: the union of :data:`SECTIONS`, one flat namespace of recipe keys.

    Building one checks every value and raises :class:`~orsta_trl.recipe.checks.RecipeProblems` (a
    ``ValueError``) listing every problem; list-valued keys given as one string become one-item lists, a mixture
    (``datasets``) fills ``train_files`` with its paths, and ``iou_schedule`` becomes a tuple of pairs. LoRA keys
    are TRL's ``ModelConfig``'s.
    """

    def __post_init__(self):
        problems = settings_problems(self)
        if problems:
            raise RecipeProblems(problems)

    def reward_settings(self) -> RewardSettings:
        """The reward section of this recipe, as its own object (the router and every verifier read it)."""
        return RewardSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(RewardSettings)})


def section_of(key: str) -> type | None:
    """The section that declares an orsta-trl recipe key (None for TRL's keys and unknown ones)."""
    for section in SECTIONS:
        if key in {f.name for f in dataclasses.fields(section)}:
            return section
    return None


@dataclass
class Recipe:
    """A loaded recipe: TRL's two configs and ours, and the file it came from."""

    grpo: Any  # trl.GRPOConfig
    model: Any  # trl.ModelConfig
    orsta: OrstaConfig
    path: str | None = None
