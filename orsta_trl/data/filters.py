"""Rule filters (``orsta-trl filter rules IN OUT [--config rules.yaml]``): named, configurable, counted.

Defaults follow V-Triune's data cleaning (paper, section on data curation) as we read it:

* ``choice``: drop multiple-choice and true/false questions (the answer can be guessed): an answer that is one
  capital option letter (A-F; a lowercase letter such as ``e`` is a value), or true/false/yes/no, or a prompt
  listing two or more lettered options (``A. ...`` at line starts, ``(A) ... (B) ...``, ``Options:``).
* ``math_answer``: drop ``math`` records whose answer contains one of ``= [ ] ( ) ;`` or is longer than 20
  characters (hard to verify by rule). An interval such as ``(-2, 2)`` is dropped on purpose, as V-Triune
  does: the math verifier scores ``\boxed{(-2, 2)}`` 1 and ``[-2, 2]`` 0, but also scores the equivalent
  ``-2 < x < 2`` 0, so such records punish correct answers written another way (checked in the tests).
* ``detection``: drop ``detection`` records with more than ``max_per_category`` (10) boxes of one category or a
  box covering more than ``max_area`` (0.5) of the image. Both numbers are our reading of "too crowded" and
  "too large"; set them in the config.
* ``max_prompt_length``: drop prompts longer than the recipe's ``max_prompt_length`` once their images are
  tokenized, counted exactly as training counts them (:func:`orsta_trl.data.rows.prompt_length`). It needs a
  processor, so it runs only when the caller passes one (the CLI: ``--recipe``).

The config is YAML: ``{rule_name: {enabled: bool, <setting>: value}}``; a rule not named keeps its defaults.
Unknown rules and settings are rejected with the nearest name. Kept records are written as JSONL with image
paths relative to the output file (records are rewritten, so OUT may live in another folder than IN).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orsta_trl.data.records import Record, iter_raw_records, validate_record
from orsta_trl.errors import DataError
from orsta_trl.keys import unknown_key_message

DEFAULTS: dict[str, dict[str, Any]] = {
    "choice": {
        "enabled": True,
        "verifiers": None,
    },  # None: the short-answer verifiers (Verifier.short_answer)
    "math_answer": {"enabled": True, "forbidden": "=[]();", "max_length": 20},
    "detection": {"enabled": True, "max_per_category": 10, "max_area": 0.5},
    "max_prompt_length": {"enabled": True, "max_prompt_length": None},
}
OPTION_LINES = re.compile(r"^\s*\(?[A-F][.):]\s+\S", re.MULTILINE)  # "A. 3" / "(B) 4" at a line start
OPTION_INLINE = re.compile(r"\([A-F]\)\s*\S")  # "(A) 3 (B) 4" within a line
CHOICE_WORDS = re.compile(r"\b(?:options|choices)\s*:", re.IGNORECASE)
CHOICE_ANSWER = re.compile(r"\(?[A-F]\)?\.?|true|false|yes|no", re.IGNORECASE)
LETTER = re.compile(r"\(?[a-z]\)?\.?")  # a lowercase letter is a value (e, x), not an option


def rules_config(raw: dict | None, source: str = "rules config") -> dict[str, dict[str, Any]]:
    """The defaults updated with ``raw``; unknown rules or settings raise DataError naming them.

    Args:
        raw: ``{rule: {setting: value}}`` (e.g. from YAML), or None.
        source: where ``raw`` came from, for messages.

    Returns:
        The full configuration of every rule.
    """
    config = {name: dict(values) for name, values in DEFAULTS.items()}
    if raw is None:
        return config
    if not isinstance(raw, dict):
        raise DataError(f"{source}: must map rule names to settings, e.g. 'math_answer: {{max_length: 30}}'")
    for name, values in raw.items():
        if name not in DEFAULTS:
            raise DataError(f"{source}: {unknown_key_message('rule', name, list(DEFAULTS))}")
        if not isinstance(values, dict):
            raise DataError(f"{source}: {name}: must be a mapping of settings, got {values!r}")
        for key, value in values.items():
            if key not in DEFAULTS[name]:
                raise DataError(
                    f"{source}: {name}: {unknown_key_message('setting', key, list(DEFAULTS[name]))}"
                )
            config[name][key] = value
    return config


def load_rules_config(path: str | Path | None) -> dict[str, dict[str, Any]]:
    """:func:`rules_config` of a YAML file (None: the defaults).

    Args:
        path: the YAML file, or None.

    Returns:
        The configuration of every rule.
    """
    if path is None:
        return rules_config(None)
    import yaml

    p = Path(path)
    if not p.is_file():
        from orsta_trl.errors import MissingFileError

        raise MissingFileError(f"{p}: no such rules config")
    return rules_config(yaml.safe_load(p.read_text(encoding="utf-8")), str(p))


def _text(record: Record) -> str:
    return "\n".join(
        p.get("text", "") for m in record.prompt for p in m["content"] if p.get("type") == "text"
    )


def rule_choice(record: Record, cfg: dict) -> str | None:
    verifier = record.reward.verifier
    if not (verifier.short_answer if cfg["verifiers"] is None else verifier.name in cfg["verifiers"]):
        return None
    answer = record.raw_reward.get("ground_truth")
    if (
        isinstance(answer, str)
        and CHOICE_ANSWER.fullmatch(answer.strip())
        and not LETTER.fullmatch(answer.strip())
    ):
        return f"answer {answer!r} is an option or true/false"
    text = _text(record)
    if (
        len(OPTION_LINES.findall(text)) >= 2
        or len(OPTION_INLINE.findall(text)) >= 2
        or CHOICE_WORDS.search(text)
    ):
        return "prompt lists options"
    return None


def rule_math_answer(record: Record, cfg: dict) -> str | None:
    if record.reward.verifier.name != "math":
        return None
    answer = str(record.raw_reward.get("ground_truth"))
    bad = sorted({c for c in answer if c in cfg["forbidden"]})
    if bad:
        return f"answer contains {''.join(bad)!r} (equivalent forms are hard to verify by rule)"
    if len(answer) > int(cfg["max_length"]):
        return f"answer longer than {cfg['max_length']} characters"
    return None


def rule_detection(record: Record, cfg: dict) -> str | None:
    if record.reward.verifier.name != "detection":
        return None
    gold = record.reward.gold
    counts = Counter(label.lower() for label in gold.labels)
    if counts and max(counts.values()) > int(cfg["max_per_category"]):
        label, n = counts.most_common(1)[0]
        return f"{n} boxes of {label!r} (max {cfg['max_per_category']})"
    if record.image_sizes and len(gold.boxes):
        width, height = record.image_sizes[0]
        boxes = gold.boxes
        share = float((((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])) / (width * height)).max())
        if share > float(cfg["max_area"]):
            return f"a box covers {share:.0%} of the image (max {float(cfg['max_area']):.0%})"
    return None


RULES: dict[str, Callable[[Record, dict], str | None]] = {
    "choice": rule_choice,
    "math_answer": rule_math_answer,
    "detection": rule_detection,
}


@dataclass
class FilterReport:
    """Records read, kept, and removed per rule (the first rule that fired) with an example each."""

    read: int = 0
    kept: int = 0
    removed: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)
    not_applied: list = field(default_factory=list)

    def lines(self) -> list[str]:
        """A human summary, one line each."""
        out = [f"read {self.read}, kept {self.kept}, removed {self.read - self.kept}"]
        out += [
            f"  {rule:<18} removed {n:>6}  e.g. {self.examples[rule]}"[:300]
            for rule, n in self.removed.items()
        ]
        out += [f"  {rule:<18} not applied: {why}" for rule, why in self.not_applied]
        return out


def apply_rules(
    records: list[Record], config: dict | None = None, *, processing_class=None, tools: list | None = None
) -> tuple[list[Record], FilterReport]:
    """Run the enabled rules over validated records, in order; a record is removed by the first rule that fires.

    Args:
        records: validated records (``load_records``).
        config: from :func:`rules_config` (None: the defaults).
        processing_class: the processor (or tokenizer) training will use; needed by ``max_prompt_length``.
        tools: the run's tools, whose schemas the chat template writes into every prompt (counted).

    Returns:
        (kept records, :class:`FilterReport`).
    """
    from orsta_trl.data.rows import prompt_length

    config = config or rules_config(None)
    active = [(name, RULES[name]) for name in RULES if config[name]["enabled"]]
    limit = config["max_prompt_length"]
    report = FilterReport(read=len(records))
    if limit["enabled"]:
        if processing_class is None or limit["max_prompt_length"] is None:
            report.not_applied.append(("max_prompt_length", "needs a processor and a length (pass --recipe)"))
        else:
            n = int(limit["max_prompt_length"])

            def too_long(record: Record, _cfg) -> str | None:
                length = prompt_length(record, processing_class, tools)
                return f"{length} prompt tokens > {n}" if length > n else None

            active.append(("max_prompt_length", too_long))
    kept = []
    for record in records:
        for name, rule in active:
            why = rule(record, config.get(name, {}))
            if why:
                report.removed[name] += 1
                report.examples.setdefault(name, f"{record.data_source}/{record.id}: {why}")
                break
        else:
            kept.append(record)
    report.kept = len(kept)
    return kept, report


def read_with_raw(path: str | Path) -> list[tuple[dict, Record]]:
    """(raw record, validated Record) of every record of a file; DatasetError if any is invalid or repeats an
    id within its data_source, as for training.

    Args:
        path: a JSONL or Parquet dataset file.

    Returns:
        The pairs, in order.
    """
    from orsta_trl.data.records import DatasetError, RecordError, duplicate_id

    pairs, errors, seen = [], [], {}
    base = Path(str(path)).parent
    for location, raw in iter_raw_records(path):
        try:
            record = validate_record(raw, location, base, image_sizes="all")
        except RecordError as exc:
            errors.append(exc)
            continue
        duplicate = duplicate_id(record, location, seen)
        if duplicate is not None:
            errors.append(duplicate)
        else:
            pairs.append((raw, record))
    if errors:
        raise DatasetError(errors)
    return pairs


def write_records(pairs, out: str | Path, *, extra: dict | None = None) -> Path:
    """Write raw records to JSONL with image paths made relative to ``out``'s folder; images held as bytes are
    stored once under ``images/`` (content-addressed). ``extra`` maps a record key to fields added to ``extra``.

    Args:
        pairs: (raw record, Record) pairs to write, in order.
        out: the ``.jsonl`` file.
        extra: optional ``{(data_source, id): {field: value}}`` merged into each record's ``extra``.

    Returns:
        The path written.
    """
    from orsta_trl.data.convert.common import ConvertReport, ImageStore, relative_to

    out = Path(out)
    if out.suffix != ".jsonl":
        raise DataError(f"{out}: the output must be a .jsonl file")
    out.parent.mkdir(parents=True, exist_ok=True)
    store = ImageStore(out.parent, ConvertReport(str(out)))
    lines = []
    for raw, record in pairs:
        row = dict(raw)
        images = []
        for original, resolved in zip(raw.get("images") or [], record.images, strict=True):
            if isinstance(original, dict) and original.get("bytes"):
                images.append(store.put(original["bytes"]))
            elif isinstance(resolved, str):
                images.append(relative_to(Path(resolved), out.parent))
            else:
                raise DataError(f"{record.data_source}/{record.id}: cannot write an in-memory image to JSONL")
        if "images" in row or images:
            row["images"] = images
        if extra and record.key in extra:
            row["extra"] = {**(row.get("extra") or {}), **extra[record.key]}
        lines.append(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
    tmp = out.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(out)
    return out


def filter_rules_file(
    src: str | Path,
    out: str | Path,
    config: dict | None = None,
    *,
    processing_class=None,
    tools: list | None = None,
) -> FilterReport:
    """Read ``src``, apply the rules, write the kept records to ``out``.

    Args:
        src: a JSONL or Parquet dataset file.
        out: the ``.jsonl`` to write.
        config: from :func:`rules_config` / :func:`load_rules_config` (None: the defaults).
        processing_class: the processor for ``max_prompt_length`` (None: that rule is not applied).
        tools: the run's tools (their schemas count in ``max_prompt_length``).

    Returns:
        The :class:`FilterReport`.
    """
    pairs = read_with_raw(src)
    kept, report = apply_rules([r for _, r in pairs], config, processing_class=processing_class, tools=tools)
    keep = {id(r) for r in kept}
    write_records([(raw, r) for raw, r in pairs if id(r) in keep], out)
    return report
