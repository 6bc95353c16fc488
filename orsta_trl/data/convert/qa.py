"""Question / answer tables (JSONL, JSON, CSV or Parquet) -> records of a short-answer verifier (``math``, ``count``,
``ocr``, or a user verifier with ``short_answer``).

Columns (names configurable): ``question``, ``answer``, optional ``image`` (a path relative to the input file,
or ``{bytes}``), optional ``id`` and ``data_source``. The question is the prompt text as it is; the answer-format
instruction comes from the prompt pool at training time (see the README's "Prompt pool"), or is part of the
question already. ``count`` answers must be integers and ``ocr`` answers text: the verifier's own check
decides, and a row it rejects is skipped with its reason.
"""

from __future__ import annotations

import csv
from pathlib import Path

from orsta_trl.data.convert.common import ConvertReport, Skip, Writer, read_table, run_rows
from orsta_trl.errors import DataError, MissingFileError
from orsta_trl.keys import not_one_of
from orsta_trl.verifiers.registry import short_answer_verifiers


def _rows(src: Path):
    if src.suffix == ".csv":
        if not src.is_file():
            raise MissingFileError(f"{src}: no such file")
        with src.open(encoding="utf-8", newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                yield f"{src}:{number}", row
    else:
        yield from read_table(src)


def qa(
    src: str | Path,
    out: str | Path,
    *,
    verifier: str = "math",
    data_source: str | None = None,
    question_key: str = "question",
    answer_key: str = "answer",
    image_key: str = "image",
) -> ConvertReport:
    """Convert a question/answer table to records.

    Args:
        src: ``.jsonl``, ``.json``, ``.csv`` or ``.parquet``.
        out: the ``.jsonl`` to write.
        verifier: a verifier whose ground truth is a short answer (``Verifier.short_answer``: ``math``,
            ``count``, ``ocr``, or a user verifier that declares it).
        data_source: the records' source (default: the row's ``data_source``, else the input file's stem).
        question_key: the question column.
        answer_key: the answer column.
        image_key: the optional image column (empty cells mean no image).

    Returns:
        The :class:`ConvertReport`.
    """
    if verifier not in short_answer_verifiers():
        raise DataError(
            f"qa: verifier {not_one_of(verifier, short_answer_verifiers())} (short-answer verifiers)"
        )
    src = Path(src)

    def record(location: str, row: dict, writer: Writer) -> dict:
        question, answer = row.get(question_key), row.get(answer_key)
        if not isinstance(question, str) or not question.strip():
            raise Skip("no_question", f"column {question_key!r} is empty or missing")
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            raise Skip("no_answer", f"column {answer_key!r} is empty or missing")
        if isinstance(answer, str):
            answer = answer.strip()
        image = row.get(image_key)
        content = [{"type": "text", "text": question.strip()}]
        images = []
        if image:
            images = [writer.images.image(image, src.parent)]
            content.insert(0, {"type": "image"})
        reward = {"verifier": verifier, "ground_truth": answer, "accuracy_weight": 1.0, "format_weight": 0.0}
        if verifier == "math":
            reward["params"] = {"format": "none"}
        number = location.rsplit(":", 1)[-1].rsplit("[", 1)[-1].rstrip("]")
        return {
            "id": str(row.get("id") or f"{src.stem}-{number}"),
            "data_source": str(data_source or row.get("data_source") or src.stem),
            "prompt": [{"role": "user", "content": content}],
            "images": images,
            "reward": reward,
            "extra": {},
        }

    return run_rows(_rows(src), Writer(out), record)
