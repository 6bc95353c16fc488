"""TensorBoard logging in one event per log call, instead of transformers' one event per scalar.

transformers' ``TensorBoardCallback.on_log`` calls ``add_scalar`` once per key. With our hundreds of per-source
keys that is hundreds of events per logging step, each queued to TensorBoard's writer thread through a queue of
10 (``max_queue``): the training thread spent about 8 ms of every logging step waiting on that queue (profiled
with ``benchmarks/trainer_overhead.py``). :class:`BatchedTensorBoardCallback` writes the same scalars, with the
same tags (``rewrite_logs``: ``train/...``, ``eval/...``), step and value (``simple_value``, as ``add_scalar``
writes them), as one ``Summary`` with many values in one event; strings still go through ``add_text``.
TensorBoard and our report read both layouts alike (``tests/test_tensorboard_batch.py`` compares them).
"""

from __future__ import annotations

from transformers.integrations import TensorBoardCallback
from transformers.integrations.integration_utils import rewrite_logs


class BatchedTensorBoardCallback(TensorBoardCallback):
    """``TensorBoardCallback`` whose ``on_log`` writes all scalars of a call as one event."""

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


def batch_tensorboard(trainer) -> bool:
    """Swap the trainer's ``TensorBoardCallback`` for :class:`BatchedTensorBoardCallback`; True if it had one."""
    callbacks = trainer.callback_handler.callbacks
    found = False
    for i, callback in enumerate(callbacks):
        if type(callback) is TensorBoardCallback:  # replaced in place: callbacks run in the same order
            callbacks[i] = BatchedTensorBoardCallback(tb_writer=callback.tb_writer)
            found = True
    return found
