"""Runs detectors in order, containing every failure and bounding the ones that may hang."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from kinguard._workers import DaemonExecutor
from kinguard.detectors import Context, Detector
from kinguard.logs import describe_error, get_logger
from kinguard.types import SIGNAL_NAMES, Evidence, Message, Signal

__all__ = ["DetectorFailure", "Pipeline", "PipelineResult", "failure_kind"]

_log = get_logger("kinguard.pipeline")


@dataclass(frozen=True, slots=True)
class DetectorFailure:
    detector: str
    kind: str
    """``error`` (it raised or returned garbage) or ``timeout``."""
    detail: str

    def __str__(self) -> str:
        return f"detector_{self.kind}: {self.detector}: {self.detail}"


_FAILED_DETECTOR = re.compile(r"(?:^|; )(detector_(?:error|timeout): [^:;]*)")
"""A :class:`DetectorFailure` in a verdict's error, without its detail."""


def failure_kind(error: str) -> str:
    """What an inspection failure is, without its detail (which may quote each message):
    ``inspection_error``, or each detector that failed and how (``detector_timeout: judge``)."""
    if error.startswith("inspection_error"):
        return "inspection_error"
    return "; ".join(dict.fromkeys(_FAILED_DETECTOR.findall(error))) or error


@dataclass(slots=True)
class PipelineResult:
    signals: list[Signal] = field(default_factory=list)
    failures: list[DetectorFailure] = field(default_factory=list)


_NOTHING = PipelineResult()
"""What most messages come to: shared, so never added to (a result is made on a first find)."""


def _name(detector: Detector) -> str:
    return str(
        getattr(detector, "detector_name", None)
        or getattr(detector, "__name__", None)
        or type(detector).__name__
    )


class _Garbage(TypeError):
    """A detector returned something other than a list of signals."""

    def __init__(self, returned: object, quoted: str) -> None:
        super().__init__(f"returned {quoted}, expected a list of Signal")
        self.returned_type = type(returned).__name__


def _validated(detector: Detector, produced: object, size: int) -> list[Signal]:
    """A detector returning garbage is a failure like raising: reject it loudly.

    ``size``: the length of the message's text, which every evidence span must lie within.
    """
    if not isinstance(produced, (list, tuple)):
        raise _Garbage(produced, type(produced).__name__)
    for item in produced:
        # A signal built without validation (``model_construct``) may hold any score: one
        # above 1 or NaN would corrupt the pair's running risk.
        if (
            not isinstance(item, Signal)
            or item.name not in SIGNAL_NAMES
            or not isinstance(item.score, (int, float))
            or not 0.0 <= item.score <= 1.0
            or not _evidence_ok(item.evidence, size)
            or not isinstance(item.tier, str)
            or not isinstance(item.detail, str)
        ):
            raise _Garbage(item, repr(item))
    return list(produced)


def _evidence_ok(evidence: object, size: int) -> bool:
    """Evidence a redaction can cut and a saved state can load again: spans of the text.

    A span past the text's end is no span of it: a redaction cuts nothing there, and it
    delivered the flagged message whole with a redaction marker after it.
    """
    return isinstance(evidence, tuple) and all(
        isinstance(span, Evidence)
        and type(span.start) is int
        and type(span.end) is int
        and 0 <= span.start <= span.end <= size
        and isinstance(span.text, str)
        for span in evidence
    )


class _Overrunning(TimeoutError):
    """Not called: its call on an earlier message overran its deadline and is still running."""


class _Closed(RuntimeError):
    """The call was cancelled by the guard's own closing: kinguard's words, always quoted."""


def _detail(error: BaseException, quote: bool) -> str:
    """What a failure says of its cause. What a detector raised or returned can hold the
    message's words (``UnicodeEncodeError`` quotes the text it failed on): only its type,
    unless the guard may record content."""
    if isinstance(error, _Closed):
        return str(error)
    if isinstance(error, _Garbage):
        if quote:
            return str(error)
        return f"returned garbage ({error.returned_type}), expected a list of Signal"
    return describe_error(error, quote=quote)


def _timed(detector: Detector, message: Message, context: Context) -> tuple[object, float]:
    """What ``detector`` returns, and how long it took in its own thread."""
    started = time.monotonic()
    return detector(message, context), time.monotonic() - started


