"""Built-in tools: the python sandbox's limits, the calculator without eval, crop/zoom, the registry and recipe keys,
and how the rewards layer reads a tool-loop rollout (real outcomes, not the text)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from PIL import Image

from orsta_trl.errors import RecipeError
from orsta_trl.recipe import load_recipe
from orsta_trl.rewards.rollout import read_rollout
from orsta_trl.tools.arithmetic import calculator
from orsta_trl.tools.crop import image_tools_factory
from orsta_trl.tools.registry import build_tools, guarded
from orsta_trl.tools.result import ToolResult
from orsta_trl.tools.sandbox import network_namespace_available, run_python

LIMIT_S = 2.0
#: The wall time a sandbox run may take past its own limit: starting ``python -I`` under ``unshare``, then
#: killing and reaping its process group, take a fraction of a second on an idle machine and a few seconds
#: on a 2-core machine at load 7 (two busy loops beside the suite, and other jobs). Every case below fails by
#: running far longer than limit + margin (a 60 s sleep, or until killed by its own limit).
MARGIN_S = 8.0
#: The limit of the cases that test another limit than time (memory, output, refusals): long enough that
#: the time limit never fires first on a loaded machine, and the message names the limit under test.
OTHER_LIMIT_S = 30.0


def _sandbox(code: str, timeout_s: float = OTHER_LIMIT_S, **limits):
    started = time.perf_counter()
    result = run_python(code, timeout_s=timeout_s, memory_mb=512, **limits)
    return result, time.perf_counter() - started


def test_sandbox_runs_code_in_a_fresh_directory_and_returns_stdout():
    result, _ = _sandbox(
        "import os\nopen('a.txt', 'w').write('hi')\nprint(open('a.txt').read(), sorted(os.listdir('.')))"
    )
    assert result.ok and result.text == "hi ['a.txt']\n"
    again, _ = _sandbox("import os; print(os.listdir('.'))")
    assert again.text == "[]\n"  # nothing left from the previous run


@pytest.mark.parametrize(
    ("name", "code", "message"),
    [
        ("infinite loop", "while True: pass", "time limit"),
        ("sleeping", "import time; time.sleep(60)", "time limit"),
        ("memory bomb", "x = bytearray(4 * 1024**3)", "MemoryError"),
        ("growing memory", "xs = []\nwhile True: xs.append(bytearray(10**7))", "MemoryError"),
        ("fork bomb", "import os\nwhile True: os.fork()", "os.fork is not allowed"),
        ("subprocess", "import subprocess; subprocess.run(['sh', '-c', ':(){ :|:& };:'])", "not allowed"),
        ("write outside", "open('/tmp/orsta-escape-{pid}', 'w').write('x')", "outside the working directory"),
        ("write above", "open('../escape', 'w').write('x')", "outside the working directory"),
        ("list home", "import os; print(os.listdir({home!r}))", "outside the working directory"),
        ("socket", "import socket; socket.create_connection(('1.1.1.1', 80), timeout=1)", "not allowed"),
        ("ctypes", "import ctypes; ctypes.CDLL('libc.so.6').fork()", "not allowed"),
        (
            "spawner re-import",
            "import sys; del sys.modules['_posixsubprocess']; import _posixsubprocess",
            "not allowed",
        ),
        ("output flood", "while True: print('x' * 4096)", "output limit"),
    ],
)
def test_sandbox_turns_each_escape_into_an_error_within_the_limits(name, code, message):
    code = code.replace("{pid}", str(os.getpid())).replace("{home!r}", repr(str(Path.home())))
    limit = LIMIT_S if message == "time limit" else OTHER_LIMIT_S
    result, seconds = _sandbox(code, timeout_s=limit)
    assert not result.ok and result.text.startswith("Error") and message in result.text, (name, result.text)
    assert seconds < limit + MARGIN_S, (name, seconds)
    assert not Path(f"/tmp/orsta-escape-{os.getpid()}").exists()


def test_sandbox_cannot_read_files_outside_its_directory(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    for path in (secret, Path.home() / ".bashrc", Path("/etc/passwd")):
        result, _ = _sandbox(f"print(open({str(path)!r}).read())")
        assert (
            not result.ok and "s3cret" not in result.text and "outside the working directory" in result.text
        )


def _namespaces_work_here() -> bool:
    """Whether this machine lets an unprivileged user make a network namespace, asked of ``unshare`` itself,
    not of the code under test (its probe could break and hide the missing cut)."""
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=60).returncode == 0


NAMESPACES = _namespaces_work_here()
no_namespaces = pytest.mark.skipif(
    not NAMESPACES,
    reason="`unshare -rn true` fails on this machine: only the audit hook blocks sockets (README)",
)


@no_namespaces
def test_the_sandbox_runs_code_in_its_own_network_namespace():
    """Where namespaces work (here, in CI), the sandbox's probe says so and its code sees another network."""
    assert network_namespace_available()
    result = run_python("import os; print(os.readlink('/proc/self/ns/net'))", timeout_s=30, memory_mb=512)
    assert result.ok and result.text.startswith("net:[")
    assert result.text.strip() != os.readlink("/proc/self/ns/net")


