"""Alert sinks. Every sink is contained: one that raises is logged and counted, never propagated."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from kinguard.logs import get_logger
from kinguard.types import Alert

__all__ = ["AlertSink", "CallbackSink", "JsonlSink", "dispatch_alert"]

_log = get_logger("kinguard.alerts")


@runtime_checkable
class AlertSink(Protocol):
    def __call__(self, alert: Alert) -> None: ...


class CallbackSink:
    """Calls a user function with each alert."""

    def __init__(self, callback: Callable[[Alert], object]) -> None:
        self._callback = callback

    def __call__(self, alert: Alert) -> None:
        self._callback(alert)


class JsonlSink:
    """Appends each alert as one JSON line: an audit trail that survives the process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def __call__(self, alert: Alert) -> None:
        line = alert.model_dump_json() + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)


def dispatch_alert(alert: Alert, sinks: Sequence[AlertSink]) -> int:
    """Log the alert and hand it to every sink; return how many sinks failed."""
    _log.warning(
        "kinguard.alert",
        conversation_id=alert.conversation_id,
        sender=alert.sender,
        recipients=list(alert.recipients),
        action=alert.action.value,
        signals=list(alert.signals),
        kinship=alert.kinship.value,
        pair_risk=round(alert.pair_risk, 3),
        conversation_risk=round(alert.conversation_risk, 3),
        error=alert.error,
    )
    failures = 0
    for sink in sinks:
        try:
            sink(alert)
        except Exception as exc:
            failures += 1
            _log.error("kinguard.sink_failed", sink=type(sink).__name__, error=repr(exc))
    return failures