class Pipeline:
    """Inline detectors run in the caller's thread; others in a small pool under a deadline."""

    def __init__(
        self,
        detectors: Sequence[Detector],
        timeout_s: float,
        max_workers: int = 4,
        *,
        quote_errors: bool = False,
    ) -> None:
        self.detectors = tuple(detectors)
        self.quote_errors = quote_errors
        """Whether a failure may quote what the detector raised or returned (content capture)."""
        inline = [bool(getattr(d, "inline", False)) for d in self.detectors]
        # Read on every message: laid out once, so the loop unpacks a tuple per detector.
        self._steps = tuple(zip(range(len(inline)), self.detectors, inline, strict=True))
        self._all_inline = all(inline)
        self._ready = False
        """Whether every inline detector has said it is ready (its data read), which it then
        stays: from there on asynchronous inspection asks none of them again."""
        self.timeout_s = timeout_s
        self._max_workers = max_workers
        # One small pool per out-of-line detector, made on first need (most pipelines are
        # all-inline and never pay for threads): a hung detector can take its own workers
        # only, never those of the healthy ones.
        self._pools: dict[int, DaemonExecutor] = {}
        self._pool_lock = threading.Lock()
        self._closed = False
        # Per out-of-line detector (by position), its calls that overran their deadline and
        # still run. Until they end the detector is skipped: resubmitted on every message, a
        # hung detector would hang one more of its workers each time.
        self._overrunning: dict[int, set[Future[object]]] = {}
        self._overrun_lock = threading.Lock()

    def _submit(
        self, position: int, detector: Detector, message: Message, context: Context
    ) -> Future[object]:
        with self._overrun_lock:
            running = self._overrunning.get(position)
            if running:
                running.difference_update([call for call in running if call.done()])
                if running:
                    raise _Overrunning()
        with self._pool_lock:
            pool = self._pools.get(position)
            if pool is None:
                pool = self._pools[position] = DaemonExecutor(
                    self._max_workers, f"kinguard-detector-{_name(detector)}"
                )
        return pool.submit(detector, message, context)

    def _overran(self, position: int, future: Future[object]) -> None:
        """``future`` missed its deadline: cancelled if still queued, else remembered."""
        if not future.cancel():
            with self._overrun_lock:
                self._overrunning.setdefault(position, set()).add(future)

    def _collect(
        self, detector: Detector, outcome: object, context: Context, result: PipelineResult
    ) -> None:
        """Record what a detector produced, or how it failed, whichever way it ran."""
        if isinstance(outcome, _Overrunning):
            self._fail(result, detector, "timeout", "skipped: an earlier call is still running")
            return
        if isinstance(outcome, TimeoutError):
            self._fail(result, detector, "timeout", f"no answer within {self.timeout_s:.3f}s")
            return
        if isinstance(outcome, BaseException):
            self._fail(result, detector, "error", _detail(outcome, self.quote_errors))
            return
        try:
            signals = _validated(detector, outcome, len(context.text.original))
        except Exception as exc:  # garbage, or garbage that raises when read: its failure
            self._fail(result, detector, "error", _detail(exc, self.quote_errors))
            return
        result.signals.extend(signals)
        context.signals.extend(signals)

    def _fail(self, result: PipelineResult, detector: Detector, kind: str, detail: str) -> None:
        failure = DetectorFailure(_name(detector), kind, detail[:500])
        result.failures.append(failure)
        _log.error(
            "kinguard.detector_failed", detector=failure.detector, kind=kind, detail=failure.detail
        )

    def run(self, message: Message, context: Context) -> PipelineResult:
        result = _NOTHING
        # Inline detectors need no deadline: most pipelines never read the clock.
        deadline = 0.0 if self._all_inline else time.monotonic() + self.timeout_s
        for position, detector, inline in self._steps:
            outcome: object
            try:
                if inline and deadline and not getattr(detector, "ready", True):
                    # Reading its data, once per process: not the other detectors' time.
                    outcome, spent = _timed(detector, message, context)
                    deadline += spent
                elif inline:
                    outcome = detector(message, context)
                else:
                    future = self._submit(position, detector, message, context)
                    try:
                        outcome = future.result(timeout=max(deadline - time.monotonic(), 0.0))
                    except TimeoutError:
                        # Still queued behind slow calls: it must not run for nobody later
                        # and push the next messages' calls past their deadlines too.
                        self._overran(position, future)
                        raise
            except BaseException as exc:  # contained: recorded as this detector's failure
                # A detector's sys.exit() or stray CancelledError is its failure too, not the
                # app's exit; a Ctrl-C while waiting is the app's.
                if isinstance(exc, (KeyboardInterrupt, GeneratorExit)):
                    raise
                outcome = exc
            if type(outcome) is not list or outcome:  # nothing found: nothing to record
                if result is _NOTHING:
                    result = PipelineResult()
                self._collect(detector, outcome, context, result)
        return result

    async def arun(self, message: Message, context: Context) -> PipelineResult:
        # Imported here: only async apps need it, and it is ~15 ms of import time for others.
        import asyncio

        result = _NOTHING
        loop = asyncio.get_running_loop()
        # As in run(): inline detectors need no deadline, so most pipelines never read the clock.
        deadline = 0.0 if self._all_inline else loop.time() + self.timeout_s
        ready = self._ready or self._all_ready()
        for position, detector, inline in self._steps:
            outcome: object
            try:
                if inline and (ready or getattr(detector, "ready", True)):
                    outcome = detector(message, context)
                elif inline:
                    # Bounded, but about to read its data (the statistical tier's weights): off
                    # the event loop, and with no deadline, since it is a one-time cost that
                    # does not count against the other detectors' deadline either. On the
                    # loop's own executor: the guard's pool may be full of hung detectors.
                    outcome, spent = await loop.run_in_executor(
                        None, _timed, detector, message, context
                    )
                    deadline += spent
                else:
                    call = self._submit(position, detector, message, context)
                    try:
                        outcome = await asyncio.wait_for(
                            asyncio.wrap_future(call), max(deadline - loop.time(), 0.0)
                        )
                    except TimeoutError:
                        self._overran(position, call)
                        raise
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the caller's task is being cancelled: that is not ours to stop
                # The call itself was cancelled: the guard was closed while it waited, or the
                # detector let a CancelledError of its own out (its failure).
                outcome = _Closed("cancelled: the guard was closed") if self._closed else exc
            except BaseException as exc:
                if isinstance(exc, (KeyboardInterrupt, GeneratorExit)):
                    raise
                outcome = exc
            if type(outcome) is not list or outcome:
                if result is _NOTHING:
                    result = PipelineResult()
                self._collect(detector, outcome, context, result)
        return result

    def _all_ready(self) -> bool:
        try:
            self._ready = all(getattr(d, "ready", True) for _, d, inline in self._steps if inline)
        except Exception:  # a ``ready`` that raises: that detector's failure, met in the loop
            return False
        return self._ready

    def close(self) -> None:
        with self._pool_lock:
            self._closed = True
            for pool in self._pools.values():
                pool.shutdown(wait=False, cancel_futures=True)
            self._pools.clear()
