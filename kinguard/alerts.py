"""Alert sinks and their dispatch. Every sink is contained: one that raises or hangs is logged
and counted, never propagated."""

from __future__ import annotations

import concurrent.futures
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol, runtime_checkable

from kinguard._workers import DaemonExecutor
from kinguard.logs import describe_error, get_logger
from kinguard.types import Alert

__all__ = [
    "AlertDispatcher",
    "AlertSink",
    "CallbackSink",
    "JsonlSink",
    "SkipRepeats",
    "is_repeat",
]

_log = get_logger("kinguard.alerts")


@runtime_checkable
class AlertSink(Protocol):
    """Receives alerts; an ``async def`` sink is run to completion on its worker thread."""

    def __call__(self, alert: Alert) -> object: ...


class CallbackSink:
    """Calls a user function with each alert."""

    def __init__(self, callback: Callable[[Alert], object]) -> None:
        self._callback = callback

    def __call__(self, alert: Alert) -> object:
        return self._callback(alert)  # an async callback's coroutine is awaited by the caller


def is_repeat(alert: object) -> bool:
    """Whether a sink that pages a person may skip the alert. One that does not say (not an
    :class:`Alert`, or one built without validation) is not: a page too many, never one
    missed."""
    return getattr(alert, "repeat", False) is True


class SkipRepeats:
    """Wraps a sink that pages a person: it gets an incident's first alert, its escalations and
    its new signals, not the repeats (``alert.repeat``), which ``skipped`` counts.

    The wrapped sink runs as it would on its own: in the agent's thread only if it is
    ``inline``, and an ``async def`` sink's coroutine goes back to the dispatcher to be run.
    An alert that does not say whether it repeats is forwarded (:func:`is_repeat`).
    """

    def __init__(self, sink: AlertSink) -> None:
        if not callable(sink):
            raise TypeError(f"sink: must be callable, not {type(sink).__name__}")
        self.sink = sink
        self.inline = bool(getattr(sink, "inline", False))
        self._lock = threading.Lock()
        self._skipped = 0

    def __call__(self, alert: Alert) -> object:
        if is_repeat(alert):
            with self._lock:
                self._skipped += 1
            return None
        return self.sink(alert)

    @property
    def skipped(self) -> int:
        """Repeats not passed on."""
        return self._skipped


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


_WORKERS_PER_SINK = 4
"""Calls of one sink that may run at once: alerts from agents running in parallel."""


