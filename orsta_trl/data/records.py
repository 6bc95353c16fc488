"""The record contract: loading, validation, and the prepared reward of each record.

One record (JSONL shown; Parquet columns and hub datasets carry the same fields; ``reward`` may also be a JSON
string, which is how heterogeneous ground truths fit in one Parquet column)::

    {"id": "coco-000123", "data_source": "coco_det",
     "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Locate every cat"}]}],
     "images": ["images/000123.jpg"],
     "reward": {"verifier": "detection", "ground_truth": [{"bbox_2d": [10, 20, 200, 180], "label": "cat"}],
                "accuracy_weight": 1.0, "format_weight": 0.1, "extra_weights": {}, "params": {}},
     "extra": {}}

The reward block and its formula live in :mod:`orsta_trl.verifiers.reward` (re-used here).

Every problem is found before training and reported with the file and line, the data source, the record id
and the field (:class:`RecordError`); :func:`load_records` collects all of them rather than stopping at the
first, which is what ``orsta-trl check-data`` prints.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orsta_trl.errors import DataError, MissingFileError
from orsta_trl.keys import unknown_key_message
from orsta_trl.verifiers.base import FieldError
from orsta_trl.verifiers.reward import RewardSpec, prepare_reward

RECORD_KEYS = ("id", "data_source", "prompt", "images", "reward", "extra")
ROLES = ("system", "user", "assistant", "tool")


class RecordError(DataError):
    """A record that breaks the contract: where it is, which record, which field, what is wrong."""

    def __init__(
        self, location: str, data_source: str | None, record_id: str | None, field_name: str, message: str
    ):
        self.location, self.data_source, self.record_id = location, data_source, record_id
        self.field, self.message = field_name, message
        super().__init__(
            f"{location}: source {data_source!r}, record {record_id!r}, field {field_name!r}: {message}"
        )


class DatasetError(DataError):
    """Every RecordError of a dataset, raised together before training."""

    def __init__(self, errors: list[RecordError]):
        self.errors = errors
        shown = "\n".join(f"  {e}" for e in errors[:50])
        more = f"\n  ... and {len(errors) - 50} more" if len(errors) > 50 else ""
        super().__init__(f"{len(errors)} invalid record(s):\n{shown}{more}")

    def messages(self) -> list[str]:
        """Every invalid record on a line of its own, then the count (what ``orsta-trl`` prints)."""
        return [*map(str, self.errors), f"{len(self.errors)} invalid record(s)"]


@dataclass
class Record:
    id: str
    data_source: str
    prompt: list[dict]
    images: list  # absolute paths, or PIL images for in-memory datasets
    reward: RewardSpec
    image_sizes: list[tuple[int, int]] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    raw_reward: dict = field(default_factory=dict)
    location: str = ""  # file:line (or records[i]) it was read from, for errors found after loading
    origin: int = 0  # index of the file (or in-memory list item) it came from, in the list that was loaded

    @property
    def key(self) -> tuple[str, str]:
        return (self.data_source, self.id)


def iter_raw_records(path: str | Path) -> Iterator[tuple[str, Any]]:
    """Yield (location, raw record) from a JSONL or Parquet file, or from a hub dataset name (``org/name[:split]``)."""
    path_str = str(path)
    p = Path(path_str)
    if p.suffix in (".jsonl", ".json") and p.exists():
        with p.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8")
                    if line.strip():
                        yield f"{p}:{number}", json.loads(line)
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    yield f"{p}:{number}", exc
    elif p.suffix == ".parquet" and p.exists():
        import pyarrow.parquet as pq

        for number, row in enumerate(pq.read_table(p).to_pylist()):
            yield f"{p}[{number}]", parquet_row(row)
    elif p.exists():
        raise DataError(f"{p}: unsupported dataset file (use .jsonl or .parquet)")
    else:
        import datasets

        name, _, split = path_str.partition(":")
        if name.count("/") != 1 or p.suffix in (".jsonl", ".json", ".parquet"):
            raise MissingFileError(
                f"{path_str}: no such file (relative paths start at {Path.cwd()}), "
                "and not a hub dataset name like 'org/name[:split]'"
            )
        try:
            rows = datasets.load_dataset(name, split=split or "train")
        except (ConnectionError, OSError, ValueError) as exc:
            raise DataError(
                f"{path_str}: no such file, and the hub dataset cannot be loaded: {exc}"
            ) from None
        for number, row in enumerate(rows):  # Arrow structs: the same null-filling as Parquet
            yield f"{name}[{number}]", parquet_row(row)


def parquet_row(row: dict) -> dict:
    """A Parquet row with the nulls of its ``reward`` struct read as absent keys.

    Parquet stores a ``reward`` struct column with the union of every row's keys and fills the keys a row lacks
    with null, so a row that never named a param reads back with ``params.<key> = None``. Deviation from a
    literal reading: inside a struct ``reward`` (not a JSON string), a null weight, ``params``, ``extra_weights``
    or param (at any depth) means "not given", i.e. the default; ``ground_truth`` keeps its null.

    >>> parquet_row({"id": "a", "reward": {"verifier": "ocr", "ground_truth": "x", "format_weight": None,
    ...     "params": {"mode": None, "case_sensitive": True}}})["reward"]
    {'verifier': 'ocr', 'ground_truth': 'x', 'params': {'case_sensitive': True}}
    """
    reward = row.get("reward")
    if not isinstance(reward, dict):
        return row
    kept = {k: v for k, v in reward.items() if v is not None or k == "ground_truth"}
    for key in ("params", "extra_weights"):
        if isinstance(kept.get(key), dict):
            kept[key] = _without_nulls(kept[key])
    return {**row, "reward": kept}


def _without_nulls(value):
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def load_records(source, *, image_sizes: str = "all") -> list[Record]:
    """Load and validate records; raise DatasetError listing every bad record.

    Args:
        source: a file (JSONL or Parquet) or hub dataset name, a list of them, or records in memory: a list of
            dicts in the record contract (image paths relative to the working directory) or of
            :class:`Record` objects (returned as they are).
        image_sizes: ``"all"`` opens every image (checks it exists and reads its size from the header),
            ``"needed"`` only for verifiers that need the size, ``"none"`` never.

    Returns:
        The validated records, in order.

    >>> records = load_records([{"id": "q1", "data_source": "toy", "prompt": [{"role": "user", "content": "1+1?"}],
    ...     "reward": {"verifier": "math", "ground_truth": "2"}}])
    >>> records[0].key, records[0].reward.verifier.name
    (('toy', 'q1'), 'math')
    """
    records, errors = split_records(source, image_sizes=image_sizes)
    if errors:
        raise DatasetError(errors)
    return records


def split_records(source, *, image_sizes: str = "all") -> tuple[list[Record], list[RecordError]]:
    """Load and validate records, keeping the valid ones and collecting the errors (``skip_invalid``).

    Args:
        source: as for :func:`load_records`.
        image_sizes: as for :func:`load_records`.

    Returns:
        (the valid records in order, a RecordError per invalid record). Of records sharing an id within a
        data_source, the first is kept and each later one is an error.

    Raises:
        DataError: a file that cannot be read at all (missing, unsupported).
    """
    if isinstance(source, str | Path):
        source = [source]
    source = list(source)
    if source and all(isinstance(item, Record) for item in source):
        return source, []
    records, errors, seen = [], [], {}
    for origin, location, raw, base_dir in _raw_records(source):
        try:
            record = validate_record(raw, location, base_dir, image_sizes=image_sizes)
        except RecordError as exc:
            errors.append(exc)
            continue
        record.origin = origin
        duplicate = duplicate_id(record, location, seen)
        if duplicate is not None:
            errors.append(duplicate)
            continue
        records.append(record)
    return records, errors


def duplicate_id(record: Record, location: str, seen: dict) -> RecordError | None:
    """The error for a record whose (data_source, id) came earlier, else None; ``seen`` (key -> location)
    remembers it.

    Args:
        record: a validated record.
        location: where it was read (``file:line``).
        seen: the keys read so far, updated here.

    Returns:
        A RecordError naming the first occurrence, or None.
    """
    if record.key in seen:
        return RecordError(
            location,
            record.data_source,
            record.id,
            "id",
            f"duplicate id within its data_source (first at {seen[record.key]})",
        )
    seen[record.key] = location
    return None


def skipped_report(errors: list[RecordError]) -> str:
    """One line per data source: how many records were skipped, and why (counted per field).

    Args:
        errors: the errors of :func:`split_records`.

    Returns:
        The report, e.g. ``toy: 2 skipped (reward.params.mode: 1, images[0]: 1)``; empty when nothing was skipped.
    """
    from collections import Counter

    by_source: dict[str, Counter] = {}
    for error in errors:
        by_source.setdefault(str(error.data_source), Counter())[error.field] += 1
    return "\n".join(
        f"{source}: {sum(fields.values())} skipped ("
        + ", ".join(f"{name}: {n}" for name, n in fields.most_common())
        + ")"
        for source, fields in sorted(by_source.items())
    )


def _raw_records(source: list) -> Iterator[tuple[int, str, Any, Path]]:
    """(index of the item in ``source``, location, raw record, folder that relative image paths start from) for
    files and in-memory dicts."""
    for index, item in enumerate(source):
        if isinstance(item, str | Path):
            for location, raw in iter_raw_records(item):
                yield index, location, raw, Path(str(item)).parent
        else:
            yield index, f"records[{index}]", item, Path.cwd()


def validate_record(raw: Any, location: str, base_dir: Path, *, image_sizes: str = "all") -> Record:
    """Check one raw record against the contract and prepare its reward; raise RecordError."""
    if isinstance(raw, Exception):
        kind = "UTF-8" if isinstance(raw, UnicodeDecodeError) else "JSON"
        raise RecordError(location, None, None, "(line)", f"not valid {kind}: {raw}")
    if not isinstance(raw, Mapping):
        raise RecordError(location, None, None, "(record)", f"must be an object, got {type(raw).__name__}")
    source, rid = raw.get("data_source"), raw.get("id")

    def fail(field_name: str, message: str) -> RecordError:
        return RecordError(location, source, rid, field_name, message)

    for key in raw:
        if key not in RECORD_KEYS:
            raise fail(key, unknown_key_message("record field", key, RECORD_KEYS))
    if not isinstance(source, str) or not source:
        raise fail("data_source", "must be a non-empty string")
    if isinstance(rid, int) and not isinstance(rid, bool):
        rid = str(rid)
    if not isinstance(rid, str) or not rid:
        raise fail("id", "must be a non-empty string")
    prompt = _check_prompt(raw.get("prompt"), fail)
    images = raw.get("images") or []
    if not isinstance(images, list):
        raise fail("images", "must be a list of image paths (or images)")
    placeholders = sum(1 for m in prompt for part in m["content"] if part.get("type") == "image")
    if placeholders != len(images):
        raise fail(
            "images",
            f"{len(images)} image(s) but {placeholders} {{'type': 'image'}} placeholder(s) in prompt",
        )
    paths = []
    for index, image in enumerate(images):
        try:
            paths.append(resolve_image(image, base_dir))
        except (OSError, ValueError) as exc:
            raise fail(f"images[{index}]", str(exc)) from None
    reward_raw = raw.get("reward")
    if isinstance(reward_raw, str):
        try:
            reward_raw = json.loads(reward_raw)
        except json.JSONDecodeError as exc:
            raise fail("reward", f"a string reward must be JSON: {exc}") from None
    try:
        reward = prepare_reward(reward_raw)
    except FieldError as exc:
        raise fail(exc.field, exc.message) from None
    extra = raw.get("extra") or {}
    if not isinstance(extra, Mapping):
        raise fail("extra", "must be an object")
    sizes: list[tuple[int, int]] = []
    if image_sizes == "all" or (image_sizes == "needed" and reward.verifier.needs_image_size):
        for index, image in enumerate(paths):
            try:
                sizes.append(read_image_size(image, decode=image_sizes == "all"))
            except (OSError, ValueError, SyntaxError) as exc:
                raise fail(f"images[{index}]", f"cannot read image {image}: {exc}") from None
    if sizes:
        try:
            reward.verifier.check_images(reward.gold, reward.params, sizes)
        except FieldError as exc:
            raise fail(exc.field, exc.message) from None
    return Record(rid, source, prompt, paths, reward, sizes, dict(extra), dict(reward_raw), location)


def resolve_image(image: Any, base_dir: Path):
    """A path (relative to the dataset file, or absolute) as an absolute string; an in-memory image as a PIL image.

    In-memory images come from hub datasets (PIL images) and from Parquet files written by ``datasets``
    (``{"bytes": ..., "path": ...}`` structs).
    """
    if isinstance(image, str) and image:
        path = Path(image)
        return str(path if path.is_absolute() else (base_dir / path).resolve())
    if isinstance(image, Mapping) and (image.get("bytes") or image.get("path")):
        if image.get("bytes"):
            import io

            from PIL import Image

            return Image.open(io.BytesIO(image["bytes"]))
        return resolve_image(image["path"], base_dir)
    if hasattr(image, "size") and hasattr(image, "convert"):  # a PIL image
        return image
    raise ValueError(f"must be an image path, a PIL image or {{'bytes': ...}}, got {type(image).__name__}")


def read_image_size(image, *, decode: bool = False) -> tuple[int, int]:
    """(width, height) of a path or of an in-memory image; ``decode`` reads every pixel, so a truncated or
    corrupt file fails here, before training, rather than in the middle of a run."""
    if not isinstance(image, str):
        if decode:
            image.load()
        return image.size
    from PIL import Image

    with Image.open(image) as opened:
        if decode:
            opened.load()
        return opened.size


def _check_prompt(prompt: Any, fail) -> list[dict]:
    """Normalise the conversational prompt: string contents become one text part."""
    if not isinstance(prompt, list) or not prompt:
        raise fail("prompt", "must be a non-empty list of chat messages")
    messages = []
    for i, message in enumerate(prompt):
        if not isinstance(message, Mapping) or message.get("role") not in ROLES:
            raise fail(f"prompt[{i}]", f"must be a message with a role in {list(ROLES)}")
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        if not isinstance(content, list):
            raise fail(f"prompt[{i}].content", "must be a string or a list of parts")
        parts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind == "text" and isinstance(part.get("text"), str):
                parts.append({"type": "text", "text": part["text"]})
            elif kind == "image":
                parts.append({"type": "image"})
            else:
                raise fail(
                    f"prompt[{i}].content[{j}]", "must be {'type': 'text', 'text': ...} or {'type': 'image'}"
                )
        messages.append({"role": message["role"], "content": parts})
    return messages
