"""A user's verifier module, as a user writes one: the contract tests (tests/test_registry.py) and the user
verifier tests load it through the recipe key ``verifier_modules: [user_rewards]``."""

from __future__ import annotations

import re

__all__ = ["exact_answer", "graded_answer"]


def exact_answer(completion: str, ground_truth: str, case_sensitive: bool = False) -> float:
    """1.0 when the <answer> block (else the whole completion) equals the ground truth."""
    found = re.findall(r"<answer>(.*?)</answer>", completion, re.DOTALL)
    answer = (found[-1] if found else completion).strip()
    if not case_sensitive:
        answer, ground_truth = answer.lower(), ground_truth.lower()
    return float(answer == ground_truth.strip())


def graded_answer(completion: str, ground_truth: int, max_words: int = 20) -> dict:
    """Accuracy on a number, the <answer> format, and a declared ``brevity`` part; a completion that says
    ``spin forever`` never returns (for the time-limit test)."""
    if "spin forever" in completion:
        while True:
            pass
    numbers = re.findall(r"-?\d+", completion)
    words = len(completion.split())
    return {
        "accuracy": float(bool(numbers) and numbers[-1] == str(ground_truth)),
        "format": float("<answer>" in completion and "</answer>" in completion),
        "brevity": max(0.0, 1.0 - words / max_words),
        "reason": None if numbers else "no_number",
    }


graded_answer.parts = ("brevity",)
graded_answer.short_answer = True
