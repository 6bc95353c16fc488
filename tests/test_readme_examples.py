"""The README's own examples, read from README.md and run as written, each in a temporary folder.

* every command of the "Commands" table, run through the ``orsta-trl`` entry point against the demo's kind of
  data (``synth --tasks colour,shape``) and a tiny LoRA run; the table's commands and options are read from
  the README, so a command added there without a run here fails;
* the tool-use walkthrough: the README's recipe keys, a user module in the working folder and the README's MCP
  server, with neither ``PYTHONPATH`` nor the virtual environment on ``PATH``;
* the figures the README quotes from quick commands (the memory plan of ``det_7b``) against their output.

None of them reads or writes the repository's ``demo/`` (checked). The "From Python" example runs in
``tests/test_api.py::test_the_readme_python_example_runs_as_written``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
ORSTA = Path(sys.executable).parent / "orsta-trl"  # the console script `make setup` installs


def section(heading: str) -> str:
    """The README's text under ``## heading`` up to the next ``## ``."""
    start = README.index(f"\n## {heading}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.DOTALL)


def offline_env(**extra) -> dict:
    """The user's shell: offline hub, one torch thread, no PYTHONPATH, the venv not activated."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return {**env, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **extra}


def demo_state() -> dict[str, float]:
    demo = REPO / "demo"
    return {str(p): p.stat().st_mtime for p in demo.rglob("*")} if demo.exists() else {}


@pytest.fixture
def untouched_demo():
    before = demo_state()
    yield
    assert demo_state() == before, "a README example touched the repository's demo/ folder"


def run(args: list, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=offline_env(), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{shlex.join(map(str, args))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


# ---- the command table ----------------------------------------------------------------------------------------


def table_commands() -> dict[str, set[str]]:
    """``{README command template: its options}`` from the Commands table."""
    rows = re.findall(r"^\| `orsta-trl ([^`]+)` \|", section("Commands"), re.MULTILINE)
    return {row: set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", row)) for row in rows}


def _run_table_commands(tmp: Path) -> dict[str, subprocess.CompletedProcess]:
    """Each README command template, run concretely in ``tmp`` (in the order the outputs need)."""
    recipe = (REPO / "recipes/demo_cpu.yaml").read_text(encoding="utf-8")
    for demo_path, here in (("demo/warm", "tiny-vl"), ("demo/easy_eval", "easy_eval"), ("demo/easy", "easy")):
        recipe = recipe.replace(demo_path, here)
    (tmp / "recipe.yaml").write_text(recipe.replace("demo/run", "run"))
    (tmp / "questions.jsonl").write_text(
        "".join(json.dumps(q) + "\n" for q in [{"question": "7 * 6?", "answer": "42"}, {"question": "1+1?", "answer": "2"}])
    )  # fmt: skip
    (tmp / "rules.yaml").write_text("math_answer: {max_length: 30}\n")
    concrete = {
        "make-tiny DIR [--text]": [["make-tiny", "tiny-vl"], ["make-tiny", "tiny-lm", "--text"]],
        "synth OUT --n N --seed S [--tasks ...]": [
            ["synth", "easy", "--n", 4, "--seed", 0, "--tasks", "colour,shape"],
            ["synth", "easy_eval", "--n", 2, "--seed", 1000, "--tasks", "colour,shape"],
        ],
        "check-data PATH ... [--skip-invalid]": [
            ["check-data", "easy/data.jsonl", "easy_eval/data.jsonl"],
            ["check-data", "easy/data.jsonl", "--skip-invalid"],
        ],
        "check-recipe RECIPE ... [--skip-paths]": [
            ["check-recipe", "recipe.yaml"],
            ["check-recipe", REPO / "recipes/det_7b.yaml", "--skip-paths"],
        ],
        "train RECIPE [--key value ...]": [
            [
                "train",
                "recipe.yaml",
                "--max_steps",
                2,
                "--eval_steps",
                2,
                "--logging_steps",
                1,
                "--per_device_train_batch_size",
                16,
                "--per_device_eval_batch_size",
                8,
                "--use_peft",
                "true",
                "--lora_r",
                4,
                "--lora_alpha",
                8,
                "--dump_completions",
                1.0,
            ]
        ],  # fmt: skip
        "score RECORDS COMPLETIONS -o OUT [--progress P] [--recipe R]": [
            [
                "score",
                "easy/data.jsonl",
                "run/completions/step_0000001.jsonl",
                "-o",
                "scored.jsonl",
                "--progress",
                0.5,
                "--recipe",
                "recipe.yaml",
            ]
        ],  # fmt: skip
        "eval CHECKPOINT DATA ... [-o OUT.json] [--recipe R]": [
            [
                "eval",
                "run",
                "easy_eval/data.jsonl",
                "-o",
                "eval.json",
                "--max-new-tokens",
                10,
                "--recipe",
                "recipe.yaml",
            ]
        ],  # fmt: skip
        "report RUN_DIR [-o DIR]": [["report", "run", "-o", "plots"]],
        "view RUN_DIR [-o OUT.html] [--source S ...] [--steps A:B]": [
            ["view", "run", "-o", "view.html", "--source", "synth_colour", "synth_shape", "--steps", "1:100"]
        ],
        "convert KIND SRC OUT [...]": [["convert", "qa", "questions.jsonl", "data/qa.jsonl"]],
        "filter rules IN OUT [--config C] [--recipe R]": [
            [
                "filter",
                "rules",
                "data/qa.jsonl",
                "clean/qa.jsonl",
                "--config",
                "rules.yaml",
                "--recipe",
                "recipe.yaml",
            ]
        ],  # fmt: skip
        'filter difficulty IN OUT --model M --k 8 --keep "0 <= pass < 1"': [
            [
                "filter",
                "difficulty",
                "easy_eval/data.jsonl",
                "mid.jsonl",
                "--model",
                "tiny-vl",
                "--k",
                8,
                "--keep",
                "0 <= pass < 1",
                "--max-new-tokens",
                10,
                "--recipe",
                "recipe.yaml",
            ]
        ],  # fmt: skip
        "plan RECIPE ... [--gpus N] [--gpu-memory GIB] [--json]": [
            ["plan", "recipe.yaml", "--gpus", 1, "--gpu-memory", 24],
            ["plan", REPO / "recipes/det_7b.yaml", "--json"],
        ],
        "sft RECIPE OUT [--key value ...]": [["sft", "recipe.yaml", "warm", "--warmup_sft_steps", 2]],
        "merge CHECKPOINT OUT": [["merge", "run", "merged"]],
    }
    readme = table_commands()
    assert set(concrete) == set(readme), "the README's command table and this test list different commands"
    for template, runs in concrete.items():
        used = {str(a) for args in runs for a in args}
        missing = {o for o in readme[template] if o not in used and o != "--key"}
        assert not missing, f"{template}: the README's options {missing} are not exercised"
    named = {f"{template} #{i}": args for template, runs in concrete.items() for i, args in enumerate(runs)}
    # the tiny model and the data first; then two lanes side by side (on 2 idle cores about 30 s less than one
    # after the other): the LoRA run and what reads it, and everything else, each lane in the order above
    first = ["make-tiny DIR [--text] #0", "synth OUT --n N --seed S [--tasks ...] #0",
             "synth OUT --n N --seed S [--tasks ...] #1"]  # fmt: skip
    reads_the_run = [
        k for k in named if k.split()[0] in ("train", "score", "eval", "report", "view", "merge")
    ]
    others = [k for k in named if k not in first and k not in reads_the_run]

    def lane(keys: list[str]) -> dict[str, subprocess.CompletedProcess]:
        return {key: run([ORSTA, *named[key]], tmp, timeout=900) for key in keys}

    out = lane(first)
    with ThreadPoolExecutor(2) as pool:
        for done in pool.map(lane, [reads_the_run, others]):
            out.update(done)
    assert sorted(out) == sorted(named)
    return out


def test_every_command_of_the_readme_table_runs(tmp_path, untouched_demo):
    out = _run_table_commands(tmp_path)
    assert (tmp_path / "tiny-lm/config.json").exists() and (tmp_path / "tiny-vl/config.json").exists()
    assert "synth_colour" in out["check-data PATH ... [--skip-invalid] #0"].stdout
    assert (tmp_path / "run/adapter_config.json").exists()  # a LoRA run: eval and merge read the adapter
    assert len((tmp_path / "scored.jsonl").read_text().splitlines()) == len(
        (tmp_path / "run/completions/step_0000001.jsonl").read_text().splitlines()
    )
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["generation"]["max_new_tokens"] == 10 and len(report["completions"]) == 4
    assert list((tmp_path / "plots").glob("*.png")) and (tmp_path / "plots/summary.md").exists()
    assert "synth_colour" in (tmp_path / "view.html").read_text(encoding="utf-8")
    assert len((tmp_path / "data/qa.jsonl").read_text().splitlines()) == 2
    assert (tmp_path / "clean/qa.jsonl").exists() and (tmp_path / "mid.jsonl").exists()
    json.loads(out["plan RECIPE ... [--gpus N] [--gpu-memory GIB] [--json] #1"].stdout)
    assert (tmp_path / "warm/config.json").exists() and (tmp_path / "merged/config.json").exists()
    sft = out["sft RECIPE OUT [--key value ...] #0"]
    assert (
        "2/2 [" in sft.stderr and "step 2/2  loss" in sft.stdout + sft.stderr
    )  # a progress bar, compact lines
    assert "{'" not in sft.stdout + sft.stderr


# ---- the tool-use walkthrough ---------------------------------------------------------------------------------

USER_MODULE = '''"""Tools of my own."""


def double(x: int) -> int:
    """Double a number.

    Args:
        x: the number to double.
    """
    return 2 * x
'''


def test_tool_walkthrough_with_a_user_module_and_the_readme_mcp_server(tmp_path, untouched_demo):
    text = section("Tool use (multi-turn)")
    keys = code_blocks(text, "yaml")[0]
    servers = [b for b in code_blocks(text, "python") if "MCPServer" in b or "FastMCP" in b]
    assert servers, "the README's tool section shows no MCP server"
    script = re.search(r"args: \[([\w/.]+\.py)\]", keys).group(1)  # where the recipe expects the server
    (tmp_path / script).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / script).write_text(servers[0])
    module = re.search(r"tool_modules: \[([\w.]+)\]", keys).group(1)
    (tmp_path / module.replace(".", "/")).parent.mkdir(parents=True)
    (tmp_path / (module.replace(".", "/") + ".py")).write_text(USER_MODULE)
    run([ORSTA, "make-tiny", "tiny-lm", "--text"], tmp_path)
    records = [{"id": "q1", "data_source": "toy", "prompt": [{"role": "user", "content": "6*7?"}],
                "reward": {"verifier": "math", "ground_truth": "42"}}]  # fmt: skip
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "tools.yaml").write_text(
        keys
        + "model_name_or_path: tiny-lm\ntrain_files: [q.jsonl]\noutput_dir: run\nuse_cpu: true\nbf16: false\n"
    )
    checked = run([ORSTA, "check-recipe", "tools.yaml"], tmp_path)
    assert "ok" in checked.stdout
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import orsta_trl\n"
        "from orsta_trl.tools.registry import build_tools\n"
        "o = orsta_trl.load_recipe('tools.yaml').orsta\n"
        "tools = build_tools(o.tools, o.tool_modules, o.mcp_servers, timeout_s=o.tool_timeout_s)\n"
        "by_name = {t.__name__: t for t in tools.tools}\n"
        "print('TOOLS', sorted(by_name))\n"
        "print('DOUBLE', by_name['double'](x=21))\n"
        "print('CALC', by_name['calculator'](expression='6*7'))\n"
        "mcp = [name for name in by_name if name not in ('double', 'calculator', 'python')]\n"
        "print('MCP', mcp)\n"
        "tools.close()\n"
    )
    done = run([sys.executable, probe], tmp_path)
    assert "DOUBLE 42" in done.stdout and "CALC 42" in done.stdout, done.stdout
    assert re.search(r"MCP \['\w+'\]", done.stdout), done.stdout  # the README server's tool was listed


# ---- figures the README quotes ----------------------------------------------------------------------------------


def test_memory_plan_figures_in_the_readme_are_the_commands_output():
    from orsta_trl.memory_plan import plan_command

    quoted = re.search(
        r"orsta-trl plan recipes/det_7b.yaml\s+# 8 x 80 GiB: fits \(ZeRO-2 ([\d.]+) GiB, ZeRO-3 ([\d.]+) GiB\)", README
    )  # fmt: skip
    assert quoted, "the README no longer quotes the det_7b plan"
    text = plan_command([str(REPO / "recipes/det_7b.yaml")], 8, 80.0, False)
    own = {line.split()[1]: line.split()[-2] for line in text.splitlines() if line.startswith("* ")}
    assert (own["2"], own["3"]) == quoted.groups() and "verdict: fits" in text
    hint = re.search(r"orsta-trl plan recipes/det_7b.yaml --gpus 2 +# does not fit: \"(.+)\"", README).group(
        1
    )
    two = plan_command([str(REPO / "recipes/det_7b.yaml")], 2, 80.0, False)
    assert hint in two and "verdict: fits" not in two, two[-1500:]


def test_every_measured_figure_says_how_and_when():
    rows = re.findall(
        r"^\|(?!---)(.+)\|$", section("Measured on this project's CI machine (2 cores, 24 GiB, no GPU)"), re.M
    )
    header, *body = [[c.strip() for c in row.split("|")] for row in rows]
    assert header == ["what", "figure", "command", "measured"] and len(body) > 20
    for what, figure, command, measured in body:
        assert figure and "`" in command, f"{what}: no command gives it"
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", measured), f"{what}: no date"


def test_tiny_parameter_counts_in_the_readme_are_what_training_prints(tiny_vl):
    from orsta_trl.models.loading import format_counts, freeze_vision, load_model, parameter_counts

    model = load_model(str(tiny_vl), vision=True)
    freeze_vision(model)
    printed = format_counts(parameter_counts(model))  # the line `train` prints
    total, trainable = re.search(r"([\d.]+ M) total, ([\d.]+ M) trainable", printed).groups()
    assert f"| {total} total, {trainable} trainable |" in README  # the Measured table
    assert f"({total} parameters)" in README  # the demo's description


def test_the_readme_notebook_command_runs(tmp_path, untouched_demo):
    (command,) = [b for b in code_blocks(section("Notebooks"), "bash") if "nbconvert" in b]
    args = shlex.split(command.replace("/tmp/notebooks", str(tmp_path)))
    run([REPO / args[0], *args[1:]], REPO, timeout=900)
    import nbformat

    (executed,) = tmp_path.glob("*.ipynb")
    outputs = [o for cell in nbformat.read(executed, as_version=4).cells for o in cell.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs)


def test_the_console_line_in_the_readme_is_what_a_log_prints():
    from orsta_trl.monitor.writing import log_line

    (quoted,) = [
        b.strip()
        for b in code_blocks(section("Monitoring: every metric per data source"), "")
        if "step " in b
    ]
    logs = {"loss": 0.0012, "grad_norm": 0.5, "reward": 0.625, "reward_std": 0.354, "epoch": "0.3",
            "source/synth_colour/accuracy": 0.75, "source/synth_shape/accuracy": 0.5,
            "source/synth_colour/reward": 0.8}  # fmt: skip
    assert log_line(20, 60, logs) == quoted
