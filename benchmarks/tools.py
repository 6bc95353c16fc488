"""Tool-call latency: what one call of each tool costs a rollout (medians over alternating runs).

    .venv/bin/python benchmarks/tools.py [--runs 15]

* ``python``: the sandbox (process start under ``unshare`` when available, rlimits, audit hook) for
  ``print(sum(range(1000)))``, with and without the network namespace, alternating; and with ``import numpy``;
* ``calculator``: one expression;
* MCP: one ``add`` call to ``tests/data/mcp_server.py`` over stdio, and the server's start-up (start + list).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orsta_trl.tools import sandbox  # noqa: E402
from orsta_trl.tools.arithmetic import calculator  # noqa: E402
from orsta_trl.tools.registry import build_tools  # noqa: E402


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:9.3f} ms (min {min(values) * 1e3:.3f}, max {max(values) * 1e3:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    code = "print(sum(range(1000)))"
    with_ns, without_ns = [], []
    namespaces = sandbox.network_namespace_available()
    for _ in range(runs):  # alternate, so load changes hit both
        with_ns += timed(lambda: sandbox.run_python(code), 1)
        with mock.patch.object(sandbox, "network_namespace_available", lambda: False):
            without_ns += timed(lambda: sandbox.run_python(code), 1)
    numpy = timed(lambda: sandbox.run_python("import numpy; print(numpy.ones(3).sum())"), max(3, runs // 3))
    print(f"python sandbox, namespaces {'on ' if namespaces else 'off'}: {ms(with_ns)}")
    print(f"python sandbox, hook only:     {ms(without_ns)}")
    print(f"python sandbox, import numpy:  {ms(numpy)}")
    print(
        f"calculator:                    {ms(timed(lambda: calculator('(3 + 4) * 2 ** 10 / 7'), runs * 10))}"
    )
    server = [{"name": "bench", "command": sys.executable, "args": [str(REPO / "tests/data/mcp_server.py")]}]
    started = time.perf_counter()
    tools = build_tools(mcp_servers=server, timeout_s=10)
    startup = time.perf_counter() - started
    try:
        add = tools.tools[0]
        print(f"MCP call (stdio, add):         {ms(timed(lambda: add(a=1, b=2), runs * 4))}")
    finally:
        tools.close()
    print(f"MCP server start + list:       {startup * 1e3:8.1f} ms (one run)")


if __name__ == "__main__":
    main()
