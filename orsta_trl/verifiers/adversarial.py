"""Adversarial completions for fuzzing verifiers: what a policy under RL, or a broken sampler, can emit.

:func:`adversarial_completion` draws one from a ``random.Random``: huge strings, deeply nested braces and
powers, lone surrogates and control characters, JSON with NaN, infinity, negative, inverted or enormous boxes,
thousands of boxes, empty answers, and answers in another verifier's format, alone or glued together. The
registry's contract test (with hypothesis choosing the seeds) and ``benchmarks/fuzz.py`` (a fixed-seed campaign)
both draw from here, so what one finds the other can replay.
"""

from __future__ import annotations

import json
import random

#: The kinds of fragment, by name (the campaign reports them).
KINDS = (
    "huge",
    "braces",
    "powers",
    "unicode",
    "boxes_json",
    "many_boxes",
    "empty_answer",
    "other_format",
    "random_text",
)

_WEIRD = ["NaN", "Infinity", "-Infinity", "1e308", "-1e308", "-5", "0", "1e-320", '"7"', "null", "[]", "{}"]
_OTHER_FORMATS = [
    '{"steps": [{"id": "a", "agent": "x", "task": "t", "depends_on": ["a"]}]}',
    '{"rewritten_query": ""}',
    '<tool_call>{"name": "calc", "arguments": {"x": 1}}</tool_call><tool_response>Error: boom</tool_response>',
    "<think></think><answer>\\boxed{\\frac{1}{0}}</answer>",
    "# Title\n\n| a | b |\n|---|---|\n| 1 |",
    '<answer>[{"bbox_2d": [1, 2, 3], "label": 5}]</answer>',
    "<answer>\\boxed{x = \\pm \\infty}</answer>",
    '```json\n{"q": \n```',
]


def _fragment(rng: random.Random, kind: str) -> str:
    if kind == "huge":
        return rng.choice(["a", "7", "{", "<answer>", "\\boxed{1}", " "]) * rng.choice(
            [1_000, 20_000, 100_000]
        )
    if kind == "braces":
        depth = rng.randint(1, 3_000)
        return "<answer>\\boxed{" + "{" * depth + "1" + "}" * rng.randint(0, depth + 1) + "</answer>"
    if kind == "powers":
        depth = rng.randint(1, 4)  # from 3 on, sympy would run for minutes: the time limit must catch it
        base = rng.choice(["9", "5", "x", "10"])
        return "<answer>\\boxed{" + f"{base}^{{" * depth + base + "}" * depth + "}</answer>"
    if kind == "unicode":
        points = [
            rng.choice([rng.randint(0, 31), rng.randint(0xD800, 0xDFFF), 0x7F, 0xFFFF, 0x10FFFF, 0x202E])
            for _ in range(rng.randint(1, 200))
        ]
        return "<answer>" + "".join(map(chr, points)) + "</answer>"
    if kind == "boxes_json":
        boxes = []
        for _ in range(rng.randint(0, 6)):
            coords = [
                rng.choice(_WEIRD) if rng.random() < 0.5 else str(rng.uniform(-1e6, 1e6)) for _ in range(4)
            ]
            boxes.append(
                '{"bbox_2d": [' + ", ".join(coords) + '], "label": ' + rng.choice(['"a"', "1", "null"]) + "}"
            )
        return "<answer>[" + ", ".join(boxes) + "]</answer>"
    if kind == "many_boxes":
        n = rng.choice([100, 1_000, 3_000])
        boxes = []
        for _ in range(n):
            x, y = rng.uniform(-10, 1000), rng.uniform(-10, 1000)
            boxes.append({"bbox_2d": [x, y, x + rng.uniform(-5, 50), y + rng.uniform(-5, 50)], "label": "a"})
        return "<answer>" + json.dumps(boxes) + "</answer>"
    if kind == "empty_answer":
        return rng.choice(["", " ", "<answer></answer>", "<answer>   </answer>", "\\boxed{}", "<answer>"])
    if kind == "other_format":
        return rng.choice(_OTHER_FORMATS)
    return "".join(chr(rng.randint(32, 126)) for _ in range(rng.randint(0, 300)))


def adversarial_completion(rng: random.Random) -> tuple[str, str]:
    """(kind, completion): one fragment, or two or three glued together (kind ``mix``)."""
    if rng.random() < 0.75:
        kind = rng.choice(KINDS)
        return kind, _fragment(rng, kind)
    return "mix", "".join(_fragment(rng, rng.choice(KINDS)) for _ in range(rng.randint(2, 3)))
