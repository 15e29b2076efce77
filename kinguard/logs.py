"""Optional structlog set-up: JSON lines in production, readable output in a terminal.

The library itself never configures logging; applications (and the CLI) call
:func:`configure_logging` if they want kinguard's choice.
"""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure_logging"]


def configure_logging(*, json: bool | None = None, level: int | str = logging.INFO) -> None:
    """Configure structlog globally. ``json=None`` picks JSON unless stderr is a terminal."""
    if isinstance(level, str):
        level = logging.getLevelNamesMapping()[level.upper()]
    as_json = not sys.stderr.isatty() if json is None else json
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
