"""``python``: run the model's code in the sandbox (:mod:`orsta_trl.tools.sandbox`) and return what it prints."""

from __future__ import annotations

from orsta_trl.tools.result import ToolResult
from orsta_trl.tools.sandbox import run_python


def make_python_tool(timeout_s: float = 10.0, memory_mb: int = 1024):
    """The ``python`` tool with these limits (the recipe's ``tool_timeout_s``).

    Args:
        timeout_s: wall-time limit of one run, in seconds.
        memory_mb: address-space limit of one run.

    Returns:
        A function named ``python`` that TRL can expose as a tool.
    """

    def python(code: str) -> str:
        """Run a Python program in a sandbox and return what it prints.

        The program runs in a fresh process with a time and a memory limit, without network access, in an empty
        temporary folder. Use print() to show results.

        Args:
            code: The complete Python program to run.

        Returns:
            What the program printed, or a message starting with "Error".
        """
        if not isinstance(code, str):
            return ToolResult(f"Error: expected the code as text, got {type(code).__name__}", ok=False)
        result = run_python(code, timeout_s=timeout_s, memory_mb=memory_mb)
        return ToolResult(result.text, ok=result.ok)

    return python


python = make_python_tool()
