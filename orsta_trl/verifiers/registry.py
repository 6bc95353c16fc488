"""The one registry of verifiers, by the name a record gives in ``reward.verifier``."""

from __future__ import annotations

from orsta_trl.keys import unknown_key_message
from orsta_trl.verifiers.base import FieldError, Verifier
from orsta_trl.verifiers.count import CountVerifier
from orsta_trl.verifiers.detection import DetectionVerifier
from orsta_trl.verifiers.maths import MathVerifier
from orsta_trl.verifiers.ocr import OcrVerifier

REGISTRY: dict[str, Verifier] = {
    verifier.name: verifier
    for verifier in (
        MathVerifier(),
        CountVerifier(),
        OcrVerifier(),
        DetectionVerifier(),
    )
}


def get_verifier(name: str) -> Verifier:
    """Look a verifier up by name; an unknown name is a FieldError naming the nearest registered one."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise FieldError("reward.verifier", unknown_key_message("verifier", str(name), REGISTRY)) from None
