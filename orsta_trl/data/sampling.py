"""Weighted mixtures and the ``pass_rate`` curriculum: the order in which training visits prompts.

Recipe keys: ``datasets: [{path, weight}]`` (instead of ``train_files``) and ``curriculum: pass_rate``.

* Mixture: each epoch draws as many prompts as the dataset holds, with replacement, where a prompt of file
  ``f`` has probability ``weight_f / Σ weights / n_f`` (``n_f``: the file's records left after the
  prompt-length filter), so each file's share of the draws follows its weight whatever its size. Without
  weights the epoch is a permutation, like TRL's ``RepeatSampler``.
* Curriculum: each epoch's prompts are sorted from easy to hard by ``extra.pass_rate`` (written by
  ``orsta-trl filter difficulty``), highest first; ties keep the epoch's random order. V-Triune suggests a
  curriculum by metadata but ships none; this is ours. A record without ``pass_rate`` is an error before the
  model loads.
* Resume-safe: an epoch's order is a function of (seed, epoch) only, never of a generator's hidden state, so
  after a resume from a checkpoint transformers' ``skip_first_batches`` skips into the same order. (TRL's
  ``RepeatSampler`` draws epoch ``e`` from a generator advanced ``e`` times, which a resume does not replay.)
  transformers and accelerate call :meth:`MixtureSampler.set_epoch` before each epoch.
* TRL's contract is kept: each index is yielded ``mini_repeat_count`` (num_generations) times in a row, chunks of
  ``batch_size`` prompts are repeated ``repeat_count`` times, and a last incomplete chunk is dropped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Sampler

from orsta_trl.data.records import Record, RecordError
from orsta_trl.errors import DataError


@dataclass(frozen=True)
class SamplingPlan:
    """Per-record weights (mixture) and pass rates (curriculum), keyed by (data_source, id)."""

    weights: dict | None = None
    pass_rates: dict | None = None

    @property
    def active(self) -> bool:
        return self.weights is not None or self.pass_rates is not None


def sampling_plan(records: Sequence[Record], origins: dict, file_weights: Sequence[float] | None, curriculum):
    """The plan for the records left to train on.

    Args:
        records: the training records (after the prompt-length filter).
        origins: ``{record.key: index of its file}``.
        file_weights: one weight per file (``datasets``), or None (no mixture).
        curriculum: None or ``"pass_rate"``.

    Returns:
        A :class:`SamplingPlan`.

    Raises:
        DataError: a curriculum record without a numeric ``extra.pass_rate``.
    """
    weights = None
    if file_weights is not None:
        counts: dict[int, int] = {}
        for record in records:
            counts[origins[record.key]] = counts.get(origins[record.key], 0) + 1
        total = sum(file_weights[i] for i in counts)
        weights = {r.key: file_weights[origins[r.key]] / total / counts[origins[r.key]] for r in records}
    return SamplingPlan(weights, curriculum_pass_rates(records, curriculum))


def curriculum_pass_rates(records: Sequence[Record], curriculum) -> dict | None:
    """``{record.key: extra.pass_rate}`` for the ``pass_rate`` curriculum (None without one); also the check that
    training runs with the records alone, before a processor or model loads.

    Raises:
        DataError: a record without a numeric ``extra.pass_rate``.
    """
    if curriculum != "pass_rate":
        return None
    pass_rates = {}
    for record in records:
        value = record.extra.get("pass_rate")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DataError(
                str(
                    RecordError(
                        "curriculum: pass_rate",
                        record.data_source,
                        record.id,
                        "extra.pass_rate",
                        "missing or not a number: run `orsta-trl filter difficulty` first",
                    )
                )  # fmt: skip
            )
        pass_rates[record.key] = float(value)
    return pass_rates


def epoch_seed(seed: int, epoch: int) -> int:
    """A generator seed from (seed, epoch) alone."""
    return int(hashlib.sha256(f"{seed}:{epoch}".encode()).hexdigest()[:15], 16)


class MixtureSampler(Sampler[int]):
    """TRL's ``RepeatSampler`` contract with a weighted, curriculum-ordered, resume-safe epoch order."""

    def __init__(
        self,
        num_samples: int,
        *,
        mini_repeat_count: int,
        batch_size: int = 1,
        repeat_count: int = 1,
        seed: int = 0,
        weights: Sequence[float] | None = None,
        pass_rates: Sequence[float] | None = None,
    ):
        self.num_samples, self.seed, self.epoch = num_samples, seed, 0
        self.mini_repeat_count, self.batch_size, self.repeat_count = (
            mini_repeat_count,
            batch_size,
            repeat_count,
        )
        self.weights = None if weights is None else torch.tensor(list(weights), dtype=torch.float64)
        self.pass_rates = None if pass_rates is None else list(pass_rates)

    def set_epoch(self, epoch: int) -> None:
        """Called by transformers / accelerate before each epoch."""
        self.epoch = int(epoch)

    def order(self, epoch: int) -> list[int]:
        """The prompts of ``epoch``, in order (before repetition)."""
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        if self.weights is not None:
            indexes = torch.multinomial(self.weights, self.num_samples, replacement=True, generator=generator)
        else:
            indexes = torch.randperm(self.num_samples, generator=generator)
        indexes = indexes.tolist()
        if self.pass_rates is not None:
            indexes.sort(key=lambda i: -self.pass_rates[i])  # stable: ties keep the random order
        return indexes

    def __iter__(self):
        indexes = self.order(self.epoch)
        chunks = [indexes[i : i + self.batch_size] for i in range(0, len(indexes), self.batch_size)]
        for chunk in chunks:
            if len(chunk) < self.batch_size:
                continue
            for _ in range(self.repeat_count):
                for index in chunk:
                    for _ in range(self.mini_repeat_count):
                        yield index

    def __len__(self) -> int:
        return (
            (self.num_samples // self.batch_size)
            * self.batch_size
            * self.mini_repeat_count
            * self.repeat_count
        )
