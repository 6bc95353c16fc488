"""The command line's own manners: ``--help`` shows defaults, an override typo names the override."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import orsta_trl

REPO = Path(__file__).resolve().parents[1]


def cli(*args, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orsta_trl.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["synth"], ["records per task (default: 32)", "(default: 0)"]),
        (["eval"], ["(default: 256)", "(default: 8)", "(default: average)"]),
        (
            ["filter", "difficulty"],
            ["sampled completions per record (default: 8)", "(default: 0 <= pass < 1)"],
        ),
        (["plan"], ["(default 8: one node)", "GiB per GPU (default 80)"]),
    ],
)
def test_help_shows_defaults(command, shown):
    done = cli(*command, "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())  # argparse wraps lines
    missing = [s for s in shown if s not in text]
    assert not missing, done.stdout


def test_an_override_typo_names_the_override_not_the_recipe_file(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "orsta_trl.train", "recipes/tiny_cpu.yaml", "--learning_rat", "1e-5"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert done.returncode != 0
    assert "command-line override --learning_rat: unknown recipe key 'learning_rat'" in done.stderr
    assert "(did you mean 'learning_rate'?)" in done.stderr and "tiny_cpu.yaml" not in done.stderr
    with pytest.raises(orsta_trl.RecipeError, match=r"^keyword argument max_step: .*'max_steps'"):
        orsta_trl.load_recipe(REPO / "recipes/tiny_cpu.yaml", max_step=3)
    # a typo inside the file is still the file's
    (tmp_path / "r.yaml").write_text("learning_rat: 1.0e-6\n")
    with pytest.raises(orsta_trl.RecipeError, match=r"r\.yaml: unknown recipe key 'learning_rat'"):
        orsta_trl.load_recipe(tmp_path / "r.yaml")
