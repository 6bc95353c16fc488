"""TensorBoard for orsta-trl: one event per log call, and a resumed run shown as one continuous run.

Two deviations from transformers' ``TensorBoardCallback``, both in :class:`OrstaTensorBoard`:

* **One event per log call.** transformers' ``on_log`` calls ``add_scalar`` once per key. With our hundreds of
  per-source keys that is hundreds of events per logging step, each queued to TensorBoard's writer thread through
  a queue of 10 (``max_queue``): the training thread spent about 8 ms of every logging step waiting on that queue
  (profiled with ``benchmarks/trainer_overhead.py``). We write the same scalars, with the same tags
  (``rewrite_logs``: ``train/...``, ``eval/...``), step and value (``simple_value``, as ``add_scalar`` writes
  them), as one ``Summary`` with many values in one event; strings still go through ``add_text``. TensorBoard and
  our report read both layouts alike (``tests/test_tensorboard_batch.py`` compares them).
* **One run across a resume.** transformers opens a new folder ``runs/<time>_<host>`` in every process, so a run
  resumed from a checkpoint appears as a second run, and the steps the killed process logged after its last
  checkpoint are shown twice. On resume (``global_step > 0`` at ``on_train_begin``) we write into the latest
  existing log folder of ``output_dir/runs`` and open the writer with ``purge_step = global_step + 1``,
  TensorBoard's own mechanism for a restart: a reader drops every event of the earlier process at or after that
  step, so each step is shown once, with the values of the resumed process. ``TENSORBOARD_LOGGING_DIR``, when
  set, is honoured as by transformers.
"""

from __future__ import annotations

from pathlib import Path

from transformers.integrations import TensorBoardCallback
from transformers.integrations.integration_utils import rewrite_logs


def latest_log_dir(output_dir: str | Path) -> Path | None:
    """The most recently written folder of ``output_dir/runs`` that holds TensorBoard events, or None.

    Args:
        output_dir: the run's output folder.

    Returns:
        The folder, or None when no earlier process logged there.
    """
    events = list((Path(output_dir) / "runs").glob("*/events.out.tfevents.*"))
    return max(events, key=lambda p: p.stat().st_mtime).parent if events else None


class OrstaTensorBoard(TensorBoardCallback):
    """transformers' TensorBoard callback: all scalars of a log call in one event, and on resume the earlier
    process's log folder continued."""

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and state.global_step > 0 and self.tb_writer is None:
            if self.logging_dir is None:
                previous = latest_log_dir(args.output_dir)
                self.logging_dir = str(previous) if previous is not None else None
            if self.logging_dir is not None and self._SummaryWriter is not None:
                self.tb_writer = self._SummaryWriter(
                    log_dir=self.logging_dir, purge_step=state.global_step + 1
                )
        super().on_train_begin(args, state, control, **kwargs)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:
            return
        if self.tb_writer is None:
            self._init_summary_writer(args)
        writer = getattr(self.tb_writer, "_get_file_writer", None)
        if writer is None:  # no writer, or tensorboardX's: transformers' own path
            return super().on_log(args, state, control, logs=logs, **kwargs)
        from tensorboard.compat.proto.summary_pb2 import Summary

        values, texts = [], {}
        for key, value in rewrite_logs(logs or {}).items():
            if isinstance(value, int | float):
                values.append(Summary.Value(tag=key, simple_value=float(value)))
            elif isinstance(value, str):
                texts[key] = value
            else:  # as transformers: dropped (it warns)
                super().on_log(args, state, control, logs={key: value}, **kwargs)
        if values:
            writer().add_summary(Summary(value=values), state.global_step)
        for key, value in texts.items():
            self.tb_writer.add_text(key, value, state.global_step)
        self.tb_writer.flush()


def use_orsta_tensorboard(trainer) -> bool:
    """Swap the trainer's ``TensorBoardCallback`` for :class:`OrstaTensorBoard`, in place (callbacks run in the
    same order, so it opens its folder before the first evaluation logs).

    Args:
        trainer: a transformers ``Trainer``.

    Returns:
        True if it had a TensorBoard callback.
    """
    callbacks = trainer.callback_handler.callbacks
    found = False
    for i, callback in enumerate(callbacks):
        if type(callback) is TensorBoardCallback:
            callbacks[i] = OrstaTensorBoard(tb_writer=callback.tb_writer)
            found = True
    return found
