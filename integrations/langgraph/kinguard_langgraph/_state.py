"""The guard's private graph channel and the guard state it carries through checkpoints.

kinguard keeps two things in the graph's own state, so they ride whatever checkpointer the
app uses and survive a restart: the monitor's state for the conversation (risk, hysteresis
bands, pending nudges) and the messages held back for a human decision. Both live under one
key that is not part of the app's schema: nodes never see it and it is left out of the
values the graph streams or returns.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, NotRequired, Self, TypedDict

from langgraph.channels.base import BaseChannel

from kinguard import KinGuard
from kinguard.logs import get_logger

__all__ = [
    "GUARD_KEY",
    "GuardChannel",
    "GuardStateChannel",
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


class GuardStateChannel(BaseChannel[dict[str, Any], Mapping[str, Any], dict[str, Any]]):
    """The private channel: :func:`merge_guard_channel` as its reducer, and cheap to copy.

    Same semantics as ``Annotated[dict, merge_guard_channel]`` (a
    ``BinaryOperatorAggregate`` starting from ``{}``), and the same checkpointed value. It
    exists because LangGraph copies *every* channel of the graph each time a conditional edge
    reads the state (``local_read(fresh=True)``), so the channel kinguard adds is copied on
    every turn of every graph it guards; this copy is three attribute writes.
    """

    __slots__ = ("value",)

    value: dict[str, Any]

    def __init__(self, typ: Any = dict, key: str = "") -> None:
        super().__init__(typ, key)
        self.value = {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GuardStateChannel)

    def __hash__(self) -> int:
        return hash(GuardStateChannel)

    @property
    def ValueType(self) -> Any:
        return dict[str, Any]

    @property
    def UpdateType(self) -> Any:
        return dict[str, Any]

    def _new(self, value: dict[str, Any]) -> Self:
        new = object.__new__(type(self))
        new.typ = self.typ
        new.key = self.key
        new.value = value
        return new

    def copy(self) -> Self:
        return self._new(self.value)

    def from_checkpoint(self, checkpoint: Any) -> Self:
        # Reducer results are never mutated, so the checkpointed dict can be shared.
        return self._new(checkpoint if isinstance(checkpoint, dict) else {})

    def checkpoint(self) -> dict[str, Any]:
        return self.value

    def get(self) -> dict[str, Any]:
        return self.value

    def is_available(self) -> bool:
        return True

    def update(self, values: Sequence[Mapping[str, Any]]) -> bool:
        if not values:
            return False
        value = self.value
        for update in values:
            value = merge_guard_channel(value, update)
        self.value = value
        return True


class GuardChannel(TypedDict):
    """Schema that registers the private channel on a copy of the user's builder."""

    kinguard: NotRequired[Annotated[dict[str, Any], GuardStateChannel()]]


class Revisions:
    """Per-conversation revision counters so the newest guard snapshot always wins.

    At most ``limit`` conversations, the least recently used forgotten first (a service may
    start a thread per request). A counter forgotten mid-run would start again below the
    checkpointed one, and that run's newer snapshots would lose to the checkpoint's older
    one; so the limit is the guard's ``max_conversations``, past which the monitor has
    forgotten the thread's risk too. A run starting restores both from its checkpoint.
    """

    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._revs: OrderedDict[str, int] = OrderedDict()

    def seen(self, conversation_id: str, rev: int) -> None:
        with self._lock:
            self._set(conversation_id, max(rev, self._revs.get(conversation_id, 0)))

    def snapshot(self, guard: KinGuard, conversation_id: str) -> tuple[int, dict[str, Any]]:
        """Next revision and the guard's state for the conversation, taken together."""
        with self._lock:
            rev = self._revs.get(conversation_id, 0) + 1
            self._set(conversation_id, rev)
            return rev, export_state(guard, conversation_id)

    def _set(self, conversation_id: str, rev: int) -> None:
        self._revs[conversation_id] = rev
        self._revs.move_to_end(conversation_id)
        if len(self._revs) > self._limit:
            self._revs.popitem(last=False)


def export_state(guard: KinGuard, conversation_id: str) -> dict[str, Any]:
    """The guard's JSON-able state for one conversation (risk and pending nudges)."""
    return guard.state_dict(conversation_id=conversation_id)


def import_state(
    guard: KinGuard,
    conversation_id: str,
    state: Mapping[str, Any],
    *,
    unless_behind: bool = False,
) -> bool:
    """Restore one conversation's state without touching the guard's other conversations
    (returns whether it restored).

    ``unless_behind``: skip a snapshot that has seen fewer messages than the live state. An
    agent's own saved state (``KinGuardMiddleware``) is one agent's view: several agents on one
    thread each save it as of their own last turn, and loading one over the live state would
    undo the risk the other turns added since. A graph's checkpoint is the whole thread's view
    at the checkpoint the run starts from (a fork or a replay included), so it always loads.
    """
    if unless_behind:
        live = guard.monitor.messages_seen(conversation_id)
        if live is not None and live >= (_clock(state, conversation_id) or 0):
            return False
    guard.load_state(state, conversation_id=conversation_id)
    _log.debug("kinguard.state_restored", conversation_id=conversation_id)
    return True


def _clock(state: Mapping[str, Any], conversation_id: str) -> int | None:
    """How many messages the conversation's monitor state has seen (None: it has none)."""
    conversations = (state.get("monitor") or {}).get("conversations") or {}
    saved = conversations.get(conversation_id)
    return int(saved.get("clock", 0)) if isinstance(saved, Mapping) else None
