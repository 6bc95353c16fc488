"""MCP tool servers (stdio, the official ``mcp`` SDK): started once per rank, listed, exposed to TRL, stopped.

Each recipe entry ``{name, command, args, env}`` starts one server process over stdio. At start its tools are
listed; each becomes an :class:`McpTool`: a dict holding the server's own JSON schema (name, description,
input schema), which is what ``apply_chat_template`` renders into the system turn, and also a callable, which
is what TRL's tool loop calls by ``__name__``. A call goes to the server on a background event loop; a call that
raises, a server that died, or a call past ``tool_timeout_s`` comes back as an ``Error...`` result
(:class:`~orsta_trl.tools.result.ToolResult` with ``ok=False``), never an exception.

``command: python`` (or ``python3``) runs the training interpreter (``sys.executable``), not whatever ``python``
is first on PATH: a server written against the packages of the training environment (``mcp`` itself) must run
there, also when the virtual environment is not activated. A server's stderr goes to a temporary file, whose
tail is shown when the server fails to start (the SDK itself only reports an ``ExceptionGroup``).

Deviation from RL-Factory: its MCP manager also reaches servers over SSE; here only stdio is supported.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from orsta_trl.tools.result import ToolResult
from orsta_trl.verifiers.tool import reports_failure

SERVER_KEYS = ("name", "command", "args", "env")
#: Commands that mean "the training interpreter".
PYTHON_COMMANDS = ("python", "python3")


def server_command(command: str) -> str:
    """The executable a server entry's ``command`` runs: ``python``/``python3`` is this interpreter.

    >>> server_command("python") == sys.executable, server_command("node")
    (True, 'node')
    """
    return sys.executable if command in PYTHON_COMMANDS else command


def _leaves(exc: BaseException) -> list[BaseException]:
    """The innermost exceptions of an exception group (the exception itself otherwise)."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def check_server_specs(specs: Any) -> list[str]:
    """Problems of the recipe's ``mcp_servers`` list (empty when it is fine), each naming the entry and key."""
    problems = []
    if not isinstance(specs, list):
        return [f"mcp_servers: expected a list of {{name, command, args, env}}, got {specs!r:.80}"]
    names = set()
    for i, spec in enumerate(specs):
        where = f"mcp_servers[{i}]"
        if not isinstance(spec, Mapping):
            problems.append(f"{where}: expected a mapping with keys {list(SERVER_KEYS)}, got {spec!r:.80}")
            continue
        unknown = sorted(set(spec) - set(SERVER_KEYS))
        if unknown:
            problems.append(f"{where}: unknown key(s) {unknown}; valid keys are {list(SERVER_KEYS)}")
        for key in ("name", "command"):
            if not isinstance(spec.get(key), str) or not spec.get(key):
                problems.append(f"{where}.{key}: required, a non-empty string")
        if not isinstance(spec.get("args", []), list) or not all(
            isinstance(a, str) for a in spec.get("args", [])
        ):
            problems.append(f"{where}.args: a list of strings")
        env = spec.get("env") or {}
        if not isinstance(env, Mapping) or not all(isinstance(v, str) for v in env.values()):
            problems.append(f"{where}.env: a mapping of names to string values")
        if spec.get("name") in names:
            problems.append(f"{where}.name: {spec.get('name')!r} is used twice")
        names.add(spec.get("name"))
    return problems


class McpTool(dict):
    """One MCP tool: its chat-template schema (this dict) and a callable TRL's loop can call with the arguments."""

    def __init__(self, servers: McpServers, server: str, tool):
        schema = (
            getattr(tool, "input_schema", None) or getattr(tool, "inputSchema", None) or {"type": "object"}
        )
        super().__init__(
            type="function",
            function={"name": tool.name, "description": tool.description or "", "parameters": dict(schema)},
        )
        self.__name__ = tool.name
        self.server = server
        self._servers = servers

    def __call__(self, **arguments) -> ToolResult:
        return self._servers.call(self.server, self.__name__, arguments)

    def __hash__(self) -> int:  # TRL keeps tools in lists and dicts by identity
        return id(self)

    def __eq__(self, other) -> bool:
        return self is other


