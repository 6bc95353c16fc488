"""Shared fixtures: a tiny Qwen2.5-VL, a tiny text LM and synthetic data, built once per session, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One torch thread, here and in every subprocess (as `make demo` runs): on a busy 2-core machine two threads spin
# against the other load and made the in-process demo test several times slower (it took up to 9 min under load)
os.environ.setdefault("OMP_NUM_THREADS", "1")
if "torch" in sys.modules:  # imported before this file (a plugin): the variable came too late for it
    sys.modules["torch"].set_num_threads(1)


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


# ---- helpers shared by the training tests (import them from conftest)

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes/tiny_cpu.yaml"


def sevens_dataset(folder: Path, n: int = 16) -> Path:
    """Records whose reward (1 - normalised edit distance to 24 sevens) a tiny model can learn in tens of steps."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (84, 56), "white").save(folder / "blank.png")
    rows = [
        {
            "id": f"s{i}",
            "data_source": "sevens",
            "prompt": [
                {
                    "role": "user",
                    "content": [{"type": "image"}, {"type": "text", "text": f"Write sevens {i}"}],
                }
            ],
            "images": ["blank.png"],
            "reward": {"verifier": "ocr", "ground_truth": "7" * 24, "params": {"mode": "ned"}},
        }
        for i in range(n)
    ]
    path = folder / "sevens.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def ocr_ned_dataset(synth_data: Path, folder: Path) -> Path:
    """The synthetic OCR records, all scored by edit distance so that random completions get varied rewards."""
    rows = []
    for line in synth_data.read_text().splitlines():
        row = json.loads(line)
        if row["reward"]["verifier"] in ("ocr", "count"):
            if row["reward"]["verifier"] == "ocr":
                row["reward"]["params"] = {"mode": "ned"}
            row["images"] = [str(synth_data.parent / p) for p in row["images"]]
            rows.append(row)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ocr.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def train_cli(overrides: dict, cwd: Path, launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run ``orsta_trl/train.py`` on the demo recipe with ``--key value`` overrides; fail with its output."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    # the demo's evaluation files are not here, and every step is logged
    overrides = {"eval_datasets": [], "dump_completions": 0, "logging_steps": 1, **overrides}
    args = [item for key, value in overrides.items() for item in (f"--{key}", _flag(value))]
    command = (launcher or [sys.executable]) + [str(REPO / "orsta_trl/train.py"), str(RECIPE), *args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def free_port() -> int:
    """A TCP port free on the loopback now, so that concurrent test runs (and CI neighbours) never collide."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _flag(value) -> str:
    return "[" + ", ".join(map(str, value)) + "]" if isinstance(value, list) else str(value)


def tiny_run(model: Path, data: Path, out: Path, **overrides) -> dict:
    """Overrides for a run of the tiny model on ``data`` into ``out``."""
    return {"model_name_or_path": model, "train_files": [data], "output_dir": out, **overrides}


def scalar_tags(run_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values: dict[str, list[float]] = {}
    files = list(run_dir.rglob("events.out.tfevents.*"))
    assert files, f"no TensorBoard event file under {run_dir}"
    for file in files:
        acc = EventAccumulator(str(file), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            values.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    return values


def math_verify_reference(gold: str, completion: str) -> bool:
    """math-verify with its default configuration, the reference of the math verifier, written here without
    our code: ``verify(parse("$gold$"), parse(completion))`` (the gold left alone when already in ``$``), with
    math-verify's SIGALRM timeouts off as the verifier has them."""
    from math_verify import parse, verify

    gold = gold.strip()
    latex = gold if len(gold) > 1 and gold.startswith("$") and gold.endswith("$") else f"${gold}$"
    return bool(
        verify(
            parse(latex, parsing_timeout=None), parse(completion, parsing_timeout=None), timeout_seconds=None
        )
    )


# ---- judges


@pytest.fixture(scope="session")
def sevens_judge(tiny_lm, tmp_path_factory) -> Path:
    """The tiny text LM, told by its generation config to say nothing but "7": a judge with a known reply."""
    import shutil

    from transformers import AutoTokenizer, GenerationConfig

    folder = tmp_path_factory.mktemp("judges") / "sevens"
    shutil.copytree(tiny_lm, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    keep = tokenizer.convert_tokens_to_ids("7")
    config = GenerationConfig.from_pretrained(folder)
    config.suppress_tokens = [i for i in range(len(tokenizer)) if i != keep]
    config.save_pretrained(folder)
    return folder
