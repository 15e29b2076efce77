"""Daemon worker threads for the calls kinguard runs under a deadline (slow detectors, sinks).

``concurrent.futures.ThreadPoolExecutor`` joins its workers when the interpreter exits, so one
call that never returns (a webhook without a socket timeout) would keep the host process from
exiting, ``shutdown()`` or not. These workers are daemon threads: a call kinguard has given up
on dies with the process instead of holding it.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DaemonExecutor"]

_T = TypeVar("_T")
_Work = tuple["concurrent.futures.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class DaemonExecutor(concurrent.futures.Executor):
    """Up to ``max_workers`` daemon threads, started as work needs them."""

    def __init__(self, max_workers: int, name: str) -> None:
        self._max_workers = max_workers
        self._name = name
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._closed = False

    def submit(  # type: ignore[override]
        self, fn: Callable[..., _T], /, *args: Any
    ) -> concurrent.futures.Future[_T]:
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name}: cannot run calls after shutdown")
            self._work.put((future, fn, args))
            # A worker that finished its last call waits on the queue: no new thread needed.
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._max_workers:
                thread = threading.Thread(
                    target=self._run, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
        return future

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as exc:  # the caller sees it through the future
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del item, future, fn, args  # drop references to the finished call before waiting
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            if cancel_futures:
                while True:
                    try:
                        item = self._work.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        item[0].cancel()
            for _ in self._threads:
                self._work.put(None)
            threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join()
