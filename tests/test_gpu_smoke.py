"""benchmarks/gpu_smoke.py --dry-run: the 7B configuration on the meta device and every mode's configuration."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from conftest import REPO


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_smoke", REPO / "benchmarks/gpu_smoke.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_checks_every_mode(capsys):
    smoke = load_script()
    assert smoke.main(["--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    modes = {line.split()[0]: line for line in lines if line.split() and line.split()[0] in smoke.MODES}
    assert set(modes) == set(smoke.MODES)
    assert all(" ok: 8.292 B parameters" in line for line in modes.values())
    assert "0.040 B trainable" in modes["hf_lora"] and "7.616 B trainable" in modes["full_frozen_vision"]
    for mode, package in smoke.NEEDS.items():
        runnable = importlib.util.find_spec(package) is not None
        assert ("runnable here" in modes[mode]) == runnable
    assert any(line.startswith("plan check: 8.292 B parameters, vision 0.677 B") for line in lines)


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="the real run is the GPU machine's job, not the suite's"
)
def test_without_a_gpu_it_says_so(capsys):
    assert load_script().main([]) == 2
    assert "no GPU here" in capsys.readouterr().err


GPU_PATH = """
import importlib, importlib.metadata as md, pkgutil, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/benchmarks"]
import orsta_trl
for module in pkgutil.walk_packages(orsta_trl.__path__, "orsta_trl."):
    importlib.import_module(module.name)
import deepspeed, peft, trl, gpu_smoke, trainer_overhead  # noqa
from trl import GRPOTrainer  # noqa
from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig  # noqa
dists = md.packages_distributions()
print(sorted({d for name in list(sys.modules) for d in dists.get(name.split(".")[0], [])}))
"""


def test_the_carry_list_fits_and_covers_every_import_on_the_gpu_path():
    """What travels to the lent GPU machine is under its 64 MiB, and every distribution this path imports (every
    module of the package, TRL, DeepSpeed, the script and its helper, in a fresh interpreter) is either carried
    or on the machine's image."""
    import ast
    import subprocess
    import sys

    smoke = load_script()
    rows = smoke.carry_wheels()
    assert {r["name"] for r in rows} == set(smoke.CARRY)
    total = sum(r["bytes"] for r in rows)
    assert 0 < total < smoke.CARRY_LIMIT_MIB * smoke.MIB, total
    text = smoke.carry_text()
    assert (
        f"total {total / smoke.MIB:.2f} MiB of 64 MiB" in text
        and "deepspeed==" in text
        and "vllm" not in text
    )
    out = subprocess.run(
        [sys.executable, "-c", GPU_PATH, str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
        env={"DS_ACCELERATOR": "cpu", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    imported = {smoke.normalise(d) for d in ast.literal_eval(out.stdout.strip().splitlines()[-1])}
    assert {"trl", "deepspeed", "torch", "transformers"} <= imported
    missing = imported - set(smoke.CARRY) - smoke.ON_MACHINE - {"orsta-trl"}
    assert not missing, f"imported on the GPU path but neither carried nor on the machine: {sorted(missing)}"
