"""One TensorBoard event per log call reads back exactly as transformers' one event per scalar."""

from __future__ import annotations

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter
from transformers import TrainerState
from transformers.integrations import TensorBoardCallback

from orsta_trl.monitor.tensorboard import OrstaTensorBoard


def write(callback_cls, folder, logs_per_step):
    callback = callback_cls(tb_writer=SummaryWriter(str(folder)))
    for step, logs in logs_per_step:
        callback.on_log(None, TrainerState(global_step=step), None, logs=logs)
    callback.tb_writer.close()
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    scalars = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    return scalars, sorted(acc.Tags()["tensors"])


def test_batched_events_read_back_as_transformers_own(tmp_path):
    logs = [
        (
            step,
            {
                "loss": 0.5 / step,
                "num_tokens": 100 * step,
                "clipped": step % 2 == 0,
                "sources/synth_math/reward/mean": 0.1 * step,
                **{f"sources/s{k}/accuracy/mean": k / 300 + step for k in range(300)},
                "eval_sources/synth_ocr/reward/mean": 1.0 / 3,
                "note": f"text {step}",
                "dropped": None,
            },
        )
        for step in (1, 2, 3)
    ]
    theirs = write(TensorBoardCallback, tmp_path / "hf", logs)
    ours = write(OrstaTensorBoard, tmp_path / "ours", logs)
    assert (
        len(theirs[0]) == 305
        and "train/loss" in theirs[0]
        and "eval/sources/synth_ocr/reward/mean" in theirs[0]
    )
    assert ours == theirs  # every tag, step and value, and the text summaries