@no_namespaces
def test_the_network_namespace_cuts_the_network_below_python():
    """The layer under the audit hook: a plain python under the sandbox's ``unshare`` cannot reach a server
    that listens on this machine's loopback (checked without the hook, as code that got past it would run)."""
    import socket
    import subprocess
    import sys

    from orsta_trl.tools.sandbox import _UNSHARE

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        probe = f"import socket\ntry:\n socket.create_connection(('127.0.0.1', {port}), timeout=2)\n print('reached')\nexcept OSError as e:\n print('refused', e)"
        inside = subprocess.run(
            [*_UNSHARE, sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
        )
        outside = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert outside.stdout.startswith("reached")
    assert inside.stdout.startswith("refused"), inside.stdout + inside.stderr


def test_sandbox_allows_the_python_installation_for_imports():
    result, _ = _sandbox(
        "import json, fractions, numpy\nprint(json.dumps(int(numpy.arange(4).sum())), fractions.Fraction(1, 3))"
    )
    assert result.ok and result.text == "6 1/3\n"


def test_calculator_evaluates_arithmetic_without_eval():
    assert calculator("(3 + 4) * 2 ** 3") == "56"
    assert calculator("sqrt(16) + 2^3") == "12"
    assert calculator("7 / 2") == "3.5"
    for bad in (
        "__import__('os').system('true')",
        "open('/etc/passwd')",
        "[x for x in ()]",
        "a + 1",
        "'s' * 3",
    ):
        assert calculator(bad).startswith("Error: unsupported syntax"), bad
    started = time.process_time()  # a cost claim: CPU time of this process, not stretched by a busy machine
    for huge in ("9**9**9", "10**5000", "factorial(10**6)", "(10**3000) * (10**3000)"):
        assert calculator(huge).startswith("Error"), huge
    assert time.process_time() - started < 1.0
    assert calculator("1/0").startswith("Error: ZeroDivisionError")


def test_crop_and_zoom_return_the_region_as_an_image_in_model_coordinates():
    image = Image.new("RGB", (1000, 500), "white")
    image.paste(Image.new("RGB", (100, 100), "red"), (0, 0))
    tools = image_tools_factory(["crop", "zoom"], min_pixels=3136, max_pixels=112 * 56)()
    tools.reset(images=[image])  # the model sees the image resized to 112 x 56: a scale of about 8.9
    parts = tools.crop(0, 0, 11.2, 11.2)
    region = parts[0]["image"]
    assert parts[0]["type"] == "image" and region.getpixel((50, 50)) == (255, 0, 0)
    assert region.size == (100, 100)  # original pixels (11.2 resized pixels x 1000/112), not the resized ones
    assert tools.zoom(0, 0, 11.2, 11.2, factor=2)[0]["image"].width == 2 * region.width
    for result in (
        tools.crop(200, 200, 300, 300),
        tools.crop(0, 0, 1, 1, image_index=3),
        tools.zoom(0, 0, 5, 5, 10),
    ):
        assert isinstance(result, ToolResult) and not result.ok and result.startswith("Error")
    only_crop = image_tools_factory(["crop"], 3136, 50176)()
    assert hasattr(only_crop, "crop") and not hasattr(only_crop, "zoom")


def test_guarded_tools_never_raise_and_keep_their_schema():
    from transformers.utils import get_json_schema

    def divide(a: float, b: float) -> str:
        """Divide a by b.

        Args:
            a: the dividend
            b: the divisor
        """
        return str(a / b)

    def slow(seconds: float) -> str:
        """Sleep.

        Args:
            seconds: how long
        """
        time.sleep(seconds)
        return "done"

    tool = guarded(divide)
    assert get_json_schema(tool) == get_json_schema(divide)
    assert tool(a=1, b=4) == "0.25" and tool(a=1, b=4).ok
    assert tool(a=1, b=0).startswith("Error: ZeroDivisionError") and not tool(a=1, b=0).ok
    assert not tool(c=1).ok  # the model's wrong argument names
    started = time.perf_counter()
    late = guarded(slow, timeout_s=0.2)(seconds=5)
    # the limit fired (the message), and did not wait for the call: that would take the tool's 5 s; the 4.8 s
    # between them is the margin for a loaded machine (a thread start and a join)
    assert not late.ok and "longer than 0.2 s" in late and time.perf_counter() - started < 5.0


def test_recipe_tool_keys_are_checked_before_anything_starts(tmp_path, monkeypatch):
    base = {"use_cpu": True, "bf16": False, "output_dir": str(tmp_path)}
    cases = {
        "tools: unknown tool 'pyhton' (did you mean 'python'?)": {"tools": ["pyhton"]},
        "tool_modules: no module named 'no_such_module'": {"tool_modules": ["no_such_module"]},
        "mcp_servers[0].command: required": {"mcp_servers": [{"name": "x"}]},
        "mcp_servers[0]: unknown key(s) ['cmd']": {"mcp_servers": [{"name": "x", "command": "y", "cmd": 1}]},
        "tool_timeout_s: a positive number": {"tools": ["python"], "tool_timeout_s": 0},
    }
    for message, keys in cases.items():
        with pytest.raises(RecipeError, match=re.escape(message)):
            load_recipe(None, **base, **keys)
    (tmp_path / "bad_tools.py").write_text("def nodoc(x: int) -> str:\n    return str(x)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RecipeError, match=r"bad_tools.nodoc cannot be a tool"):
        load_recipe(None, **base, tool_modules=["bad_tools"])
    with pytest.raises(ValueError, match=r"need a vision-language model"):
        build_tools(["crop"], vision=False)
    assert build_tools(["calculator", "python"]).names == ["calculator", "python"]


def test_a_rollout_is_scored_on_its_real_outcomes_not_its_text():
    from orsta_trl.data.records import load_records
    from orsta_trl.rewards.router import RewardRouter

    call = {"type": "function", "function": {"name": "python", "arguments": {"code": "print('Error', 5)"}}}
    rollout = [
        {"role": "assistant", "content": "<think>run it</think>", "tool_calls": [call]},
        # the program printed a line starting with "Error", and succeeded: the transcript alone says failure
        {"role": "tool", "name": "python", "content": ToolResult("Error 5\n", ok=True)},
        {"role": "assistant", "content": r"<answer>\boxed{5}</answer>"},
    ]
    unanswered = [{"role": "assistant", "content": "<think>t</think>", "tool_calls": [call, call]}]
    record = {
        "id": "a",
        "data_source": "t",
        "prompt": [{"role": "user", "content": "?"}],
        "reward": {"verifier": "tool", "ground_truth": "5"},
    }
    router = RewardRouter(load_records([record]))
    try:
        real, limit = router.score_batch([rollout, unanswered], ["t", "t"], ["a", "a"], rollouts=True)
        as_text = router.score_batch([read_rollout(rollout)[0]], ["t"], ["a"])[0]
    finally:
        router.close()
    assert real.tools == {"tool_outcomes": [True], "tool_names": ["python"], "turns": 2, "hit_limit": False}
    assert real.parts["tool_success"] == 1.0 and real.accuracy == 1.0 and real.format == 1.0
    assert (
        as_text.parts["tool_success"] == 0.0
    )  # what the text-only fallback (orsta-trl score on a dump) reads
    assert limit.tools["hit_limit"] and limit.tools["tool_outcomes"] == [False, False]
    assert limit.parts["tool_success"] == 0.0 and limit.reason == "no_answer"


def test_the_built_in_tools_are_plain_functions_of_the_package():
    import orsta_trl.tools

    assert orsta_trl.tools.calculator("2 + 3 * 4").strip() == "14"
    assert orsta_trl.tools.python("print(6 * 7)").strip() == "42"
    assert orsta_trl.tools.calculator.__name__ == "calculator" and orsta_trl.tools.python.__name__ == "python"


USER_TOOLS = '''
def add(a: int, b: int) -> str:
    """Add two integers.

    Args:
        a: the first integer
        b: the second integer
    """
    return str(a + b)
'''


def test_user_modules_and_the_readme_mcp_server_work_from_the_working_folder_without_pythonpath(
    tmp_path, tiny_lm
):
    """``orsta-trl check-recipe`` and ``orsta-trl train`` (the console script, whose sys.path[0] is the venv's
    bin folder) from a working folder holding ``my_pkg/tools.py`` and the README's ``servers/calc.py``: no
    PYTHONPATH, and only the system folders on PATH (``command: python`` is the training interpreter)."""
    import json
    import subprocess
    import sys

    from test_tools_mcp import readme_mcp_server

    (tmp_path / "my_pkg").mkdir()
    (tmp_path / "my_pkg" / "__init__.py").write_text("")
    (tmp_path / "my_pkg" / "tools.py").write_text(USER_TOOLS)
    (tmp_path / "servers").mkdir()
    (tmp_path / "servers" / "calc.py").write_text(readme_mcp_server())
    record = {
        "id": "q0",
        "data_source": "tool_math",
        "prompt": [{"role": "user", "content": "What is 2 + 3?"}],
        "reward": {"verifier": "tool", "ground_truth": "5", "params": {"require_tool": True}},
    }
    (tmp_path / "data.jsonl").write_text(json.dumps(record) + "\n")
    recipe = f"""
model_name_or_path: {tiny_lm}
train_files: [data.jsonl]
output_dir: run
tool_modules: [my_pkg.tools]
mcp_servers:
  - {{name: calc, command: python, args: [servers/calc.py], env: {{CALC_DIGITS: "6"}}}}
max_steps: 1
num_generations: 2
per_device_train_batch_size: 2
max_completion_length: 16
max_tool_calling_iterations: 1
use_cpu: true
bf16: false
gradient_checkpointing: false
save_strategy: "no"
report_to: []
"""
    (tmp_path / "recipe.yaml").write_text(recipe)
    (tmp_path / "typo.yaml").write_text(recipe.replace("my_pkg.tools", "my_pkgg.tools"))
    cli = str(Path(sys.executable).parent / "orsta-trl")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}

    def run(*args):
        return subprocess.run(
            [cli, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )

    checked = run("check-recipe", "recipe.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr[-3000:]
    typo = run("check-recipe", "typo.yaml")
    assert typo.returncode == 1
    assert "no module named 'my_pkgg.tools'" in typo.stderr and str(tmp_path) in typo.stderr  # folders tried
    trained = run("train", "recipe.yaml")
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-3000:]
    assert "tools: add, multiply" in trained.stdout + trained.stderr
    assert (tmp_path / "run" / "config.json").exists()
