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
