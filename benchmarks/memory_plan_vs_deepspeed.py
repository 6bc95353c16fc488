"""The memory plan's model states (weights + gradients + optimizer, per GPU) against DeepSpeed's own estimators,
for every shipped model size, under the estimators' assumptions: every parameter trained (vision tower too),
no LoRA, 16-bit weights, no offload, 8 GPUs on one node.

    .venv/bin/python benchmarks/memory_plan_vs_deepspeed.py [--gpus 8]

DeepSpeed's ``estimate_zero2_model_states_mem_needs_all_cold`` / ``estimate_zero3_model_states_mem_needs_all_cold``
print the "offload_optimizer=none" (and "offload_param=none") rows from the functions called here.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("DS_ACCELERATOR", "cpu")


def compare(key: str, gpus: int = 8) -> dict:
    """Plan and DeepSpeed, in GiB per GPU, for ZeRO-2 and ZeRO-3, of the shipped size ``key``."""
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    from orsta_trl.memory_plan import GIB, Setup, estimate
    from orsta_trl.models.sizes import model_sizes

    sizes = model_sizes(key)
    setup = Setup(gpus, 80.0, 2, 1, 1, 1, 1, True, False, 0.0, 1)
    out = {"model": key, "params": sizes.total, "largest_layer": sizes.largest_layer}
    for zero in (2, 3):
        row = estimate(sizes, setup, zero, lora=False, vision_frozen=False, merger_frozen=False)
        out[f"plan{zero}"] = row.weights + row.gradients + row.optimizer
    _, ds2 = estimate_zero2_model_states_mem_needs(sizes.total, num_gpus_per_node=gpus, cpu_offload=False)
    _, ds3, _ = estimate_zero3_model_states_mem_needs(
        sizes.total, sizes.largest_layer, num_gpus_per_node=gpus, cpu_offload=False, cpu_offload_params=False
    )
    out["ds2"], out["ds3"] = ds2 / GIB, ds3 / GIB
    return out


def main() -> None:
    from orsta_trl.models.known_configs import KNOWN

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=8)
    gpus = parser.parse_args().gpus
    print(f"model states per GPU (GiB), {gpus} GPUs, full fine-tuning, bf16, no offload")
    print(
        f"{'model':<16}{'params':>9}{'ZeRO-2 plan':>13}{'DeepSpeed':>11}{'ZeRO-3 plan':>13}{'DeepSpeed':>11}"
    )
    for key in KNOWN:
        r = compare(key, gpus)
        print(
            f"{key:<16}{r['params'] / 1e9:8.2f}B{r['plan2']:13.2f}{r['ds2']:11.2f}{r['plan3']:13.2f}{r['ds3']:11.2f}"
        )


if __name__ == "__main__":
    main()
