"""``json``: structured output that must be a JSON object, optionally matching a JSON Schema.

The output is the ``<answer>`` block when there is one, else the whole completion, with a surrounding code
fence removed. ``accuracy`` is 1 when it parses as a JSON object and satisfies ``params.schema`` (any JSON
Schema draft; the schema itself is checked when the params are read) and contains every key of
``params.required_keys``; else 0. The ground truth is unused (anything, null included, is accepted).

Parts (the graded shaping reward of structured-output GRPO recipes): ``json_hard`` = 0.2 when a JSON object
parses, else 0; ``json_soft`` = 0.2 when a ``{`` appears in the output plus 0.2 when a ``}`` appears after it.
``format`` = ``json_soft`` / 0.4.

Reason codes: ``invalid_json`` (does not parse), ``not_object`` (parses, but not to an object),
``schema_mismatch`` (fails the schema), ``missing_keys`` (lacks a required key).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonschema

from orsta_trl.verifiers.answer import extract
from orsta_trl.verifiers.base import Context, FieldError, Verdict, Verifier

PARTS = ("json_hard", "json_soft")


def output_text(text: str) -> str:
    """The answer block (else the whole text) with a code fence removed, stripped."""
    return extract(text, "json")


def parse_json(text: str) -> tuple[Any, bool]:
    """(value, True) when ``text`` parses as JSON, else (None, False); never raises."""
    try:
        return json.loads(text), True
    except (ValueError, RecursionError):
        return None, False


def soft_score(text: str) -> float:
    """0.2 for a ``{``, plus 0.2 for a ``}`` after it."""
    start = text.find("{")
    if start < 0:
        return 0.0
    return 0.4 if "}" in text[start + 1 :] else 0.2


@lru_cache(maxsize=64)
def _validator(schema_json: str) -> Any:
    schema = json.loads(schema_json)
    return jsonschema.validators.validator_for(schema)(schema)


def _schema_holds(schema: Mapping, value: Any) -> bool:
    try:
        return bool(_validator(json.dumps(schema, sort_keys=True)).is_valid(value))
    except RecursionError:
        return False


def json_scores(output: str, schema: Mapping | None = None, required_keys: tuple[str, ...] = ()) -> dict:
    """``accuracy``, ``json_hard``, ``json_soft`` and ``reason`` for an already extracted output."""
    value, ok = parse_json(output)
    soft = soft_score(output)
    is_object = ok and isinstance(value, dict)
    reason = None
    if not ok:
        reason = "invalid_json"
    elif not is_object:
        reason = "not_object"
    elif schema is not None and not _schema_holds(schema, value):
        reason = "schema_mismatch"
    elif any(key not in value for key in required_keys):
        reason = "missing_keys"
    return {
        "accuracy": float(reason is None),
        "json_hard": 0.2 if is_object else 0.0,
        "json_soft": soft,
        "reason": reason,
    }


@dataclass(frozen=True)
class JsonParams:
    schema: Mapping | None = None
    required_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.schema is not None:
            if not isinstance(self.schema, Mapping):
                raise FieldError(
                    "reward.params.schema", f"must be a JSON Schema object, got {self.schema!r:.80}"
                )
            try:
                json.dumps(self.schema)
                jsonschema.validators.validator_for(self.schema).check_schema(self.schema)
            except jsonschema.exceptions.SchemaError as exc:
                raise FieldError("reward.params.schema", f"invalid JSON Schema: {exc.message}") from None
            except (TypeError, ValueError) as exc:
                raise FieldError("reward.params.schema", f"not JSON-serialisable: {exc}") from None
        keys = self.required_keys
        if keys is None:
            keys = ()
        if (
            isinstance(keys, str)
            or not isinstance(keys, list | tuple)
            or not all(isinstance(k, str) for k in keys)
        ):
            raise FieldError("reward.params.required_keys", f"must be a list of strings, got {keys!r:.80}")
        object.__setattr__(self, "required_keys", tuple(keys))


class JsonVerifier(Verifier):
    """A JSON object, optionally valid against a schema or holding required keys."""

    name = "json"
    answer_policy = "json"
    Params = JsonParams
    parts = PARTS

    def prepare(self, ground_truth: Any, params: JsonParams) -> None:
        return None

    def score(self, text: str, gold: Any, params: JsonParams, ctx: Context) -> Verdict:
        s = json_scores(output_text(text), params.schema, params.required_keys)
        return Verdict(s["accuracy"], s["json_soft"] / 0.4, {p: s[p] for p in PARTS}, reason=s["reason"])
