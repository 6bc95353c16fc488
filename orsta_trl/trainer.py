"""``OrstaGRPOTrainer``: TRL's GRPOTrainer with the few overrides a V-Triune run needs.

What it changes, and why:

* ``__init__``: forces left padding on whatever processor is passed (M-RoPE misaligns otherwise), freezes the
  vision tower (and merger) before ``train()`` builds the optimizer, and prints parameter counts.
* ``_generate_single_turn``: image/video placeholder tokens sampled inside a completion would break the
  feature count of the training forward. HF generation suppresses only ``<|image_pad|>`` and vLLM suppresses
  nothing, so every placeholder (image, video, vision pad) is replaced by the pad token on both paths before
  log-probs are recomputed, as V-Triune does; the number replaced is logged.
* ``_calculate_rewards``: after TRL calls the router, this rank's verdicts, completion lengths and truncation
  are gathered from every rank (so every rank holds the same per-sample rows and logs the same values), fed to
  the source monitor, the end-of-run summary and, on the main process, the completion dumps.
* ``log``: adds the monitor's per-source window (``source/<data_source>/<metric>``) to each training log.
* Evaluation (a callback): greedy, decoupled from the reward schedule, before the first step and every
  ``eval_steps``, logged as ``eval/<data_source>/<metric>``. TRL's own sampled evaluation is not used.

Deviation from TRL: nothing in the loss or the advantage computation is changed.
"""

from __future__ import annotations

import dataclasses
import time

import torch
from accelerate.utils import gather_object
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from trl import GRPOTrainer

from orsta_trl.models.loading import enforce_left_padding, format_counts, freeze_vision, parameter_counts
from orsta_trl.monitor.dumps import CompletionDumper
from orsta_trl.monitor.source_metrics import DEFAULT_REFLECTION_WORDS, SourceMonitor, rows_from_scored
from orsta_trl.monitor.summary import SourceSummary
from orsta_trl.verifiers.router import completion_text, messages_text

PLACEHOLDER_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_pad|>")


