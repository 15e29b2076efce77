"""Fixtures for every core test."""

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # The CLI configures structlog globally, as an application would (its level filter then
    # hides info lines from a later test's capture_logs): undo it for the tests after.
    yield
    structlog.reset_defaults()
