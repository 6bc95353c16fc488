"""``OrstaGRPOTrainer``: TRL's GRPOTrainer with the few overrides a V-Triune run needs.

What it changes, and why:

* ``__init__``: forces left padding on whatever processor is passed (M-RoPE misaligns otherwise), freezes the
  vision tower (and merger) before ``train()`` builds the optimizer, and prints parameter counts.
* ``_generate_single_turn``: image/video placeholder tokens sampled inside a completion would break the
  feature count of the training forward. HF generation suppresses only ``<|image_pad|>`` and vLLM suppresses
  nothing, so every placeholder (image, video, vision pad) is dropped on both paths before log-probs are
  recomputed (:func:`~orsta_trl.models.tokens.drop_placeholders`; not replaced by the pad token, which is a stop
  token for Qwen2.5 and cut the reward's view short while the loss trained on the whole completion); the number
  dropped is logged.
* ``_tool_call_loop``: under distributed ZeRO-3 (or FSDP) every ``generate`` is a collective, and TRL's tool loop
  generates once per round of calls, so ranks whose rollouts take fewer rounds left the loop while a peer
  gathered weights for its next turn: both hung. Each turn is now taken in lockstep
  (:mod:`orsta_trl.models.lockstep`): a rank that is done runs an idle generation with each turn its peers
  still take. The decoupled evaluation's tool loop does the same.
* ``_generate``: keeps TRL's tool mask of the batch, so that the monitor counts a completion's length as TRL's
  loss does (the model's own tokens, tool results excluded).
* ``reward_funcs``: the one reward function TRL calls is the router's, made by
  :meth:`RewardRouter.reward_function`: it returns the rewards to TRL and hands the same call's samples to
  :meth:`_record_samples`, which adds completion lengths and truncation, gathers every rank's samples (so every
  rank holds the same rows and logs the same values), and feeds the source monitor, the end-of-run summary and,
  on the main process, the completion dumps. No verdict is read back from router state.
* tools: a :class:`~orsta_trl.tools.registry.ToolSet` becomes TRL's ``tools`` and
  ``environment_factory``; TRL's own loop runs them (tool tokens masked from the loss), and the reward function
  reads each completion as a rollout with its real tool outcomes.
* ``log``: adds the monitor's per-source window (``train/source/<data_source>/<metric>``) to each training log,
  and the prompts seen so far per source (``train/data/seen/<data_source>``, over the whole run: the end-of-run
  summary's counts, restored from the checkpoint on resume; TensorBoard only).
* ``_get_train_sampler``: with a weighted mixture (``datasets``) or ``curriculum: pass_rate`` the order of
  prompts comes from :class:`orsta_trl.data.sampling.MixtureSampler` (weights and curriculum, derived from
  seed + epoch so a resume replays it) instead of TRL's ``RepeatSampler``, whose repetition contract it keeps.
  Without either, TRL's sampler is given an epoch (:mod:`orsta_trl.data.sampler`), so that a run resumed in a
  later epoch draws the data order of an uninterrupted run.
* ``_load_from_checkpoint``: transformers 5.17 restores a checkpoint's weights with a plain ``load_state_dict``
  under the saved (reverted) key names, so a resumed Qwen2.5-VL silently continued from the base weights with
  only ``lm_head`` restored (transformers #43701); the weights are loaded through the model's own key mapping
  (:mod:`orsta_trl.models.checkpoint`) and a missing key is an error.
* ``_save_checkpoint`` / ``train``: the end-of-run summary's sums are saved in each checkpoint (before TRL's
  ``trainer_state.json``, the file that marks a checkpoint complete) and read back on resume, so that the
  summary covers the whole run. A save interrupted by Ctrl-C or an error removes its half-written folder;
  ``resume_from_checkpoint: true`` takes the last *complete* checkpoint (after a SIGKILL mid-save the incomplete
  folder is skipped).
* TensorBoard: transformers' callback is swapped in place for
  :class:`~orsta_trl.monitor.tensorboard.OrstaTensorBoard`, which writes each log call (hundreds of per-source
  scalars) as one event, and continues the earlier log folder on resume, so a resumed run shows as one run.
* Evaluation (a callback): greedy, decoupled from the reward schedule, on the trainer's own ``eval_records``,
  before the first step and every ``eval_steps``, logged as ``eval/source/<data_source>/<metric>``. The
  ``evaluator`` it is handed generates and scores (the offline path of :mod:`orsta_trl.evaluation`, with the
  run's tools); TRL's own sampled evaluation is not used.

Deviation from TRL: nothing in the loss or the advantage computation is changed.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

from accelerate.utils import gather_object
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from trl import GRPOTrainer

from orsta_trl.data.chat import messages_text
from orsta_trl.data.sampler import EpochRepeatSampler
from orsta_trl.models.checkpoint import (
    can_load,
    checkpoint_step,
    is_complete,
    last_complete_checkpoint,
    load_checkpoint_weights,
)
from orsta_trl.models.loading import enforce_left_padding, format_counts, freeze_vision, parameter_counts
from orsta_trl.models.lockstep import any_rank, lockstep_needed
from orsta_trl.models.tokens import drop_placeholders, placeholder_ids, stop_ids
from orsta_trl.monitor.advantages import group_advantages
from orsta_trl.monitor.dumps import CompletionDumper, record_entry
from orsta_trl.monitor.source_metrics import DEFAULT_REFLECTION_WORDS, SourceMonitor, eval_metrics
from orsta_trl.monitor.summary import SourceSummary
from orsta_trl.monitor.tensorboard import use_orsta_tensorboard
from orsta_trl.monitor.writing import console_callback, eval_summary, history_entries, log_values, seen_values


class OrstaGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer, scored by a :class:`~orsta_trl.rewards.router.RewardRouter`.

    Args:
        router: scores every completion against its record (its records are the training records).
        orsta: our recipe settings (:class:`orsta_trl.recipe.OrstaConfig`); defaults when None.
        eval_records: held-out records of the decoupled evaluation (the trainer owns them; none: no evaluation).
        evaluator: generates and scores ``eval_records`` (:class:`orsta_trl.evaluation.Scorer`, called as
            ``evaluator(model, processing_class, records, max_new_tokens=, batch_size=, iou=)`` → samples);
            required with ``eval_records``.
        toolset: the run's tools (:func:`orsta_trl.tools.registry.build_tools`): TRL's ``tools`` and
            ``environment_factory``; the reward then reads each completion as a multi-turn rollout.
        *args, **kwargs: as for ``trl.GRPOTrainer``, without ``reward_funcs``.
    """

    def __init__(
        self,
        *args,
        router,
        orsta=None,
        eval_records=None,
        evaluator=None,
        sampling=None,
        toolset=None,
        **kwargs,
    ):
        from orsta_trl.recipe import OrstaConfig

        processing_class = kwargs.get("processing_class")
        if processing_class is not None:
            enforce_left_padding(processing_class)
        self.router = router
        self.orsta = orsta or OrstaConfig()
        self.eval_records = list(eval_records or [])
        self._eval_by_key = {r.key: r for r in self.eval_records}
        if self.eval_records and evaluator is None:
            raise ValueError(
                "eval_records need an evaluator (orsta_trl.evaluation.Scorer) to generate and score"
            )
        self.evaluator = evaluator
        self.summary = SourceSummary()
        self.sampling = (
            sampling  # orsta_trl.data.sampling.SamplingPlan (mixture weights, curriculum), or None
        )
        #: The run's tools (:class:`orsta_trl.tools.registry.ToolSet`), handed to TRL's tool loop; None: no tools.
        self.toolset = toolset
        if toolset is not None:
            kwargs.update(tools=toolset.tools or None, environment_factory=toolset.environment_factory)
        reward = router.reward_function(self._record_samples, rollouts=toolset is not None)
        super().__init__(*args, reward_funcs=[reward], **kwargs)
        enforce_left_padding(self.processing_class)
        if self.orsta.freeze_vision:
            freeze_vision(self.model, freeze_merger=self.orsta.freeze_merger)
        self.parameter_counts = parameter_counts(self.model)
        if self.accelerator.is_main_process:
            print(format_counts(self.parameter_counts), flush=True)
        #: ZeRO-3/FSDP over several ranks: tool turns are generated in lockstep (see ``_tool_call_loop``).
        self._lockstep = not self.use_vllm and lockstep_needed(fsdp=self.is_fsdp_enabled)
        self._in_tool_turns = False
        self._placeholder_ids = placeholder_ids(self._tokenizer)
        self._stop_ids = stop_ids(self._tokenizer, self.eos_token_ids)
        words = tuple(self.orsta.reflection_words or DEFAULT_REFLECTION_WORDS)
        sources = sorted({r.data_source for r in router.records.values()})
        self.source_monitor = SourceMonitor(sources, self.orsta.correct_threshold, words)
        #: Every per-source value logged in this run: {"step", "split", "source", "metric", "value"}.
        self.source_history: list[dict] = []
        self.dumper = (
            CompletionDumper(
                self.args.output_dir, self.orsta.dump_completions, self.orsta.dump_format, seed=self.args.seed
            )
            if self.orsta.dump_completions > 0
            else None
        )
        if self.dumper is not None and self.accelerator.is_main_process:
            self.dumper.write_meta(
                min_pixels=router.settings.min_pixels,
                max_pixels=router.settings.max_pixels,
                num_generations=self.num_generations,
                scale_rewards=self.scale_rewards,
                max_steps=self.args.max_steps,
                iou_schedule=[list(pair) for pair in router.settings.iou_schedule],
            )
        if self.eval_records:
            self.add_callback(_SourceEvalCallback(self))
        for printer in (ProgressCallback, PrinterCallback):  # hundreds of per-source tags: TensorBoard only
            if any(isinstance(c, printer) for c in self.callback_handler.callbacks):
                self.remove_callback(printer)
                self.add_callback(console_callback(printer)())
        use_orsta_tensorboard(self)  # in place: it must open its folder before the first evaluation logs

    # ---- resume: the checkpoint's weights under the model's own names (transformers #43701)
    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        target = self.model if model is None else model
        if self.is_deepspeed_enabled or self.is_fsdp_enabled or not can_load(target, resume_from_checkpoint):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        load_checkpoint_weights(target, resume_from_checkpoint)

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        if resume_from_checkpoint is True:  # transformers' "the last checkpoint of output_dir", if complete
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir)
        if resume_from_checkpoint:  # the summary of the steps before the checkpoint
            self.summary = SourceSummary.load(resume_from_checkpoint)
            self._warn_inside_generation_cycle(resume_from_checkpoint)
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _warn_inside_generation_cycle(self, checkpoint) -> None:
        """TRL keeps a generation's completions for ``steps_per_generation x num_iterations`` micro-steps; they are
        not checkpointed, so a resume inside such a cycle generates anew and cannot equal the unbroken run."""
        micro = (
            checkpoint_step(checkpoint) * self.args.gradient_accumulation_steps
            if is_complete(checkpoint)
            else 0
        )
        cycle = self.args.steps_per_generation * self.num_iterations
        if micro % cycle and self.accelerator.is_main_process:
            print(
                f"[orsta-trl] warning: {checkpoint} lies inside a generation cycle of {cycle} micro-steps",
                flush=True,
            )

    def _save_checkpoint(self, model, trial) -> None:
        folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        try:
            if self.args.should_save:  # before trainer_state.json, which marks the checkpoint complete
                self.summary.save(folder)
            super()._save_checkpoint(model, trial)
        except BaseException:  # Ctrl-C or an error mid-save: leave no half-written checkpoint behind
            if self.args.should_save and folder.is_dir() and not is_complete(folder):
                shutil.rmtree(folder, ignore_errors=True)
            raise

    # ---- generation: no placeholder token reaches the training forward
    def _generate_single_turn(
        self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False
    ):
        if self._in_tool_turns:  # a peer done with its tool turns joins this generation (lockstep)
            any_rank(True, self.accelerator.device)
        completion_ids, logprobs = super()._generate_single_turn(
            prompt_ids, images, multimodal_fields, num_generations, has_tool_images
        )
        if self._placeholder_ids:
            completion_ids, logprobs, dropped = drop_placeholders(
                completion_ids, logprobs, self._placeholder_ids, self.eos_token_ids[0]
            )
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["completions/placeholders_dropped"].append(float(dropped))
        return completion_ids, logprobs

    def _tool_call_loop(self, prompts, prompt_ids, completion_ids, completions, logprobs, images, fields):
        if not self._lockstep:
            return super()._tool_call_loop(
                prompts, prompt_ids, completion_ids, completions, logprobs, images, fields
            )
        # the first turn's inputs, before TRL's loop extends the prompts: the idle generation's inputs
        first = ([list(ids) for ids in prompt_ids], images, fields)
        self._in_tool_turns = True
        try:
            result = super()._tool_call_loop(
                prompts, prompt_ids, completion_ids, completions, logprobs, images, fields
            )
        finally:
            self._in_tool_turns = False
        while any_rank(False, self.accelerator.device):  # a peer takes another turn: generate along, unused
            GRPOTrainer._generate_single_turn(self, *first, num_generations=1)
        return result

    def _generate(self, prompts):
        generated = super()._generate(prompts)
        self._tool_mask = generated[2]  # (prompt_ids, completion_ids, tool_mask, ...): None without tools
        return generated

    # ---- rewards: the router's samples of this call → per-source monitor, summary and dumps
    def _record_samples(self, samples, *, prompts, completion_ids) -> None:
        """Called by the reward function with the samples it scored (this rank's), before TRL gets the rewards."""
        if not self.model.training:  # TRL's own evaluation loop is not used; nothing to record
            return
        started = time.perf_counter()
        rows = [
            s.with_generation(n, cut)
            for s, (n, cut) in zip(samples, self._generated_lengths(completion_ids), strict=True)
        ]
        prompt_texts = [messages_text(p, sep="\n") for p in prompts] if self.dumper else [""] * len(rows)
        gathered = gather_object(list(zip(rows, prompt_texts, strict=True)))
        step = self.state.global_step
        rows = [  # TRL groups advantages by consecutive num_generations completions of the gathered batch
            dataclasses.replace(row, group=(step, i // self.num_generations))
            for i, (row, _) in enumerate(gathered)
        ]
        self.source_monitor.update(rows)
        self.summary.update(step, rows)
        if self.dumper is not None and self.accelerator.is_main_process:
            self.dumper.write(
                step + 1,
                rows,
                [p for _, p in gathered],
                groups=[i // self.num_generations for i in range(len(rows))],
                advantages=group_advantages(  # None rewards left out, as TRL does
                    self.router.trl_rewards(rows),
                    self.num_generations,
                    self.scale_rewards,
                    self.multi_objective_aggregation,
                ),
                describe=self._describe_record,
            )
        self._metrics["train"]["monitor/seconds"].append(time.perf_counter() - started)

    def _describe_record(self, data_source: str, record_id: str) -> dict | None:
        record = self.router.records.get((data_source, record_id)) or self._eval_by_key.get(
            (data_source, record_id)
        )
        return None if record is None else record_entry(record)

    def _generated_lengths(self, completion_ids) -> list[tuple[int, bool]]:
        """(tokens the loss trains on, truncated) per completion, as TRL counts them: TRL's completion ids end at
        their stop token already (inside a tool rollout each turn ends with one), so the length is the model's own
        tokens (tool results excluded) and a completion is truncated when its last token is not a stop token."""
        masks = getattr(self, "_tool_mask", None)
        if masks is None or len(masks) != len(completion_ids):
            masks = [None] * len(completion_ids)
        return [
            (len(ids) if mask is None else int(sum(mask)), not len(ids) or int(ids[-1]) not in self._stop_ids)
            for ids, mask in zip(completion_ids, masks, strict=True)
        ]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.model.training and "loss" in logs:
            window = self.source_monitor.flush()
            self.source_history.extend(history_entries(self.state.global_step, window))
            # num_generations completions per prompt
            logs = {**logs, **log_values(window), **seen_values(self.summary.totals, self.num_generations)}
        super().log(logs, start_time)

    # ---- prompt order: TRL's sampler with an epoch, or a weighted mixture / pass_rate curriculum
    def _get_train_sampler(self, dataset=None):
        plan = self.sampling
        if plan is None or not plan.active:
            return EpochRepeatSampler.from_sampler(super()._get_train_sampler(dataset))
        from orsta_trl.data.sampling import MixtureSampler

        dataset = self.train_dataset if dataset is None else dataset
        keys = list(zip(dataset["data_source"], dataset["id"], strict=True))
        return MixtureSampler(
            len(keys),
            mini_repeat_count=self.num_generations,
            batch_size=self.args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
            seed=self.args.seed,
            weights=None if plan.weights is None else [plan.weights[k] for k in keys],
            pass_rates=None if plan.pass_rates is None else [plan.pass_rates[k] for k in keys],
        )

    # ---- decoupled evaluation
    def evaluate_sources(self) -> list:
        """Greedy evaluation of ``eval_records`` on every rank's shard; per-source metric rows from all ranks."""
        from trl.models import unwrap_model_for_generation

        records = self.eval_records
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        per_rank = -(-len(records) // world)
        shard = records[rank * per_rank : (rank + 1) * per_rank]
        padded = shard + [records[-1]] * (per_rank - len(shard))  # equal work on every rank (ZeRO-3 generate)
        with unwrap_model_for_generation(
            self.model_wrapped, self.accelerator, gather_deepspeed3_params=self.args.ds3_gather_for_generation
        ) as model:
            rows = self.evaluator(
                model,
                self.processing_class,
                padded,
                max_new_tokens=self.max_completion_length,
                batch_size=self.args.per_device_eval_batch_size,
                iou=self.orsta.eval_iou_threshold,
                lockstep=self._lockstep,  # tool turns differ between ranks: generate them together
            )
        rows = gather_object(rows[: len(shard)])
        if self.dumper is not None and self.accelerator.is_main_process:
            prompts = {r.key: messages_text(r.prompt, sep="\n") for r in records}
            self.dumper.write(
                self.state.global_step,
                rows,
                [prompts.get((row.data_source, row.id), "") for row in rows],
                split="eval",
                describe=self._describe_record,
            )
        words = tuple(self.orsta.reflection_words or DEFAULT_REFLECTION_WORDS)
        return eval_metrics(rows, self.orsta.correct_threshold, words)


class _SourceEvalCallback(TrainerCallback):
    """Runs :meth:`OrstaGRPOTrainer.evaluate_sources` before training and every ``eval_steps``."""

    def __init__(self, trainer: OrstaGRPOTrainer):
        self.trainer = trainer

    def _run(self, state) -> None:
        metrics = self.trainer.evaluate_sources()
        self.trainer.source_history.extend(history_entries(state.global_step, metrics))
        # Logged with transformers' Trainer.log: GRPOTrainer.log would fold the pending training metrics in.
        super(GRPOTrainer, self.trainer).log(log_values(metrics))
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
