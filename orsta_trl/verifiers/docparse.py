"""``docparse``: Infinity-Parser's multi-aspect reward for document-to-Markdown parsing.

The prediction is the ``<answer>`` block when there is one, else the whole completion; the ground truth is the
reference Markdown. Both are stripped of surrounding whitespace. Three parts, averaged into ``accuracy``:

* ``edit``: 1 - Levenshtein(pred, gt) / max(len(pred), len(gt)) over characters (1 when both are empty);
* ``count``: max(0, 1 - |N_gt - N_pred| / N_gt) over paragraphs (N_gt = 0: 1 if N_pred = 0 else 0);
* ``order``: predicted paragraphs are matched one to one to ground-truth paragraphs by maximal total
  similarity (1 - normalised edit distance, Hungarian algorithm); pairs below ``min_similarity`` stay
  unmatched. The matched ground-truth indices, read in predicted order, give ``order`` = 1 - inversions /
  (M (M - 1) / 2) for M matched paragraphs (1 when M < 2).

Paragraphs are blocks separated by blank lines (``split: blank_line``) or single lines (``split: line``);
empty blocks are dropped and each block is stripped. ``format`` is 1 when the prediction is non-empty.

Deviations from the paper: Infinity-Parser does not fix the similarity threshold or the paragraph splitter;
they are parameters here. An empty prediction against a non-empty ground truth scores zeros with reason
``no_answer`` (the formulas alone would give ``order`` = 1 to an empty output). Code fences are not stripped
(Markdown may legitimately contain them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cdist
from scipy.optimize import linear_sum_assignment

from orsta_trl.verifiers.answer import extract
from orsta_trl.verifiers.base import Context, FieldError, Verdict, Verifier, check_choice, check_number

SPLITS = ("blank_line", "line")
_BLANK_LINE_RE = re.compile(r"\n[ \t\r\f\v]*\n")
PARTS = ("edit", "count", "order")


def paragraphs(text: str, split: str = "blank_line") -> list[str]:
    """The non-empty, stripped paragraphs of ``text``.

    >>> paragraphs("# T\\n\\nline one\\nline two\\n\\n\\n")
    ['# T', 'line one\\nline two']
    >>> paragraphs("a\\n\\nb\\nc", "line")
    ['a', 'b', 'c']
    """
    blocks = text.splitlines() if split == "line" else _BLANK_LINE_RE.split(text.replace("\r\n", "\n"))
    return [block.strip() for block in blocks if block.strip()]


def edit_score(pred: str, gt: str) -> float:
    """1 - normalised character edit distance (1 when both are empty)."""
    return float(Levenshtein.normalized_similarity(pred, gt))


def count_score(n_pred: int, n_gt: int) -> float:
    """max(0, 1 - |N_gt - N_pred| / N_gt); with no ground-truth paragraph, 1 only when none is predicted."""
    if n_gt == 0:
        return 1.0 if n_pred == 0 else 0.0
    return max(0.0, 1.0 - abs(n_gt - n_pred) / n_gt)


def match_paragraphs(pred: list[str], gt: list[str], min_similarity: float) -> list[tuple[int, int]]:
    """One-to-one (pred index, gt index) pairs of maximal total similarity, each at least ``min_similarity``."""
    if not pred or not gt:
        return []
    sim = cdist(pred, gt, scorer=Levenshtein.normalized_similarity, dtype=np.float64)
    eligible = sim >= min_similarity
    rows, cols = linear_sum_assignment(np.where(eligible, sim, 0.0), maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if eligible[r, c]]


def order_score(pairs: list[tuple[int, int]]) -> float:
    """1 - inversions / (M (M - 1) / 2) of the gt indices taken in predicted order (1 when M < 2)."""
    m = len(pairs)
    if m < 2:
        return 1.0
    seq = np.array([gt for _, gt in sorted(pairs)])
    inversions = int(np.triu(seq[:, None] > seq[None, :], 1).sum())
    return 1.0 - inversions / (m * (m - 1) / 2)


def docparse_scores(pred: str, gt: str, split: str = "blank_line", min_similarity: float = 0.5) -> dict:
    """``edit``, ``count``, ``order`` and their mean ``accuracy`` for one prediction (pure, no extraction)."""
    pred_paras, gt_paras = paragraphs(pred, split), paragraphs(gt, split)
    scores = {
        "edit": edit_score(pred, gt),
        "count": count_score(len(pred_paras), len(gt_paras)),
        "order": order_score(match_paragraphs(pred_paras, gt_paras, min_similarity)),
    }
    scores["accuracy"] = sum(scores[p] for p in PARTS) / 3.0
    return scores


@dataclass(frozen=True)
class DocparseParams:
    split: str = "blank_line"
    min_similarity: float = 0.5

    def __post_init__(self) -> None:
        check_choice("reward.params.split", self.split, SPLITS)
        check_number("reward.params.min_similarity", self.min_similarity, 0.0, 1.0)


class DocparseVerifier(Verifier):
    """Document parsing to Markdown: edit distance, paragraph count and paragraph order."""

    name = "docparse"
    answer_policy = "answer_tag_or_text"
    Params = DocparseParams
    parts = PARTS

    def prepare(self, ground_truth: Any, params: DocparseParams) -> str:
        if not isinstance(ground_truth, str):
            raise FieldError(
                "reward.ground_truth",
                f"docparse needs the reference Markdown as a string, got {ground_truth!r:.80}",
            )
        return ground_truth.strip()

    def score(self, text: str, gold: str, params: DocparseParams, ctx: Context) -> Verdict:
        pred = extract(text, self.answer_policy).strip()
        if not pred and gold:
            return Verdict(0.0, 0.0, dict.fromkeys(PARTS, 0.0), reason="no_answer")
        scores = docparse_scores(pred, gold, params.split, params.min_similarity)
        return Verdict(scores["accuracy"], float(bool(pred)), {p: scores[p] for p in PARTS})
