"""Detectors: small ``(message, context) -> signals`` callables composed into a pipeline."""

from kinguard.detectors._base import Context, Detector, NormalizedText, PairHistory, detector
from kinguard.detectors.implied import ImpliedDetector
from kinguard.detectors.lexical import LEXICAL_SIGNALS, LexicalDetector, MimicryDetector
from kinguard.detectors.normalise import DEFAULT_MAX_CHARS, normalise
from kinguard.detectors.principal import PrincipalDetector

__all__ = [
    "DEFAULT_MAX_CHARS",
    "LEXICAL_SIGNALS",
    "Context",
    "Detector",
    "ImpliedDetector",
    "LexicalDetector",
    "MimicryDetector",
    "NormalizedText",
    "PairHistory",
    "PrincipalDetector",
    "default_detectors",
    "detector",
    "normalise",
]


def default_detectors() -> list[Detector]:
    """The built-in pipeline, in order. Each step may read what earlier steps found."""
    return [LexicalDetector(), PrincipalDetector(), ImpliedDetector(), MimicryDetector()]
