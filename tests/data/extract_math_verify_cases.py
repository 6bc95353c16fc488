"""Rebuild ``math_verify_cases.json``: every (gold, pred, expected) case of Math-Verify's own test suite.

Usage: ``python tests/data/extract_math_verify_cases.py PATH_TO_MATH_VERIFY_CHECKOUT COMMIT``. The cases are read
from the ``pytest.mark.parametrize`` marks of the repository's ``tests/`` modules (imported from the checkout), as
the upstream tests run them; ``expected`` is upstream's, untouched.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

MODULES = ["test_all", "test_boxed", "test_numina_cases", "test_open_thoughts", "test_strict"]


def cases(checkout: Path) -> list[dict]:
    sys.path.insert(0, str(checkout))
    found = []
    for module_name in MODULES:
        module = importlib.import_module(f"tests.{module_name}")
        for name, function in vars(module).items():
            for mark in getattr(function, "pytestmark", []) if name.startswith("test_") else []:
                if mark.name != "parametrize":
                    continue
                names = [n.strip() for n in mark.args[0].split(",")]
                for values in mark.args[1]:
                    row = dict(zip(names, getattr(values, "values", values), strict=True))
                    if {"gold", "pred", "expected"} <= row.keys():
                        source = f"tests/{module_name}.py::{name}"
                        found.append(
                            {
                                "gold": row["gold"],
                                "pred": row["pred"],
                                "expected": bool(row["expected"]),
                                "source": source,
                            }
                        )
    return found


if __name__ == "__main__":
    checkout, commit = Path(sys.argv[1]), sys.argv[2]
    out = {
        "upstream": f"https://github.com/huggingface/Math-Verify/tree/{commit}/tests",
        "note": "every (gold, pred, expected) parametrize case of the upstream test modules "
        + ", ".join(MODULES)
        + "; expected as upstream wrote it",
        "cases": cases(checkout),
    }
    target = Path(__file__).with_name("math_verify_cases.json")
    target.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(out['cases'])} cases -> {target}")
