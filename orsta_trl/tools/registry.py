"""The tools of a run, by name: built-in (:data:`BUILTIN`), user modules and MCP servers, ready for TRL.

:func:`check_tool_settings` validates the recipe's tool keys without starting anything (the recipe check);
:func:`build_tools` makes the :class:`ToolSet` that the trainer hands to ``GRPOTrainer``: standalone callables
(``tools=``) and, for ``crop``/``zoom``, an ``environment_factory`` (they need the row's image).

Every callable is wrapped by :func:`guarded`: it never raises (an exception or bad arguments become an
``Error: ...`` result), its result carries its real outcome (:class:`~orsta_trl.tools.result.ToolResult`), and a
user tool that runs past ``tool_timeout_s`` is answered with an ``Error`` result (its thread cannot be killed;
it finishes in the background). The python sandbox and MCP calls enforce the limit themselves.
"""

from __future__ import annotations

import functools
import inspect
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orsta_trl.tools.crop import IMAGE_TOOLS
from orsta_trl.tools.result import ToolResult
from orsta_trl.verifiers.tool import reports_failure

#: Built-in tools by recipe name.
BUILTIN = ("calculator", "python", "crop", "zoom")


def _call_with_timeout(fn: Callable, timeout_s: float, args, kwargs):
    """``fn(*args, **kwargs)`` on a daemon thread of its own: a call past ``timeout_s`` is abandoned (it can
    neither hold the process open at exit nor take a worker that later calls would wait for)."""
    outcome: dict[str, Any] = {}

    def run():
        try:
            outcome["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"orsta-tool-{getattr(fn, '__name__', 'tool')}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def guarded(fn: Callable, timeout_s: float | None = None) -> Callable:
    """``fn`` as a tool that never raises and reports its outcome.

    Args:
        fn: a function with type hints and a docstring (the tool's schema is read from them, unchanged).
        timeout_s: answer with an ``Error`` result after this many seconds (None: no limit here).

    Returns:
        A function with ``fn``'s name, signature and docstring.

    >>> def half(x: int) -> str:
    ...     '''Half of x.
    ...
    ...     Args:
    ...         x: a number
    ...     '''
    ...     return str(x / 2)
    >>> tool = guarded(half)
    >>> tool(x=3), tool(x="a")[:15], tool(y=1).ok
    ('1.5', 'Error: TypeErro', False)
    """

    @functools.wraps(fn)
    def tool(*args, **kwargs):
        try:
            if timeout_s is None:
                result = fn(*args, **kwargs)
            else:
                try:
                    result = _call_with_timeout(fn, timeout_s, args, kwargs)
                except TimeoutError:
                    return ToolResult(f"Error: the tool took longer than {timeout_s:g} s", ok=False)
        except Exception as exc:  # a tool never crashes the rollout
            return ToolResult(f"Error: {type(exc).__name__}: {exc}", ok=False)
        return as_result(result)

    return tool


def as_result(result: Any):
    """A tool's return value as TRL's loop should see it: content parts pass through, text keeps an outcome."""
    if isinstance(result, ToolResult) or (
        isinstance(result, list) and result and isinstance(result[0], dict)
    ):
        return result
    text = result if isinstance(result, str) else json.dumps(result, default=str)
    return ToolResult(text, ok=not reports_failure(text))


def module_tools(name: str) -> list[Callable]:
    """The public functions a user module defines (``__all__`` when it has one), each checked for a schema.

    Raises:
        ValueError: the module cannot be imported, defines no function, or a function has no usable schema.
    """
    from transformers.utils import get_json_schema

    from orsta_trl.errors import RecipeError
    from orsta_trl.user_modules import import_user_module

    try:  # the working folder first, as `python script.py` run there would resolve it
        module = import_user_module(name, key="tool_modules")
    except RecipeError as exc:  # not found (naming the folders tried), or the module's own import error
        raise ValueError(str(exc)) from None
    names = getattr(module, "__all__", None) or [
        n for n, f in vars(module).items() if inspect.isfunction(f) and f.__module__ == module.__name__
    ]
    functions = [
        f for n in names if not n.startswith("_") and inspect.isfunction(f := getattr(module, n, None))
    ]
    if not functions:
        raise ValueError(f"tool_modules: {name!r} defines no public function to use as a tool")
    for f in functions:
        try:
            get_json_schema(f)
        except Exception as exc:
            raise ValueError(
                f"tool_modules: {name}.{f.__name__} cannot be a tool ({exc}); give it type hints and a "
                "Google-style docstring with an Args: line per parameter"
            ) from None
    return functions


def check_tool_settings(tools: Any, tool_modules: Any, mcp_servers: Any, tool_timeout_s: Any) -> list[str]:
    """Problems of the recipe's tool keys, each naming the key (empty when fine). Imports user modules.

    Args:
        tools, tool_modules, mcp_servers, tool_timeout_s: the recipe's values.

    Returns:
        A list of messages.
    """
    from orsta_trl.keys import unknown_key_message
    from orsta_trl.tools.mcp import check_server_specs

    problems = []
    if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
        problems.append(f"tools: expected a list of tool names from {list(BUILTIN)}, got {tools!r:.80}")
    else:
        problems += [f"tools: {unknown_key_message('tool', t, BUILTIN)}" for t in tools if t not in BUILTIN]
        problems += [
            f"tools: {t!r} is listed twice" for t in sorted({t for t in tools if tools.count(t) > 1})
        ]
    if not isinstance(tool_modules, list) or not all(isinstance(m, str) for m in tool_modules):
        problems.append(f"tool_modules: expected a list of module names, got {tool_modules!r:.80}")
    else:
        for name in tool_modules:
            try:
                module_tools(name)
            except ValueError as exc:
                problems.append(str(exc))
    problems += check_server_specs(mcp_servers)
    if isinstance(tool_timeout_s, bool) or not isinstance(tool_timeout_s, int | float) or tool_timeout_s <= 0:
        problems.append(f"tool_timeout_s: a positive number of seconds, got {tool_timeout_s!r}")
    return problems


@dataclass
class ToolSet:
    """What the trainer gives ``GRPOTrainer``: ``tools`` and ``environment_factory``; ``close()`` stops servers."""

    tools: list = field(default_factory=list)
    environment_factory: Callable | None = None
    image_tools: tuple[str, ...] = ()
    servers: Any = None

    @property
    def names(self) -> list[str]:
        return [t.__name__ for t in self.tools] + list(self.image_tools)

    def schema_tools(self) -> list:
        """Every tool as the chat template lists it: the functions, and the environment's tool methods (read
        from one probe instance, as TRL does)."""
        tools = list(self.tools)
        if self.environment_factory is not None:
            environment = self.environment_factory()
            tools += [getattr(environment, name) for name in self.image_tools]
        return tools

    def close(self) -> None:
        if self.servers is not None:
            self.servers.close()
            self.servers = None


def build_tools(
    names: Sequence[str] = (),
    modules: Sequence[str] = (),
    mcp_servers: Sequence[dict] = (),
    *,
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    vision: bool = True,
    min_pixels: int = 3136,
    max_pixels: int = 12845056,
) -> ToolSet:
    """Build the run's tools; MCP servers are started (and their tools listed) here.

    Args:
        names: built-in tools (:data:`BUILTIN`).
        modules: user modules whose public functions become tools.
        mcp_servers: ``{name, command, args, env}`` entries.
        timeout_s: ``tool_timeout_s``: limit of one call.
        memory_mb: memory limit of the python sandbox.
        vision: whether the model sees images (``crop``/``zoom`` need it).
        min_pixels, max_pixels: the processor's pixel bounds (the frame of ``crop``/``zoom`` coordinates).

    Returns:
        A :class:`ToolSet`.

    Raises:
        ValueError: an unknown name, a duplicate tool name, an image tool on a text model, an MCP server that
            does not start.
    """
    from orsta_trl.tools.arithmetic import calculator
    from orsta_trl.tools.crop import image_tools_factory
    from orsta_trl.tools.python_tool import make_python_tool

    problems = check_tool_settings(list(names), list(modules), list(mcp_servers), timeout_s)
    if problems:
        raise ValueError("; ".join(problems))
    image = tuple(n for n in names if n in IMAGE_TOOLS)
    if image and not vision:
        raise ValueError(f"tools: {list(image)} need a vision-language model (the model has no image input)")
    functions: list = []
    if "calculator" in names:
        functions.append(guarded(calculator))
    if "python" in names:
        functions.append(guarded(make_python_tool(timeout_s, memory_mb)))
    for module in modules:
        functions += [guarded(f, timeout_s) for f in module_tools(module)]
    toolset = ToolSet(functions, image_tools_factory(image, min_pixels, max_pixels) if image else None, image)
    if mcp_servers:
        from orsta_trl.tools.mcp import McpServers

        toolset.servers = McpServers(mcp_servers, timeout_s)
        try:
            toolset.tools += toolset.servers.start()
        except RuntimeError as exc:
            raise ValueError(str(exc)) from None
    seen: set[str] = set()
    for name in toolset.names:
        if name in seen:
            toolset.close()
            raise ValueError(f"two tools are named {name!r}: rename one (tools, tool_modules, mcp_servers)")
        seen.add(name)
    return toolset


def recipe_tools(settings, processing_class) -> ToolSet | None:
    """A recipe's tools (None without any), with our tool-capable template set on ``processing_class``; the
    one setup of training, evaluation and the prompt-length filters. MCP servers start here.

    Args:
        settings: the recipe's settings (an ``OrstaConfig``: ``tools``, ``tool_modules``, ``mcp_servers``,
            ``tool_timeout_s``, ``tool_memory_mb``, ``min_pixels``, ``max_pixels``).
        processing_class: the processor or tokenizer the model uses (changed in place).

    Raises:
        ValueError: as :func:`build_tools`.
    """
    if not (settings.tools or settings.tool_modules or settings.mcp_servers):
        return None
    from orsta_trl.tools.chat import use_tool_template

    vision = getattr(processing_class, "tokenizer", processing_class) is not processing_class
    use_tool_template(processing_class, vision)
    return build_tools(
        settings.tools, settings.tool_modules, settings.mcp_servers, timeout_s=settings.tool_timeout_s,
        memory_mb=settings.tool_memory_mb, vision=vision, min_pixels=settings.min_pixels,
        max_pixels=settings.max_pixels,
    )  # fmt: skip
