"""Optional structlog set-up: JSON lines in production, readable output in a terminal.

The library itself never configures logging; applications (and the CLI) call
:func:`configure_logging` if they want kinguard's choice.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

__all__ = ["SafeLogger", "configure_logging", "describe_error", "get_logger", "warm_up"]

_warming: threading.Thread | None = None


def warm_up() -> None:
    """Import structlog on a background thread, once per process.

    kinguard does not import it at start-up (see :class:`SafeLogger`), but the first log line
    is usually an alert, in the message path of a live agent: doing the import then would
    stall that agent (and, in an async app, its whole event loop) for the import's length.
    """
    global _warming
    if _warming is None and "structlog" not in sys.modules:
        _warming = threading.Thread(target=_import_structlog, name="kinguard-warm-up", daemon=True)
        # A fork during the import would copy the held import lock into the child, whose first
        # log line would then wait for it forever: the fork waits for the import instead.
        os.register_at_fork(before=_finish_warm_up)
        _warming.start()


def _finish_warm_up() -> None:
    if _warming is not None and _warming.is_alive():
        _warming.join()


def _import_structlog() -> None:
    try:
        import structlog  # noqa: F401
    except Exception:  # a broken install shows up, contained, at the first log line instead
        return


class SafeLogger:
    """A structlog logger whose calls never raise.

    kinguard logs from inside its containment paths (a detector failed, a sink failed, an
    adapter hit a bug). If the application's logging is itself broken (a closed stream, a
    processor that raises), that must not turn a contained failure into a crash or, in
    AutoGen, a hung team.
    """

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def _emit(self, method: str, event: str, fields: dict[str, Any]) -> None:
        try:
            if self._logger is None:
                # Imported on the first log line, not at import: with rich installed, structlog
                # pulls it in and costs ~180 ms, most of kinguard's start-up otherwise.
                import structlog

                self._logger = structlog.get_logger(self._name)
            getattr(self._logger, method)(event, **fields)
        except Exception:
            return

    def debug(self, event: str, **fields: Any) -> None:
        self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, fields)


def get_logger(name: str) -> SafeLogger:
    return SafeLogger(name)


def describe_error(error: BaseException, *, quote: bool) -> str:
    """An exception as a log line, span or alert may name it: its ``repr`` where content may be
    recorded (``quote``), else only its type, since its message may quote a message's words.
    Never raises: it describes failures kinguard is containing."""
    if quote:
        try:
            return repr(error)
        except Exception:  # a broken __repr__ of the app's own: its type still says what failed
            pass
    return type(error).__name__


def configure_logging(*, json: bool | None = None, level: int | str = logging.INFO) -> None:
    """Configure structlog globally. ``json=None`` picks JSON unless stderr is a terminal."""
    import structlog

    if isinstance(level, str):
        levels = logging.getLevelNamesMapping()
        if level.upper() not in levels:
            raise ValueError(f"level: {level!r} is not one of {', '.join(sorted(levels))}")
        level = levels[level.upper()]
    as_json = not sys.stderr.isatty() if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # Resolve sys.stderr at each call, not now: it may be swapped (test runners, daemons).
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )
