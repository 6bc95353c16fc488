"""Shared fixtures: a tiny Qwen2.5-VL, a tiny text LM and synthetic data, built once per session, offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_vl(tmp_path_factory) -> Path:
    from orsta_trl.models.tiny import make_tiny_vl

    return make_tiny_vl(tmp_path_factory.mktemp("models") / "tiny-vl", min_pixels=3136, max_pixels=50176)


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> Path:
    from orsta_trl.models.tiny import make_tiny_lm

    return make_tiny_lm(tmp_path_factory.mktemp("models") / "tiny-lm")


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    from orsta_trl.data.synth import synth

    return synth(tmp_path_factory.mktemp("synth"), n=4, seed=0)
