"""Detectors: small ``(message, context) -> signals`` callables composed into a pipeline."""

from kinguard.detectors._base import Context, Detector, NormalizedText, PairHistory, detector
from kinguard.detectors.implied import ImpliedDetector
from kinguard.detectors.lexical import LEXICAL_SIGNALS, LexicalDetector, MimicryDetector
from kinguard.detectors.normalise import DEFAULT_MAX_CHARS, normalise
from kinguard.detectors.principal import PrincipalDetector
from kinguard.detectors.statistical import StatisticalDetector, StatisticalModel

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
    "StatisticalDetector",
    "StatisticalModel",
    "default_detectors",
    "detector",
    "normalise",
]


def default_detectors(
    *, statistical: bool = True, statistical_min_score: float | None = None
) -> list[Detector]:
    """The built-in pipeline, in order. Each step may read what earlier steps found.

    ``statistical=False`` leaves out the statistical tier: the lexical tier alone finds about a
    third as much on wording nobody wrote a cue for, with somewhat fewer false alarms
    (docs/measurements.md has the figures), and no weights to read (about 0.15 s on the first
    message).
    ``statistical_min_score`` is the probability from which that tier reports a signal (the
    model's own threshold, 0.7, unless given): higher for fewer false alarms and less recall.
    """
    return [
        LexicalDetector(),
        # After the principal detector, which stands down when an earlier step has found its
        # signal: its evidence (the principal's name) is what a redaction needs.
        PrincipalDetector(),
        *([StatisticalDetector(min_score=statistical_min_score)] if statistical else []),
        ImpliedDetector(),
        MimicryDetector(),
    ]
