"""The one registry of verifiers, by the name a record gives in ``reward.verifier``."""

from __future__ import annotations

from orsta_trl.keys import unknown_key_message
from orsta_trl.verifiers.base import FieldError, Verifier
from orsta_trl.verifiers.count import CountVerifier
from orsta_trl.verifiers.detection import DetectionVerifier
from orsta_trl.verifiers.docparse import DocparseVerifier
from orsta_trl.verifiers.json_output import JsonVerifier
from orsta_trl.verifiers.judge import JudgeVerifier
from orsta_trl.verifiers.maths import MathVerifier
from orsta_trl.verifiers.ocr import OcrVerifier
from orsta_trl.verifiers.plan import PlanVerifier
from orsta_trl.verifiers.rewrite import RewriteVerifier
from orsta_trl.verifiers.tool import ToolVerifier

REGISTRY: dict[str, Verifier] = {
    verifier.name: verifier
    for verifier in (
        MathVerifier(),
        CountVerifier(),
        OcrVerifier(),
        DetectionVerifier(),
        DocparseVerifier(),
        JsonVerifier(),
        RewriteVerifier(),
        PlanVerifier(),
        JudgeVerifier(),
    )
}
REGISTRY["tool"] = ToolVerifier(REGISTRY)  # resolves its answer verifier in this same registry


def get_verifier(name: str) -> Verifier:
    """Look a verifier up by name; an unknown name is a FieldError naming the nearest registered one."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise FieldError("reward.verifier", unknown_key_message("verifier", str(name), REGISTRY)) from None