class McpServers:
    """The recipe's MCP servers, on one background event loop of this process.

    Args:
        specs: the recipe's ``mcp_servers`` entries.
        timeout_s: the time limit of one call (and of starting a server).
    """

    def __init__(self, specs: Sequence[Mapping], timeout_s: float = 10.0):
        self.specs = [dict(s) for s in specs]
        self.timeout_s = float(timeout_s)
        self.sessions: dict[str, Any] = {}
        self.tools: list[McpTool] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="orsta-mcp", daemon=True)
        self._stop: asyncio.Event | None = None
        self._runs: list[concurrent.futures.Future] = []
        self._errlogs: dict[str, Any] = {}  # server name -> its stderr (a temporary file)

    def start(self) -> list[McpTool]:
        """Start every server, list its tools, and return them (in server order).

        Raises:
            RuntimeError: naming the server that could not start or list its tools in time.
        """
        self._thread.start()
        self._stop = asyncio.run_coroutine_threadsafe(_make_event(), self._loop).result()
        for spec in self.specs:
            ready: concurrent.futures.Future = concurrent.futures.Future()
            self._runs.append(asyncio.run_coroutine_threadsafe(self._serve(spec, ready), self._loop))
            try:
                tools = ready.result(timeout=max(30.0, self.timeout_s))
            except Exception as exc:
                stderr = self._stderr_tail(spec["name"])
                self.close()
                causes = "; ".join(f"{type(e).__name__}: {e}" for e in _leaves(exc))
                command = f"{server_command(spec['command'])} {' '.join(spec.get('args', []))}".strip()
                raise RuntimeError(
                    f"mcp_servers: server {spec['name']!r} ({command}) did not start: {causes}"
                    + (f"\nits stderr ended with:\n{stderr}" if stderr else "\n(it wrote nothing to stderr)")
                ) from None
            self.tools.extend(McpTool(self, spec["name"], t) for t in tools)
        return self.tools

    async def _serve(self, spec: Mapping, ready: concurrent.futures.Future) -> None:
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(
            command=server_command(spec["command"]), args=list(spec.get("args", [])), env=spec.get("env")
        )
        errlog = self._errlogs[spec["name"]] = tempfile.TemporaryFile(
            "w+", encoding="utf-8", errors="replace"
        )
        try:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                listed = await session.list_tools()
                self.sessions[spec["name"]] = session
                ready.set_result(list(listed.tools))
                await self._stop.wait()
        except BaseException as exc:  # noqa: BLE001 (reported to start(), or the server died later)
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
        finally:
            self.sessions.pop(spec["name"], None)

    def _stderr_tail(self, server: str, lines: int = 20) -> str:
        """The last lines a server wrote to stderr ("" when none)."""
        errlog = self._errlogs.get(server)
        if errlog is None or errlog.closed:
            return ""
        errlog.flush()
        errlog.seek(0)
        return "\n".join(errlog.read().rstrip().splitlines()[-lines:])

    def call(self, server: str, name: str, arguments: Mapping) -> ToolResult:
        """Call one tool; any failure, a dead server or a call past the time limit is an ``Error`` result."""
        session = self.sessions.get(server)
        if session is None:
            return ToolResult(f"Error: the MCP server {server!r} is not running", ok=False)
        future = asyncio.run_coroutine_threadsafe(session.call_tool(name, dict(arguments)), self._loop)
        try:
            result = future.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            return ToolResult(f"Error: the tool {name!r} took longer than {self.timeout_s:g} s", ok=False)
        except BaseException as exc:  # noqa: BLE001 (the server died, or the SDK raised)
            return ToolResult(f"Error: the tool {name!r} failed: {type(exc).__name__}: {exc}", ok=False)
        text = "\n".join(
            getattr(block, "text", None) or f"[{getattr(block, 'type', 'content')}]"
            for block in result.content
        )
        failed = bool(getattr(result, "is_error", False) or getattr(result, "isError", False))
        if failed and not reports_failure(
            text
        ):  # the server's failure, written the way every tool writes one
            text = f"Error: {text}"
        return ToolResult(text, ok=not failed)

    def close(self) -> None:
        """Stop every server (their processes end with their stdio sessions) and the event loop."""
        if not self._thread.is_alive():
            return
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        for run in self._runs:
            try:
                run.result(timeout=10)
            except Exception:  # noqa: BLE001 (already reported, or stopped while failing)
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        for errlog in self._errlogs.values():
            errlog.close()


async def _make_event() -> asyncio.Event:
    return asyncio.Event()
