"""MCP tools with a real MCP server (``tests/data/mcp_server.py``, the official SDK) started over stdio: listed
at start with the server's description and input schema, rendered into the prompt, called like any tool; a
call past ``tool_timeout_s`` and a server that died come back as ``Error`` results; the server stops at the
end. ``tests/test_tool_loop.py`` runs TRL's tool loop with this server's tool on the warmed-up tiny model."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from orsta_trl.tools.registry import build_tools

SERVER = str(Path(__file__).parent / "data" / "mcp_server.py")


def _servers(tmp_path, name="calc"):
    return [{"name": name, "command": sys.executable, "args": [SERVER], "env": {"ORSTA_TEST": "1"}}]


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


@pytest.fixture(scope="module")
def toolset(tmp_path_factory):
    before = _children()
    tools = build_tools(mcp_servers=_servers(tmp_path_factory.mktemp("mcp")), timeout_s=1.5)
    yield tools, _children() - before
    tools.close()


def test_tools_are_listed_with_the_servers_description_and_schema(toolset, tiny_lm):
    from transformers import AutoTokenizer

    from orsta_trl.tools.chat import use_tool_template

    tools, _ = toolset
    assert tools.names == ["add", "slow", "crash"]
    add = tools.tools[0]
    assert add["function"]["description"] == "Add two integers and return the sum."
    assert add["function"]["parameters"]["properties"]["a"]["type"] == "integer"
    assert add["function"]["parameters"]["required"] == ["a", "b"]
    tok = use_tool_template(AutoTokenizer.from_pretrained(tiny_lm), vision=False)
    prompt = tok.apply_chat_template([{"role": "user", "content": "1+2?"}], tools=tools.tools, tokenize=False)
    assert '"name": "add", "description": "Add two integers and return the sum."' in prompt


def test_calls_succeed_or_come_back_as_errors_never_raise(toolset):
    tools, _ = toolset
    add, slow, crash = tools.tools
    assert add(a=2, b=3) == "5" and add(a=2, b=3).ok
    bad = add(a="x")
    assert not bad.ok and bad.startswith("Error")
    started = time.perf_counter()
    late = slow(seconds=5)
    assert not late.ok and late.startswith("Error") and "1.5 s" in late
    # the 1.5 s limit fired (the message) without waiting for the tool's 5 s: the 3.5 s between them is the
    # margin for a loaded machine
    assert time.perf_counter() - started < 5.0
    assert add(a=1, b=1) == "2"  # the server still answers after a timed-out call
    dead = crash()
    assert not dead.ok and dead.startswith("Error")
    after = add(a=1, b=1)
    assert not after.ok and after.startswith("Error")  # a dead server: Error results, no exception


def test_servers_start_once_and_stop_at_the_end(tmp_path):
    before = _children()
    tools = build_tools(mcp_servers=_servers(tmp_path, "one"), timeout_s=5)
    started = _children() - before
    assert len([p for p in started if psutil.pid_exists(p)]) >= 1
    assert tools.tools[0](a=40, b=2) == "42"
    tools.close()
    deadline = time.time() + 10
    while time.time() < deadline and any(
        psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in started
    ):
        time.sleep(0.1)
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in started)


def test_a_server_that_cannot_start_is_named_before_training(tmp_path):
    bad = [{"name": "broken", "command": sys.executable, "args": ["-c", "import sys; sys.exit(2)"]}]
    with pytest.raises(ValueError, match="server 'broken'"):
        build_tools(mcp_servers=bad, timeout_s=2)


def test_a_server_that_cannot_start_shows_its_stderr_not_an_exception_group(tmp_path):
    # the message is assembled by the child, so that it cannot come from the command line shown in the error
    code = "import sys; sys.stderr.write('calc server: no index ' + 'at data/index\\n'); sys.exit(2)"
    bad = [{"name": "broken", "command": sys.executable, "args": ["-c", code]}]
    with pytest.raises(ValueError, match="server 'broken'") as raised:
        build_tools(mcp_servers=bad, timeout_s=2)
    assert "calc server: no index at data/index" in str(raised.value)


def readme_mcp_server() -> str:
    """The MCP server shipped in the README (the python block after "An MCP server"), verbatim."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    return readme.split("**An MCP server**", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_server_runs_under_command_python_without_the_venv_on_path(tmp_path):
    """``command: python`` is the training interpreter: with only the system folders on PATH (whose python, if
    any, lacks ``mcp``), the README's server starts and answers."""
    (tmp_path / "servers").mkdir()
    (tmp_path / "servers" / "calc.py").write_text(readme_mcp_server())
    code = (
        "from orsta_trl.tools.registry import build_tools\n"
        "spec = [{'name': 'calc', 'command': 'python', 'args': ['servers/calc.py'], 'env': {'CALC_DIGITS': '2'}}]\n"
        "tools = build_tools(mcp_servers=spec, timeout_s=10)\n"
        "print(tools.names, tools.tools[0](a=1.5, b=2.25))\n"
        "tools.close()\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[0] == "['multiply'] 3.38"