class AlertDispatcher:
    """Logs each alert and hands it to every sink, under one deadline.

    A sink that declares ``inline = True`` (bounded by construction, like kinguard's own) runs
    in the caller's thread. Any other runs on a daemon worker of its own, because a webhook
    that hangs must neither stall the agent whose message raised the alert nor queue the other
    sinks behind it, nor keep the process from exiting; a burst of alerts from several agents
    is delivered in parallel. All of an alert's sinks share one deadline, ``timeout_s``. A sink
    that raises or overruns is logged and counted, never propagated; while its overrun call is
    still running, later alerts skip it instead of queueing behind it, so a hung sink costs
    one deadline, not one per alert.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        # id(sink) -> (sink, its workers); holding the sink keeps the id its own.
        self._workers: dict[int, tuple[AlertSink, DaemonExecutor]] = {}
        # id(sink) -> a call of it that overran its deadline and may still be running.
        self._overrun: dict[int, Future[None]] = {}

    def __call__(self, alert: Alert, sinks: Sequence[AlertSink]) -> int:
        """Deliver the alert; return how many sinks failed, overran or were skipped."""
        failures, pending = self._start(alert, sinks)
        if pending:
            concurrent.futures.wait([future for _, future in pending], timeout=self.timeout_s)
        return failures + self._settle(pending)

    async def adispatch(self, alert: Alert, sinks: Sequence[AlertSink]) -> int:
        """:meth:`__call__` for a coroutine: waiting for slow sinks never blocks the loop."""
        import asyncio  # only async apps pay for it

        failures, pending = self._start(alert, sinks)
        if pending:
            # Waited for on a thread: asyncio futures wrapping the calls would report every
            # failed sink a second time, as an exception "never retrieved".
            wait = functools.partial(
                concurrent.futures.wait, [future for _, future in pending], timeout=self.timeout_s
            )
            await asyncio.get_running_loop().run_in_executor(None, wait)
        return failures + self._settle(pending)

    def _start(
        self, alert: Alert, sinks: Sequence[AlertSink]
    ) -> tuple[int, list[tuple[AlertSink, Future[None]]]]:
        """Log the alert, run the inline sinks, start the others: (failures, started calls)."""
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
            incident_id=alert.incident_id,
            repeat=alert.repeat,
        )
        failures = 0
        pending: list[tuple[AlertSink, Future[None]]] = []
        for sink in sinks:
            try:
                if getattr(sink, "inline", False):
                    if inspect.isawaitable(result := sink(alert)):
                        _discard(result)
                        raise TypeError("an inline sink must not be async: it would never run")
                else:
                    pending.append((sink, self._submit(sink, alert, sinks)))
            except Exception as exc:
                failures += 1
                _failed(sink, exc)
        return failures, pending

    def _submit(self, sink: AlertSink, alert: Alert, sinks: Sequence[AlertSink]) -> Future[None]:
        with self._lock:
            if len(self._workers) > len(sinks):
                self._forget_removed(sinks)
            overrun = self._overrun.get(id(sink))
            if overrun is not None:
                if not overrun.done():
                    raise TimeoutError("still running an earlier alert past its deadline; skipped")
                del self._overrun[id(sink)]
            entry = self._workers.get(id(sink))
            if entry is None:
                worker = DaemonExecutor(_WORKERS_PER_SINK, f"kinguard-sink-{type(sink).__name__}")
                entry = self._workers[id(sink)] = (sink, worker)
            return entry[1].submit(_deliver, sink, alert)

    def _forget_removed(self, sinks: Sequence[AlertSink]) -> None:
        """Let the workers of sinks no longer in the list go."""
        current = {id(sink) for sink in sinks}
        for key in [key for key in self._workers if key not in current]:
            self._workers.pop(key)[1].shutdown(wait=False)
            self._overrun.pop(key, None)

    def _settle(self, pending: list[tuple[AlertSink, Future[None]]]) -> int:
        failures = 0
        for sink, future in pending:
            if not future.done():
                failures += 1
                with self._lock:
                    self._overrun[id(sink)] = future
                _failed(sink, TimeoutError(f"no answer within {self.timeout_s:.3f}s"))
            elif future.cancelled():
                failures += 1
                _failed(sink, RuntimeError("cancelled: the guard was closed"))
            elif (error := future.exception()) is not None:
                failures += 1
                _failed(sink, error)
        return failures

    def close(self) -> None:
        with self._lock:
            for _, worker in self._workers.values():
                worker.shutdown(wait=False, cancel_futures=True)
            self._workers.clear()
            self._overrun.clear()


def _deliver(sink: AlertSink, alert: Alert) -> None:
    """Call the sink on its worker; an ``async def`` sink is run to completion there."""
    result = sink(alert)
    if inspect.isawaitable(result):
        import asyncio  # only apps with async sinks pay for it

        asyncio.run(_completed(result))


async def _completed(awaitable: Awaitable[object]) -> None:
    await awaitable


def _discard(awaitable: Awaitable[object]) -> None:
    if inspect.iscoroutine(awaitable):
        awaitable.close()  # no "never awaited" warning on top of the logged failure


def _failed(sink: AlertSink, error: BaseException) -> None:
    _log.error(
        "kinguard.sink_failed", sink=type(sink).__name__, error=describe_error(error, quote=True)
    )
