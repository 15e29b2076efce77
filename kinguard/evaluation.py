"""Detection quality on labeled messages: per-signal precision and recall, and false alarms.

The seed of ``kinguard bench``: one function that scores any detector pipeline against rows of
``{"text": ..., "signals": [...]}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from kinguard._jsonl import read_jsonl
from kinguard.detectors import Context, Detector, default_detectors, normalise
from kinguard.types import AgentProfile, KinshipLevel, Message

__all__ = ["EvaluationReport", "SignalScore", "detect_names", "evaluate", "load_rows"]


class SignalScore(BaseModel):
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / ((self.tp + self.fp) or 1)

    @property
    def recall(self) -> float:
        return self.tp / ((self.tp + self.fn) or 1)


class EvaluationReport(BaseModel):
    signals: dict[str, SignalScore] = Field(default_factory=dict)
    messages: int = 0
    negatives: int = 0
    false_alarms: int = 0
    """Messages labeled with no signal on which at least one signal fired."""

    @property
    def micro(self) -> SignalScore:
        total = SignalScore()
        for score in self.signals.values():
            total.tp += score.tp
            total.fp += score.fp
            total.fn += score.fn
        return total

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / (self.negatives or 1)

    def shortfalls(self, precision: float, recall: float, false_alarm_rate: float) -> list[str]:
        """Where the report falls short of the floors (and the false-alarm ceiling) given."""
        m = self.micro
        checks = (
            ("precision", m.precision, m.precision >= precision, precision),
            ("recall", m.recall, m.recall >= recall, recall),
            ("false alarms", self.false_alarm_rate, self.false_alarm_rate <= false_alarm_rate,
             false_alarm_rate),
        )  # fmt: skip
        return [f"{name} {got:.3f} against {bound}" for name, got, ok, bound in checks if not ok]

    def table(self) -> str:
        lines = [f"{'signal':32} {'P':>5} {'R':>5} {'tp':>4} {'fp':>4} {'fn':>4}"]
        for name, s in sorted(self.signals.items()):
            lines.append(f"{name:32} {s.precision:5.2f} {s.recall:5.2f} {s.tp:4} {s.fp:4} {s.fn:4}")
        m = self.micro
        lines.append(f"{'micro':32} {m.precision:5.2f} {m.recall:5.2f} {m.tp:4} {m.fp:4} {m.fn:4}")
        lines.append(
            f"false alarms: {self.false_alarms}/{self.negatives} negative messages "
            f"({self.false_alarm_rate:.1%})"
        )
        return "\n".join(lines)


_SENDER = AgentProfile(name="a", model="openai:gpt-4o")
_RECIPIENT = AgentProfile(name="b", model="openai:gpt-4o")


def detect_names(
    detectors: Iterable[Detector] | None = None, threshold: float = 0.5
) -> Callable[[str], set[str]]:
    """A text -> signal names function over a pipeline, counting scores at ``threshold``."""
    pipeline = list(default_detectors() if detectors is None else detectors)

    def detect(text: str) -> set[str]:
        message = Message(sender=_SENDER.name, recipients=(_RECIPIENT.name,), text=text)
        context = Context(
            sender=_SENDER,
            recipients=(_RECIPIENT,),
            kinship=KinshipLevel.SELF,
            text=normalise(text),
        )
        found: set[str] = set()
        for detector in pipeline:
            signals = detector(message, context)
            context.signals.extend(signals)
            found.update(s.name for s in signals if s.score >= threshold)
        return found

    return detect


def evaluate(
    rows: Iterable[Mapping[str, Any]], detect: Callable[[str], set[str]]
) -> EvaluationReport:
    report = EvaluationReport()
    for row in rows:
        expected = set(row["signals"])
        found = detect(str(row["text"]))
        report.messages += 1
        if not expected:
            report.negatives += 1
            report.false_alarms += bool(found)
        for name in expected | found:
            score = report.signals.setdefault(name, SignalScore())
            if name in expected and name in found:
                score.tp += 1
            elif name in expected:
                score.fn += 1
            else:
                score.fp += 1
    return report


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    return [row for _, row in read_jsonl(path)]
