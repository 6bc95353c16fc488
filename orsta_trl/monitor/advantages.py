"""GRPO's group advantages recomputed from the rewards TRL gets, for the completion dumps and the viewer.

The dumps are written before TRL computes its own advantages (inside ``_generate_and_score_completions``), so we
recompute them with TRL's formula: one reward function, ``multi_objective_aggregation`` and ``scale_rewards`` as TRL
applies them. A ``None`` reward (not applicable, a skipped judge) is NaN: left out of its group's mean and standard
deviation, with advantage 0, as in TRL.
"""

from __future__ import annotations

from collections.abc import Sequence


def group_advantages(
    rewards: Sequence[float | None],
    num_generations: int,
    scale_rewards: str = "group",
    aggregation: str = "sum_then_normalize",
) -> list[float] | None:
    """The advantage of each reward within its group of ``num_generations`` (None when they do not divide).

    Args:
        rewards: the gathered batch's rewards, group by group; None where TRL gets None.
        num_generations: completions per prompt.
        scale_rewards: TRL's ``scale_rewards`` (``group``, ``batch`` or ``none``).
        aggregation: TRL's ``multi_objective_aggregation``.

    Returns:
        One float per reward, or None.

    >>> [round(a, 3) for a in group_advantages([1.0, 0.0, None, 0.5], 2)]
    [0.707, -0.707, 0.0, 0.0]
    """
    import torch
    from trl.trainer.utils import nanstd

    n = num_generations
    if not rewards or len(rewards) % n:
        return None
    r = torch.tensor([float("nan") if v is None else v for v in rewards], dtype=torch.float64)
    grouped = r.view(-1, n)
    mean = torch.nanmean(grouped, dim=1).repeat_interleave(n)
    std = nanstd(grouped, dim=1).repeat_interleave(n) if n > 1 else torch.zeros_like(r)
    if aggregation == "normalize_then_sum":
        r = (r - mean) / (std + 1e-4)
        mean, std = torch.nanmean(r).expand_as(r), nanstd(r).expand_as(r)
        advantages = (r - mean) / (std + 1e-4)
    else:
        if scale_rewards == "batch":
            std = nanstd(r).expand_as(r) if r.numel() > 1 else torch.zeros_like(r)
        advantages = r - mean
        if scale_rewards != "none":
            advantages = advantages / (std + 1e-4)
    return torch.nan_to_num(advantages, nan=0.0).tolist()
