"""Detectors: small ``(message, context) -> signals`` callables composed into a pipeline."""

from kinguard.detectors._base import Context, Detector, NormalizedText, PairHistory, detector
from kinguard.detectors.lexical import (
    LEXICAL_SIGNALS,
    LexicalDetector,
    MimicryDetector,
    default_detectors,
)
from kinguard.detectors.normalise import DEFAULT_MAX_CHARS, normalise

__all__ = [
    "DEFAULT_MAX_CHARS",
    "LEXICAL_SIGNALS",
    "Context",
    "Detector",
    "LexicalDetector",
    "MimicryDetector",
    "NormalizedText",
    "PairHistory",
    "default_detectors",
    "detector",
    "normalise",
]
