"""The generic verl / EasyR1 RL format -> our records.

verl's rows (``verl/utils/dataset/README.md``): ``data_source``, ``prompt`` (chat messages, ``<image>`` markers
in the text for EasyR1-style multimodal rows), optional ``images``, ``ability``, ``reward_model: {style,
ground_truth}`` and ``extra_info``. The format does not say which checker scores a row (verl picks one from
``data_source`` in code), so the caller says it: one ``verifier`` for every row, or a ``data_source -> verifier``
mapping (a YAML/JSON file on the CLI). A ``ground_truth`` list of one item (GSM8K's ``["72"]``) becomes that
item; ``style`` other than ``rule`` is skipped (``model_reward``: a reward model has no verifier here).
Weights: accuracy 1, format 0 (verl's rule rewards score the answer only); ``math`` gets ``params.format:
none`` for the same reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from orsta_trl.data.convert.common import ConvertReport, Skip, Writer, json_safe, read_table, run_rows
from orsta_trl.data.convert.vtriune import chat, row_id
from orsta_trl.errors import DataError


def verl(
    src: str | Path, out: str | Path, *, verifier: str | None = None, mapping: Mapping[str, str] | None = None
) -> ConvertReport:
    """Convert a verl/EasyR1 Parquet (or JSONL) file to our records.

    Args:
        src: the input file.
        out: the ``.jsonl`` to write; images held as bytes go to ``images/`` beside it.
        verifier: the verifier of every row (e.g. ``math``), or None when ``mapping`` gives it.
        mapping: ``data_source -> verifier``; rows of a source it does not name are skipped
            (``unmapped_source``). Beats ``verifier`` where both apply.

    Returns:
        The :class:`ConvertReport`.
    """
    if verifier is None and not mapping:
        raise DataError(
            "verl: give a verifier (--verifier NAME) or a data_source -> verifier mapping (--map FILE)"
        )
    mapping = dict(mapping or {})

    def record(location: str, row: dict, writer: Writer) -> dict:
        source = str(row.get("data_source") or "verl")
        name = mapping.get(source, verifier)
        if name is None:
            raise Skip("unmapped_source", f"data_source {source!r} is not in the mapping")
        reward_model = row.get("reward_model") or {}
        style = reward_model.get("style", "rule")
        if style not in (None, "rule"):
            raise Skip("model_reward", f"reward_model.style {style!r} has no verifier")
        truth = reward_model.get("ground_truth")
        if isinstance(truth, list | tuple) and len(truth) == 1 and name != "detection":
            truth = truth[0]
        reward = {
            "verifier": name,
            "ground_truth": json_safe(truth),
            "accuracy_weight": 1.0,
            "format_weight": 0.0,
        }
        if name == "math":
            reward["params"] = {"format": "none"}
        images = [writer.images.image(image, Path(location).parent) for image in row.get("images") or []]
        extra = {k: json_safe(row[k]) for k in ("ability", "extra_info") if row.get(k) is not None}
        return {
            "id": row_id(row, location),
            "data_source": source,
            "prompt": chat(row.get("prompt"), location),
            "images": images,
            "reward": reward,
            "extra": {"verl": extra} if extra else {},
        }

    return run_rows(read_table(src), Writer(out), record)


def load_mapping(path: str | Path) -> dict[str, str]:
    """A ``data_source: verifier`` mapping from a YAML or JSON file.

    Args:
        path: the file.

    Returns:
        The mapping (strings to strings).
    """
    import yaml

    from orsta_trl.errors import MissingFileError

    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{p}: no such mapping file")
    data = yaml.safe_load(p.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise DataError(f"{p}: must map each data_source (a string) to a verifier name, e.g. 'gsm8k: math'")
    return data
