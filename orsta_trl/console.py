"""What the user reads on the console: one line of progress (main process only), and the per-source table."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any


def say(message: str) -> None:
    """Print ``[orsta-trl] message`` on rank 0 (every rank runs the same code; one of them speaks)."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"[orsta-trl] {message}", flush=True)


#: A column of :func:`source_table`: (header, key in each source's row, format spec such as ``"8.3f"``). A spec
#: without a width (``"s"``) makes a free-text column, written after two spaces (put it last).
Column = tuple[str, str, str]


def source_table(
    rows: Mapping[str, Mapping[str, Any]], columns: Sequence[Column], *, indent: str = ""
) -> str:
    """The one per-source text table: a header, a rule, then one line per ``data_source`` in sorted order.

    A value that is None or missing prints as ``-``; a number formats with its column's spec, right-aligned.

    >>> print(source_table({"b": {"n": 2, "r": 0.5}, "a": {"n": 1}}, [("n", "n", "3d"), ("reward", "r", "7.3f")]))
    data_source                n  reward
    ------------------------------------
    a                          1       -
    b                          2   0.500
    """
    header = f"{'data_source':<24}"
    for title, _, spec in columns:
        width = _width(spec)
        header += f" {title:>{width}}" if width else f"  {title}"
    lines = [header, "-" * len(header)]
    for source in sorted(rows):
        line = f"{source:<24}"
        for _, key, spec in columns:
            value, width = rows[source].get(key), _width(spec)
            if not width:
                line += f"  {'-' if value in (None, '') else value}"
            else:
                line += f" {'-':>{width}}" if value is None else f" {format(value, spec):>{width}}"
        lines.append(indent + line)
    return "\n".join([indent + lines[0], indent + lines[1], *lines[2:]])


def _width(spec: str) -> int:
    digits = re.match(r"[<>^+-]?(\d*)", spec.lstrip("<>^+- "))
    return int(digits.group(1)) if digits and digits.group(1) else 0


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every option's ``--help`` line ends with its default, unless it is None/False or the help says it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                show_defaults(child)
        elif action.option_strings and not any(action.default is v for v in (None, False, argparse.SUPPRESS)):
            if "default" not in (action.help or ""):
                action.help = f"{action.help or ''} (default: %(default)s)".lstrip()
