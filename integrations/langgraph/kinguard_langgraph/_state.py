"""The guard's private graph channel and the guard state it carries through checkpoints.

kinguard keeps two things in the graph's own state, so they ride whatever checkpointer the
app uses and survive a restart: the monitor's state for the conversation (risk, hysteresis
bands, pending nudges) and the messages held back for a human decision. Both live under one
key that is not part of the app's schema: nodes never see it and it is left out of the
values the graph streams or returns.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Annotated, Any, NotRequired, TypedDict

from kinguard import KinGuard
from kinguard.logs import get_logger

__all__ = [
    "GUARD_KEY",
    "GuardChannel",
    "Revisions",
    "export_state",
    "import_state",
    "merge_guard_channel",
]

GUARD_KEY = "kinguard"
"""Name of the private channel: ``{"rev", "guard", "pending": {task: record}}``."""

_log = get_logger("kinguard.langgraph")


def merge_guard_channel(
    current: Mapping[str, Any] | None, update: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Reducer for the private channel.

    ``guard`` keeps the snapshot with the highest ``rev`` (parallel nodes of one step write
    snapshots taken at different moments; the later one contains the earlier's inspections).
    ``pending`` merges per task; a ``None`` value removes the task's record.
    """
    if not current:
        return _clean(update)
    if not update:
        return dict(current)
    merged = dict(current)
    pending = dict(current.get("pending") or {})
    for task, record in (update.get("pending") or {}).items():
        if record is None:
            pending.pop(task, None)
        else:
            pending[task] = record
    merged["pending"] = pending
    if update.get("guard") is not None and int(update.get("rev", 0)) >= int(current.get("rev", 0)):
        merged["guard"] = update["guard"]
        merged["rev"] = int(update.get("rev", 0))
    return merged


def _clean(update: Mapping[str, Any] | None) -> dict[str, Any]:
    if not update:
        return {}
    out = dict(update)
    out["pending"] = {k: v for k, v in (update.get("pending") or {}).items() if v is not None}
    return out


class GuardChannel(TypedDict):
    """Schema that registers the private channel on a copy of the user's builder."""

    kinguard: NotRequired[Annotated[dict[str, Any], merge_guard_channel]]


class Revisions:
    """Per-conversation revision counters so the newest guard snapshot always wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revs: dict[str, int] = {}

    def seen(self, conversation_id: str, rev: int) -> None:
        with self._lock:
            if rev > self._revs.get(conversation_id, 0):
                self._revs[conversation_id] = rev

    def snapshot(self, guard: KinGuard, conversation_id: str) -> tuple[int, dict[str, Any]]:
        """Next revision and the guard's state for the conversation, taken together."""
        with self._lock:
            rev = self._revs.get(conversation_id, 0) + 1
            self._revs[conversation_id] = rev
            return rev, export_state(guard, conversation_id)


def export_state(guard: KinGuard, conversation_id: str) -> dict[str, Any]:
    """The guard's JSON-able state for one conversation (risk and pending nudges)."""
    return guard.state_dict(conversation_id=conversation_id)


def import_state(guard: KinGuard, conversation_id: str, state: Mapping[str, Any]) -> None:
    """Restore one conversation's state without touching the guard's other conversations."""
    guard.load_state(state, conversation_id=conversation_id)
    _log.debug("kinguard.state_restored", conversation_id=conversation_id)
