"""Files small enough to read in one sitting: no module of the package over 400 lines, no function over 80
(argument-parser builders excepted: one ``add_argument`` per option reads best as one list)."""

from __future__ import annotations

import ast
from pathlib import Path

import orsta_trl

PACKAGE = Path(orsta_trl.__file__).parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _is_parser_builder(node: ast.AST) -> bool:
    """A function whose body builds an ``argparse`` parser (it calls ``add_parser`` or ``add_argument``)."""
    calls = {
        n.func.attr for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
    }
    return "add_argument" in calls and ("add_parser" in calls or "ArgumentParser" in ast.unparse(node))


def sizes(root: Path) -> tuple[list[str], list[str]]:
    """(modules over the limit, functions over the limit) under ``root``, each as ``path: lines``."""
    modules, functions = [], []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            modules.append(f"{path.relative_to(root)}: {lines}")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                span = node.end_lineno - node.lineno + 1
                if span > MAX_FUNCTION_LINES and not _is_parser_builder(node):
                    functions.append(f"{path.relative_to(root)}:{node.lineno} {node.name}: {span}")
    return modules, functions


def test_no_module_over_400_lines_and_no_function_over_80():
    modules, functions = sizes(PACKAGE)
    assert modules == [], "split these modules"
    assert functions == [], "split these functions"


def test_the_size_check_sees_a_planted_long_module_and_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "long.py").write_text(
        f"def long():\n{body}\n" + "\n" * (MAX_MODULE_LINES - MAX_FUNCTION_LINES)
    )
    (tmp_path / "parser.py").write_text(
        "import argparse\n\ndef build_parser():\n    p = argparse.ArgumentParser()\n"
        + "\n".join(f"    p.add_argument('--a{i}')" for i in range(MAX_FUNCTION_LINES))
        + "\n    return p\n"
    )
    modules, functions = sizes(tmp_path)
    assert modules == [f"long.py: {MAX_MODULE_LINES + 1}"]
    assert functions == [f"long.py:1 long: {MAX_FUNCTION_LINES + 1}"]  # the parser builder is excepted
