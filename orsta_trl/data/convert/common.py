"""What every importer shares: the report, the content-addressed image store, and the deterministic writer.

An importer turns rows of a foreign format into raw records of our contract, then :class:`Writer` checks each
one with the same validation ``check-data`` runs (:func:`orsta_trl.data.records.validate_record`): a record
that would fail there is skipped here with its reason, so every output file passes ``check-data``. Output is
byte-deterministic: rows keep the input's order, JSON is written with fixed separators, and images held as
bytes are written once under ``images/`` next to the output file, named by the SHA-256 of their bytes (the
bytes are copied as they are, never re-encoded).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orsta_trl.data.records import RecordError, validate_record
from orsta_trl.errors import DataError

IMAGE_DIR = "images"


class Skip(Exception):  # noqa: N818 -- a control-flow signal, not an error
    """Raised by an importer's row mapper: the row is skipped, counted under ``reason``."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass
class ConvertReport:
    """What an importer wrote and what it skipped, per reason (with the first example of each)."""

    output: str
    written: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)
    images_written: int = 0
    images_reused: int = 0
    notes: Counter = field(default_factory=Counter)

    def skip(self, location: str, reason: str, detail: str = "") -> None:
        self.skipped[reason] += 1
        self.examples.setdefault(reason, f"{location}: {detail}" if detail else location)

    def lines(self) -> list[str]:
        """A human summary, one line each."""
        out = [
            f"wrote {self.written} record(s) to {self.output} "
            f"({self.images_written} new image file(s), {self.images_reused} reused)"
        ]
        for reason, count in sorted(self.skipped.items()):
            out.append(f"skipped {count} ({reason}), e.g. {self.examples[reason]}"[:400])
        for note, count in sorted(self.notes.items()):
            out.append(f"note: {count} x {note}")
        return out


class ImageStore:
    """Writes image bytes once under ``root/images/<sha256>.<ext>`` and returns the path relative to ``root``."""

    def __init__(self, root: Path, report: ConvertReport):
        self.root, self.report = root, report

    def put(self, data: bytes) -> str:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as image:
                ext = (image.format or "bin").lower().replace("jpeg", "jpg")
        except (UnidentifiedImageError, OSError) as exc:
            raise Skip("bad_image", f"image bytes are not an image: {exc}") from None
        name = f"{IMAGE_DIR}/{hashlib.sha256(data).hexdigest()}.{ext}"
        path = self.root / name
        if path.exists():
            self.report.images_reused += 1
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            self.report.images_written += 1
        return name

    def image(self, value: Any, src_dir: Path) -> str:
        """A path relative to the output folder for an image given as ``{bytes}``/``{path}``, bytes or a path."""
        if isinstance(value, dict):
            if value.get("bytes"):
                return self.put(value["bytes"])
            value = value.get("path")
        if isinstance(value, bytes | bytearray):
            return self.put(bytes(value))
        if isinstance(value, str) and value:
            path = Path(value) if Path(value).is_absolute() else src_dir / value
            if not path.is_file():
                raise Skip("missing_image", f"no image file {path}")
            return relative_to(path, self.root)
        raise Skip("bad_image", f"not an image path or bytes: {type(value).__name__}")


def relative_to(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX separators), so the output folder can move with its images."""
    return Path(os.path.relpath(Path(path).resolve(), Path(root).resolve())).as_posix()


def split_image_tags(text: str, tag: str = "<image>") -> list[dict]:
    """A text with ``<image>`` markers as content parts: text and ``{"type": "image"}`` in order."""
    parts: list[dict] = []
    for i, piece in enumerate(text.split(tag)):
        if i:
            parts.append({"type": "image"})
        if piece:
            parts.append({"type": "text", "text": piece})
    return parts


def json_safe(value: Any) -> Any:
    """Plain JSON values from Arrow/NumPy values (bytes dropped), for ``extra``."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items() if not isinstance(v, bytes | bytearray)}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist"):
        return json_safe(value.tolist())
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class Writer:
    """Validates raw records and writes the accepted ones as JSONL, deterministically."""

    def __init__(self, out: str | Path, report: ConvertReport | None = None):
        self.out = Path(out)
        if self.out.suffix != ".jsonl":
            raise DataError(f"{out}: the output must be a .jsonl file")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.report = report or ConvertReport(str(self.out))
        self.images = ImageStore(self.out.parent, self.report)
        self._lines: list[str] = []
        self._seen: dict[tuple[str, str], str] = {}

    def add(self, location: str, raw: dict) -> bool:
        """Validate one raw record (as ``check-data`` will) and keep it; False (and a counted skip) if not."""
        try:
            record = validate_record(raw, location, self.out.parent, image_sizes="all")
        except RecordError as exc:
            self.report.skip(location, f"invalid_{exc.field.split('[')[0].split('.')[0]}", exc.message)
            return False
        if record.key in self._seen:
            self.report.skip(location, "duplicate_id", f"{record.id!r} first at {self._seen[record.key]}")
            return False
        self._seen[record.key] = location
        self._lines.append(json.dumps(raw, ensure_ascii=False, separators=(",", ":")))
        self.report.written += 1
        return True

    def close(self) -> ConvertReport:
        """Write the file (atomically) and return the report."""
        tmp = self.out.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in self._lines), encoding="utf-8")
        os.replace(tmp, self.out)
        return self.report


def run_rows(rows, writer: Writer, mapper) -> ConvertReport:
    """Map each (location, row) with ``mapper(location, row, writer)`` -> raw record; count skips; write."""
    for location, row in rows:
        try:
            if isinstance(row, Skip):
                raise row
            raw = mapper(location, row, writer)
        except Skip as exc:
            writer.report.skip(location, exc.reason, exc.detail)
            continue
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a field of an unexpected type
            writer.report.skip(location, "bad_row", f"{type(exc).__name__}: {exc}")
            continue
        writer.add(location, raw)
    return writer.close()


def read_table(path: str | Path):
    """(location, row) of a Parquet, JSONL or JSON-array file, in order; a clear error for anything else."""
    p = Path(path)
    if not p.is_file():
        from orsta_trl.errors import MissingFileError

        raise MissingFileError(f"{p}: no such file")
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        for number, row in enumerate(pq.read_table(p).to_pylist()):
            yield f"{p}[{number}]", row
    elif p.suffix == ".jsonl":
        with p.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield f"{p}:{number}", json.loads(line)
                except json.JSONDecodeError as exc:
                    yield f"{p}:{number}", Skip("bad_json", str(exc))
    elif p.suffix == ".json":
        rows = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(rows, list):
            raise DataError(f"{p}: a .json input must hold a list of rows")
        for number, row in enumerate(rows):
            yield f"{p}[{number}]", row
    else:
        raise DataError(f"{p}: unsupported input (use .parquet, .jsonl or .json)")
