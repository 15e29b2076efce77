"""The output gate: what ``run_stream`` yields passes kinguard's verdicts too, not only the agents.

The manager puts each item a team streams into its output queue (``_output_message_queue``),
and ``run_stream`` yields from it. Two kinds of item need kinguard there:

* its verdict events, which must follow their message and come before any termination (an event
  published through the runtime instead would queue behind the termination and be lost);
* model token chunks (``ModelClientStreamingChunkEvent``, with ``model_client_stream=True``).
  An agent's container publishes them to the output topic *before* its finished message, which
  is what kinguard inspects, so without a gate a UI such as ``Console`` shows a blocked
  message's words as they stream. The gate holds each message's chunks until the message itself
  reaches the queue (inspected, and rewritten if kinguard changed it), then lets them out as
  they were, cut from the delivered text if it was redacted or concealed, or not at all if it
  was blocked or halted. Chunks whose message never comes were never inspected: they are dropped
  at the end of the run.

The gate sits on ``put`` only while it has work (an event waits, or the run streams chunks), so
the messages of a calm, unstreamed conversation go into the queue without passing through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from autogen_agentchat.messages import (
    BaseAgentEvent,
    BaseChatMessage,
    ModelClientStreamingChunkEvent,
)
from autogen_agentchat.teams._group_chat._events import GroupChatTermination

from kinguard import Action
from kinguard.logs import get_logger
from kinguard.streaming import recut
from kinguard_autogen._events import META_ACTION, KinGuardVerdictEvent

__all__ = ["OutputGate"]

_log = get_logger("kinguard.autogen")
_WITHHELD = frozenset({Action.BLOCK.value, Action.HALT.value})
_BY_SOURCE = "\0"
"""Key prefix for chunks that name no message (``full_message_id`` unset): held per sender."""


class OutputGate:
    """kinguard's hook on one team's output queue."""

    def __init__(self, queue: asyncio.Queue[Any]) -> None:
        self._queue = queue
        self._put = queue.put
        self._hook = self._gated_put
        """The bound method, made once: each attribute access would make a new one, and
        ``armed`` compares identities."""
        self._events: dict[str, KinGuardVerdictEvent] = {}
        """Verdict events waiting for their message, by the id of the message as delivered."""
        self._held: dict[str, list[ModelClientStreamingChunkEvent]] = {}
        """Chunks waiting for their message, by its id (or ``_BY_SOURCE`` + sender)."""
        self._streaming = False
        """Chunks were announced in this run: stay on ``put`` until the run ends, so no chunk
        can slip past between its announcement and its arrival."""

    @property
    def armed(self) -> bool:
        return vars(self._queue).get("put") is self._hook

    @property
    def pending_events(self) -> Mapping[str, KinGuardVerdictEvent]:
        """Verdict events waiting for their message."""
        return self._events

    @property
    def held(self) -> Mapping[str, Sequence[ModelClientStreamingChunkEvent]]:
        """Token chunks waiting for their message's verdict."""
        return self._held

    def expect_event(self, message_id: str, event: KinGuardVerdictEvent) -> None:
        """Stream ``event`` right after the message with ``message_id``."""
        self._events[message_id] = event
        self._arm()

    def expect_chunks(self) -> None:
        """A token chunk is on its way to the queue: hold it for its message's verdict."""
        if not self._streaming:
            self._streaming = True
            self._arm()

    def clear(self) -> None:
        """Forget what a previous run left (a new run starts, or the team is reset)."""
        self._events.clear()
        self._drop_held("run_restarted")
        self._streaming = False
        self._disarm()

    # -- the hook ---------------------------------------------------------------------------

    def _arm(self) -> None:
        if not self.armed:
            self._queue.put = self._hook  # type: ignore[method-assign]

    def _disarm(self) -> None:
        if self.armed:
            del self._queue.put

    async def _gated_put(self, item: Any) -> None:
        if isinstance(item, ModelClientStreamingChunkEvent):
            key = item.full_message_id or _BY_SOURCE + item.source
            self._held.setdefault(key, []).append(item)
            return
        if isinstance(item, GroupChatTermination):
            self._drop_held("run_ended")
            self._streaming = False
        elif self._held and isinstance(item, (BaseChatMessage, BaseAgentEvent)):
            try:
                released = self._release(item)
            except Exception as exc:  # never break the team: show nothing uninspected instead
                _log.error("kinguard.autogen.chunk_release_failed", error=repr(exc))
                self._held.pop(item.id, None)
                released = []
            for chunk in released:
                await self._put(chunk)
        await self._put(item)
        item_id = getattr(item, "id", None)
        event = None if item_id is None else self._events.pop(item_id, None)
        if event is not None:
            await self._put(event)
        if not self._events and not self._streaming:
            self._disarm()

    def _release(
        self, item: BaseChatMessage | BaseAgentEvent
    ) -> list[ModelClientStreamingChunkEvent]:
        """The held chunks of ``item``, as the stream may show them now that it is here."""
        chunks = self._held.pop(item.id, None)
        if isinstance(item, BaseAgentEvent):
            # A model turn that ended in tool calls: its chunks are the text the event carries
            # (a ThoughtEvent), which was never meant for the other agents.
            return chunks or []
        if chunks is None:
            chunks = self._held.pop(_BY_SOURCE + item.source, None)
            if chunks is None:
                return []
        action = item.metadata.get(META_ACTION)
        if action is None:  # delivered untouched
            return chunks
        if action in _WITHHELD:
            return []  # the notice, arriving now, says all the others may know
        originals = [chunk.content for chunk in chunks]
        text = item.to_model_text()
        if "".join(originals) == text:
            return chunks
        stamp = {META_ACTION: action}
        return [
            chunk.model_copy(update={"content": piece, "metadata": {**chunk.metadata, **stamp}})
            for chunk, piece in zip(chunks, recut(text, originals), strict=True)
        ]

    def _drop_held(self, why: str) -> None:
        if self._held:
            dropped = sum(len(chunks) for chunks in self._held.values())
            _log.debug("kinguard.autogen.chunks_dropped_uninspected", chunks=dropped, why=why)
            self._held.clear()
