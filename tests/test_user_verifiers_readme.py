"""The README's "Your own reward" example, run as written in a fresh folder: a user's per-sample verifier and TRL's
own ``think_format_reward`` check the data (``orsta-trl check-data --recipe``), score completions
(``orsta-trl score --recipe``) and train the tiny text model through ``orsta_trl/train.py`` in a subprocess."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from conftest import scalar_tags

REPO = Path(__file__).resolve().parents[1]


def example() -> tuple[dict[str, str], list[list[str]]]:
    """The section's files (``File `NAME`:`` before a fenced block) and its bash commands."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split("## Your own reward", 1)[1]
    section = section.split("\n## ", 1)[0]
    files = {
        name: body
        for name, body in re.findall(r"File `([^`]+)`[^\n]*:\n\n```\w+\n(.*?)```", section, re.DOTALL)
    }
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return files, [shlex.split(line) for line in block.splitlines() if line.strip()]


def test_the_readme_example_checks_scores_and_trains_as_written(tmp_path):
    files, commands = example()
    assert set(files) == {"my_rewards.py", "my_data.jsonl", "my_completions.jsonl", "my_recipe.yaml"}
    for name, body in files.items():
        (tmp_path / name).write_text(body, encoding="utf-8")
    (tmp_path / "orsta_trl").symlink_to(REPO / "orsta_trl")  # "run from the repository root"
    # the user's shell: the package installed, no PYTHONPATH; the user's module found in the working folder
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "HF_HUB_OFFLINE": "1"}
    bin_dir = Path(sys.executable).parent
    outputs = []
    for command in commands:
        program = sys.executable if command[0] == "python" else str(bin_dir / command[0])
        result = subprocess.run(
            [program, *command[1:]], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900
        )
        assert result.returncode == 0, (command, result.stdout[-3000:], result.stderr[-5000:])
        outputs.append(result.stdout + result.stderr)
    assert [c[:2] for c in commands] == [
        ["orsta-trl", "make-tiny"],
        ["orsta-trl", "check-data"],
        ["orsta-trl", "score"],
        ["python", "orsta_trl/train.py"],
    ]
    check, _, train = outputs[1], outputs[2], outputs[3]
    assert re.search(r"capitals\s+2\s+0\s+exact_answer=2", check), check
    assert re.search(r"thinking\s+1\s+0\s+think_format_reward=1", check), check

    scored = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    assert [(r["id"], r["verifier"], r["reward"]) for r in scored] == [
        ("fr", "exact_answer", 1.0),
        ("jp", "exact_answer", 0.0),
        ("think", "think_format_reward", 1.0),
    ]
    assert scored[0]["parts"] == {"brevity": 1.0} and scored[0]["format"] == 1.0

    assert "verifier 'exact_answer' runs in the reward workers" in train, train[-3000:]
    assert "verifier 'think_format_reward' runs in process, once per batch" in train
    tags = scalar_tags(tmp_path / "runs" / "my_reward")
    assert len(tags["train/rewards/orsta/mean"]) == 2
    for source in ("capitals", "thinking"):
        values = tags[f"train/source/{source}/reward"]
        assert len(values) == 2 and all(0.0 <= v <= 1.0 for v in values), (source, values)
