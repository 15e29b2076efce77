"""Alert sinks and their dispatch. Every sink is contained: one that raises or hangs is logged
and counted, never propagated."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from kinguard.logs import get_logger
from kinguard.types import Alert

__all__ = ["AlertDispatcher", "AlertSink", "CallbackSink", "JsonlSink"]

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

    inline = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def __call__(self, alert: Alert) -> None:
        line = alert.model_dump_json() + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)


class AlertDispatcher:
    """Logs each alert and hands it to every sink, under a deadline.

    A sink that declares ``inline = True`` (bounded by construction, like kinguard's own) runs
    in the caller's thread; any other gets ``timeout_s`` in a small pool, because a webhook
    that hangs must not stall the agent whose message raised the alert. A sink that raises or
    overruns is logged and counted, never propagated. While an overrun call is still running,
    later alerts skip that sink instead of queueing behind it: a hung sink costs one deadline,
    not one per alert.
    """

    def __init__(self, timeout_s: float, max_workers: int = 2) -> None:
        self.timeout_s = timeout_s
        self._max_workers = max_workers
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        # id(sink) -> its overrun call; the future holds the sink, so the id stays its own.
        self._overrun: dict[int, concurrent.futures.Future[None]] = {}

    def __call__(self, alert: Alert, sinks: Sequence[AlertSink]) -> int:
        """Deliver the alert; return how many sinks failed, overran or were skipped."""
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
                if getattr(sink, "inline", False):
                    sink(alert)
                else:
                    self._bounded(sink, alert)
            except Exception as exc:
                failures += 1
                _log.error("kinguard.sink_failed", sink=type(sink).__name__, error=repr(exc))
        return failures

    def _bounded(self, sink: AlertSink, alert: Alert) -> None:
        with self._lock:
            running = self._overrun.get(id(sink))
            if running is not None and not running.done():
                raise TimeoutError("still running an earlier alert past its deadline; skipped")
            self._overrun.pop(id(sink), None)
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self._max_workers, thread_name_prefix="kinguard-sink"
                )
            future = self._pool.submit(sink, alert)
        try:
            future.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            with self._lock:
                self._overrun[id(sink)] = future
            raise TimeoutError(f"no answer within {self.timeout_s:.3f}s") from None

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
