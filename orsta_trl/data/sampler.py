"""TRL's ``RepeatSampler`` with an epoch, so that a resumed run draws the same data order as an unbroken one.

TRL shuffles each epoch with ``torch.randperm`` on one generator seeded once at construction, so epoch k's order
is the (k+1)-th draw of that generator. A resumed process builds a fresh sampler: without an epoch it would
replay epoch 0's order for the epoch it resumes in and shift every later epoch. transformers (and accelerate)
call ``set_epoch(epoch)`` on the sampler before each epoch; here that reseeds the generator and discards k
draws, which reproduces TRL's uninterrupted stream exactly (same generator, same calls), whatever the process.
"""

from __future__ import annotations

import torch
from trl.trainer.utils import RepeatSampler


class EpochRepeatSampler(RepeatSampler):
    """A ``RepeatSampler`` whose shuffled order is a function of (seed, epoch)."""

    @classmethod
    def from_sampler(cls, sampler: RepeatSampler) -> EpochRepeatSampler:
        """The same sampler (same settings and generator), with :meth:`set_epoch`.

        Args:
            sampler: the sampler TRL built.

        Returns:
            An ``EpochRepeatSampler`` sharing its settings.
        """
        new = cls.__new__(cls)
        new.__dict__.update(sampler.__dict__)
        return new

    def set_epoch(self, epoch: int) -> None:
        """Put the generator where an uninterrupted run has it at the start of ``epoch`` (0-based).

        Args:
            epoch: the epoch about to be iterated.
        """
        if self.shuffle and self.seed is not None:
            self.generator.manual_seed(self.seed)
            for _ in range(int(epoch)):
                torch.randperm(self.num_samples, generator=self.generator)
