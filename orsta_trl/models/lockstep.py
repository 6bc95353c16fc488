"""Generation in lockstep across ranks, for multi-turn rollouts under DeepSpeed ZeRO-3 (or FSDP).

Under ZeRO-3 every ``generate`` is a collective: TRL's ``unwrap_model_for_generation`` gathers the partitioned
weights from every rank, and transformers turns on ``synced_gpus`` (an all-reduce per decoded token). A tool loop
generates once per round of calls, and the rounds depend on what each rank's model wrote: a rank whose
completions called no tool leaves the loop while a peer enters its next ``generate``, and the two wait in
different collectives forever. Here each rank says, before each generation of a turn, whether it still has one
to run (:func:`any_rank`, one all-reduce); a rank that has finished runs an idle generation alongside each of its
peers' turns, until no rank has one left. Without distributed ZeRO-3/FSDP nothing is synchronized.
"""

from __future__ import annotations


def lockstep_needed(fsdp: bool = False) -> bool:
    """Whether ``generate`` is a collective here: ZeRO-3 or FSDP with more than one rank (transformers'
    condition for ``synced_gpus``)."""
    import torch.distributed as dist
    from transformers.integrations import is_deepspeed_zero3_enabled

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return False
    return bool(is_deepspeed_zero3_enabled() or fsdp)


def any_rank(busy: bool, device=None) -> bool:
    """True when this rank or any other is ``busy`` (an all-reduce of one flag; every rank must call it)."""
    import torch
    import torch.distributed as dist

    flag = torch.tensor([int(busy)], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())