class OrstaGRPOTrainer(GRPOTrainer):
    def __init__(self, *args, router, orsta=None, eval_records=None, **kwargs):
        from orsta_trl.recipe import OrstaConfig

        processing_class = kwargs.get("processing_class")
        if processing_class is not None:
            enforce_left_padding(processing_class)
        self.router = router
        self.orsta = orsta or OrstaConfig()
        self.eval_records = list(eval_records or [])
        self.summary = SourceSummary()
        super().__init__(*args, reward_funcs=[router], **kwargs)
        enforce_left_padding(self.processing_class)
        if self.orsta.freeze_vision:
            freeze_vision(self.model, freeze_merger=self.orsta.freeze_merger)
        self.parameter_counts = parameter_counts(self.model)
        if self.accelerator.is_main_process:
            print(format_counts(self.parameter_counts), flush=True)
        tokenizer = self._tokenizer
        ids = [tokenizer.convert_tokens_to_ids(t) for t in PLACEHOLDER_TOKENS]
        self._placeholder_ids = sorted({i for i in ids if i is not None and i != tokenizer.unk_token_id})
        words = tuple(self.orsta.reflection_words or DEFAULT_REFLECTION_WORDS)
        sources = sorted({r.data_source for r in router.records.values()})
        self.source_monitor = SourceMonitor(sources, self.orsta.correct_threshold, words)
        self.dumper = (
            CompletionDumper(
                self.args.output_dir, self.orsta.dump_completions, self.orsta.dump_format, seed=self.args.seed
            )
            if self.orsta.dump_completions > 0
            else None
        )
        if self.eval_records:
            self.add_callback(_SourceEvalCallback(self))
        for printer in (ProgressCallback, PrinterCallback):  # hundreds of per-source tags: TensorBoard only
            if any(isinstance(c, printer) for c in self.callback_handler.callbacks):
                self.remove_callback(printer)
                self.add_callback(_console(printer)())

    # ---- generation: no placeholder token reaches the training forward
    def _generate_single_turn(
        self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False
    ):
        completion_ids, logprobs = super()._generate_single_turn(
            prompt_ids, images, multimodal_fields, num_generations, has_tool_images
        )
        if self._placeholder_ids:
            completion_ids, replaced = replace_placeholders(
                completion_ids, self._placeholder_ids, self._tokenizer.pad_token_id
            )
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["completions/placeholders_replaced"].append(float(replaced))
        return completion_ids, logprobs

    # ---- rewards: verdicts → per-source monitor, summary and dumps
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self.model.training and len(self.router.last) == len(completion_ids_list):
            started = time.perf_counter()
            self._monitor(prompts, completions, completion_ids_list)
            self._metrics["train"]["monitor/seconds"].append(time.perf_counter() - started)
        return rewards

    def _monitor(self, prompts, completions, completion_ids_list) -> None:
        stops = {*self.eos_token_ids, self._tokenizer.pad_token_id}
        lengths = [len(ids) for ids in completion_ids_list]
        truncated = [not ids or ids[-1] not in stops for ids in completion_ids_list]
        texts = [completion_text(c) for c in completions]
        rows = rows_from_scored(self.router.last, lengths, truncated, texts, [None] * len(texts))
        prompt_texts = [messages_text(p, sep="\n") for p in prompts] if self.dumper else [""] * len(rows)
        gathered = gather_object(list(zip(rows, prompt_texts, strict=True)))
        step = self.state.global_step
        # TRL groups advantages by consecutive num_generations completions of the gathered batch
        rows = [
            dataclasses.replace(row, group=(step, i // self.num_generations))
            for i, (row, _) in enumerate(gathered)
        ]
        self.source_monitor.update(rows)
        self.summary.update(step, rows)
        if self.dumper is not None and self.accelerator.is_main_process:
            self.dumper.write(step + 1, rows, [p for _, p in gathered])

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.model.training and "loss" in logs:
            logs = {**logs, **self.source_monitor.flush()}
        super().log(logs, start_time)

    # ---- decoupled evaluation
    def evaluate_sources(self) -> dict[str, float]:
        """Greedy evaluation of ``eval_records`` on every rank's shard; per-source metrics from all ranks."""
        from trl.models import unwrap_model_for_generation

        from orsta_trl.evaluation import eval_metrics, greedy_completions, score_generated

        records = self.eval_records
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        per_rank = -(-len(records) // world)
        shard = records[rank * per_rank : (rank + 1) * per_rank]
        padded = shard + [records[-1]] * (per_rank - len(shard))  # equal work on every rank (ZeRO-3 generate)
        with unwrap_model_for_generation(
            self.model_wrapped, self.accelerator, gather_deepspeed3_params=self.args.ds3_gather_for_generation
        ) as model:
            generated = greedy_completions(
                model,
                self.processing_class,
                padded,
                max_new_tokens=self.max_completion_length,
                batch_size=self.args.per_device_eval_batch_size,
            )
        rows = score_generated(
            self.router, shard, generated[: len(shard)], self.orsta.eval_iou_threshold, "eval"
        )
        rows = gather_object(rows)
        words = tuple(self.orsta.reflection_words or DEFAULT_REFLECTION_WORDS)
        return eval_metrics(rows, self.orsta.correct_threshold, words)


class _SourceEvalCallback(TrainerCallback):
    """Runs :meth:`OrstaGRPOTrainer.evaluate_sources` before training and every ``eval_steps``."""

    def __init__(self, trainer: OrstaGRPOTrainer):
        self.trainer = trainer

    def _run(self, state) -> None:
        metrics = self.trainer.evaluate_sources()
        # "eval_" keys become "eval/<source>/<metric>" tags in TensorBoard (transformers' rewrite_logs). Logged
        # with transformers' Trainer.log: GRPOTrainer.log would fold the pending training metrics in.
        logs = {f"eval_{tag.removeprefix('eval/')}": value for tag, value in metrics.items()}
        super(GRPOTrainer, self.trainer).log(logs)
        if self.trainer.accelerator.is_main_process:
            print(
                f"\n[orsta-trl] evaluation at step {state.global_step}:\n{eval_summary(metrics)}", flush=True
            )

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:
            self._run(state)

    def on_step_end(self, args, state, control, **kwargs):
        every = int(args.eval_steps) if args.eval_steps and args.eval_steps >= 1 else 0
        if (every and state.global_step % every == 0) or state.global_step == state.max_steps:
            should_log = control.should_log  # logging resets it, which would drop this step's training log
            self._run(state)
            control.should_log = should_log


def is_console_key(key: str) -> bool:
    """Per-source keys go to TensorBoard only; the console keeps TRL's headline numbers."""
    return not (key.startswith("source/") or (key.startswith("eval_") and "/" in key))


def _console(printer: type) -> type:
    """``printer`` (transformers' progress or printer callback) without the per-source keys."""

    class Console(printer):
        def on_log(self, args, state, control, logs=None, **kwargs):
            shown = {k: v for k, v in (logs or {}).items() if is_console_key(k)}
            if shown:
                super().on_log(args, state, control, logs=shown, **kwargs)

    Console.__name__ = f"Console{printer.__name__}"
    return Console


def eval_summary(metrics: dict[str, float]) -> str:
    """One line per source: reward, accuracy, mean length (the console view of an evaluation)."""
    from orsta_trl.monitor.source_metrics import split_tag

    table: dict[str, dict[str, float]] = {}
    for tag, value in metrics.items():
        source, metric = split_tag(tag.removeprefix("eval/"))
        table.setdefault(source, {})[metric] = value
    return "\n".join(
        f"  {source:<24} reward {m.get('reward', float('nan')):.3f}  accuracy {m.get('accuracy', float('nan')):.3f}"
        f"  length {m.get('length/mean', float('nan')):.1f}"
        for source, m in sorted(table.items())
    )


def replace_placeholders(completion_ids: list[list[int]], placeholder_ids, pad_id: int):
    """Replace placeholder token ids with ``pad_id`` (lengths unchanged); return (new ids, how many replaced).

    >>> replace_placeholders([[5, 9, 6], [9]], [9], 0)
    ([[5, 0, 6], [0]], 2)
    """
    blocked = set(placeholder_ids)
    replaced = 0
    out = []
    for ids in completion_ids:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        hits = sum(1 for t in ids if t in blocked)
        replaced += hits
        out.append([pad_id if t in blocked else t for t in ids] if hits else ids)
    return out, replaced
