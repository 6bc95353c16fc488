"""TensorBoard that shows a resumed run as one continuous run.

transformers' ``TensorBoardCallback`` opens a new folder ``runs/<time>_<host>`` in every process, so a run
resumed from a checkpoint appears in TensorBoard as a second run, and the steps the killed process logged after
its last checkpoint are shown twice. Deviation: on resume (``global_step > 0`` at ``on_train_begin``) this
callback writes into the latest existing log folder of ``output_dir/runs`` and opens its writer with
``purge_step = global_step + 1``, TensorBoard's own mechanism for a restart: a reader drops every event of the
earlier process at or after that step, so each step is shown once, with the values of the resumed process.
``TENSORBOARD_LOGGING_DIR``, when set, is honoured as by transformers.
"""

from __future__ import annotations

from pathlib import Path

from transformers.integrations import TensorBoardCallback


def latest_log_dir(output_dir: str | Path) -> Path | None:
    """The most recently written folder of ``output_dir/runs`` that holds TensorBoard events, or None.

    Args:
        output_dir: the run's output folder.

    Returns:
        The folder, or None when no earlier process logged there.
    """
    events = list((Path(output_dir) / "runs").glob("*/events.out.tfevents.*"))
    return max(events, key=lambda p: p.stat().st_mtime).parent if events else None


class ContinuousTensorBoard(TensorBoardCallback):
    """transformers' TensorBoard callback, continuing the earlier process's log folder on resume."""

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
