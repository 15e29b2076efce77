"""The stream gate: nothing an agent produces reaches a stream consumer before it is inspected.

Token chunks (``stream_mode="messages"``), custom events and, with ``subgraphs=True``, the
events from inside an agent's subgraph are produced while the agent's node is still running,
before kinguard has seen the message they belong to. The gate holds every such item back per
node task (the task's checkpoint namespace segment names it) until the node wrapper reports
its verdicts in-band (a :class:`TaskVerdicts` on the custom channel, put on the stream right
after the node's last token), then releases it:

* chunks of a message that was delivered unchanged go out as they were produced;
* chunks of a redacted or concealed message go out re-cut along the original chunk
  boundaries from the delivered text, so a consumer still sees a token stream and evidence
  split across chunks is caught (the whole message is the lookback);
* chunks of a blocked or halted message are dropped (the notice arrives as the node's own
  message; a halted message arrives after the human decision);
* model output the node did not emit (never inspected, never delivered) is dropped;
* subgraph updates/values and custom events are scrubbed of or rewritten to the delivered
  messages; custom payloads of a task whose messages were changed are dropped, since their
  shape is the app's own and cannot be rewritten safely;
* tool calls that an agent subgraph ran for a message that was not delivered show without
  their arguments, and their results not at all (the calls themselves already ran).

Held items of a task that never reports (it failed, or was interrupted) are dropped at the end
of the stream: they were never inspected, and the task re-runs on resume.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration
from langchain_core.runnables import RunnableConfig
from langchain_core.tracers.event_stream import _AstreamEventsCallbackHandler
from langgraph.pregel._messages import StreamMessagesHandler
from langgraph.types import Command, Send

from kinguard.logs import get_logger
from kinguard.streaming import recut
from kinguard_langgraph._core import GATE_KEY, GraphCore, TaggedPayload, TaskVerdicts
from kinguard_langgraph._messages import (
    IdentityText,
    cut_identity,
    is_identity_message,
    message_text,
    with_text,
    without_identity_text,
)
from kinguard_langgraph._state import GUARD_KEY

__all__ = ["EventGate", "StreamGate", "StreamShape", "TokenHold", "strip_private"]

_log = get_logger("kinguard.langgraph")
_NS_SEP = "|"
_MAX_DONE = 4096
_SCRUB_DEPTH = 8
_PRIVATE_MODES = frozenset({"updates", "tasks", "checkpoints", "debug"})
"""Modes whose payloads can carry kinguard's channel (``values`` never does: the channel is
left out of the graph's stream channels)."""


@dataclass(slots=True)
class Item:
    ns: tuple[str, ...]
    mode: str
    payload: Any
    raw: Any = None
    """The v2 part dict this item came from, to rebuild it with a new payload."""
    inner: tuple[str, ...] = ()
    """Tasks of guarded graphs inside the owner's task that wrote this custom payload."""


class StreamShape:
    """How the caller asked to stream, and how to ask LangGraph for what the gate needs."""

    def __init__(
        self,
        *,
        stream_mode: Any,
        subgraphs: bool,
        version: str,
        default_mode: Any,
        config: Any,
    ) -> None:
        if stream_mode is None:
            stream_mode = default_mode
        self.single = isinstance(stream_mode, str)
        self.modes: list[str] = [stream_mode] if isinstance(stream_mode, str) else list(stream_mode)
        self.requested: Any = stream_mode if self.single else list(self.modes)
        self.subgraphs = subgraphs
        self.version = version
        self.gated = subgraphs or "messages" in self.modes or "custom" in self.modes
        self.may_carry_private = not _PRIVATE_MODES.isdisjoint(self.modes)
        """Some requested mode can carry kinguard's channel (``values`` cannot)."""
        self.wants_custom = "custom" in self.modes
        self.inner_modes: list[str] = list(self.modes)
        if self.gated and not self.wants_custom:
            self.inner_modes.append("custom")
        conf = dict((config or {}).get("configurable") or {})
        self.base_depth = len([p for p in str(conf.get("checkpoint_ns") or "").split(_NS_SEP) if p])
        if self.gated:
            conf[GATE_KEY] = True
            self.config: Any = {**(config or {}), "configurable": conf}
        else:
            self.config = config

    # -- parsing and formatting -----------------------------------------------------------

    def parse(self, raw: Any, *, inner: bool) -> Item:
        """Split one streamed part into (namespace, mode, payload)."""
        if self.version == "v2" and isinstance(raw, dict) and "type" in raw:
            return Item(tuple(raw.get("ns") or ()), str(raw["type"]), raw.get("data"), raw)
        as_list = (inner and self.gated) or not self.single
        if self.subgraphs and as_list:
            ns, mode, payload = raw
            return Item(tuple(ns), mode, payload)
        if as_list:
            mode, payload = raw
            return Item((), mode, payload)
        if self.subgraphs:
            ns, payload = raw
            return Item(tuple(ns), self.modes[0], payload)
        return Item((), self.modes[0], raw)

    def format(self, item: Item) -> Any:
        if item.raw is not None:
            return {**item.raw, "data": item.payload}
        if self.single:
            return (item.ns, item.payload) if self.subgraphs else item.payload
        return (item.ns, item.mode, item.payload) if self.subgraphs else (item.mode, item.payload)

    def clean(self, raw: Any) -> Any:
        """Ungated streams: only kinguard's private channel has to be taken out."""
        if not self.may_carry_private:
            return raw
        item = self.parse(raw, inner=False)
        if item.mode not in _PRIVATE_MODES or not _mentions_private(item.payload):
            return raw
        item.payload = strip_private(item.payload)
        return self.format(item)


def _mentions_private(payload: Any, depth: int = 0) -> bool:
    """Whether the channel is in the payload's first levels (where LangGraph puts updates)."""
    if depth > 3:
        return False
    if isinstance(payload, dict):
        if GUARD_KEY in payload:
            return True
        # One plain loop: this runs on every ``updates`` chunk of every guarded run.
        for v in payload.values():
            if (
                isinstance(v, (dict, Command))
                or (isinstance(v, list) and v and isinstance(v[0], (dict, tuple, Command)))
            ) and _mentions_private(v, depth + 1):
                return True
        return False
    if isinstance(payload, (list, tuple)):
        return any(
            (isinstance(v, (dict, Command)) and _mentions_private(v, depth + 1))
            or (isinstance(v, tuple) and len(v) == 2 and v[0] == GUARD_KEY)
            for v in payload
        )
    if isinstance(payload, Command):  # a node's output, in its ``on_chain_end`` event
        return _mentions_private(payload.update, depth + 1)
    return False


def strip_private(payload: Any, depth: int = 0) -> Any:
    """``payload`` without kinguard's channel, wherever LangGraph's stream modes put it."""
    if depth > _SCRUB_DEPTH:
        return payload
    if isinstance(payload, dict):
        return {k: strip_private(v, depth + 1) for k, v in payload.items() if k != GUARD_KEY}
    if isinstance(payload, list):
        return [
            strip_private(v, depth + 1)
            for v in payload
            if not (isinstance(v, tuple) and len(v) == 2 and v[0] == GUARD_KEY)
        ]
    if isinstance(payload, tuple) and not hasattr(payload, "_fields"):
        return tuple(strip_private(v, depth + 1) for v in payload)
    if isinstance(payload, Command):
        return dataclasses.replace(payload, update=strip_private(payload.update, depth + 1))
    return payload


class StreamGate:
    """Holds the items of guarded node tasks until their verdicts arrive. One per stream call."""

    def __init__(self, core: GraphCore, shape: StreamShape) -> None:
        self.core = core
        self.shape = shape
        self.held: dict[str, list[Item]] = {}
        self.done: OrderedDict[str, TaskVerdicts] = OrderedDict()
        self.inner_done: OrderedDict[str, TaskVerdicts] = OrderedDict()
        """Verdicts of the tasks of guarded graphs running inside this graph's tasks."""

    def _owner(self, item: Item) -> str | None:
        base = self.shape.base_depth
        if item.mode == "messages" and isinstance(item.payload, tuple) and len(item.payload) == 2:
            meta = item.payload[1]
            if isinstance(meta, dict):
                parts = str(meta.get("langgraph_checkpoint_ns") or "").split(_NS_SEP)
                if len(parts) > base and parts[base]:
                    return parts[base]
        if len(item.ns) > base:
            return item.ns[base]
        return None

    def _is_gated(self, owner: str) -> bool:
        return owner.split(":", 1)[0] in self.core.gated_nodes

    def feed(self, item: Item) -> list[Item]:
        if item.mode == "custom":
            payload = item.payload
            if isinstance(payload, TaskVerdicts):
                return self._release(payload)
            if isinstance(payload, TaggedPayload):
                owner: str | None = payload.task
                item.payload = payload = payload.payload
                # A guarded graph running in the task tags its payloads and reports through
                # the task's tagging writer: a payload goes by its verdicts too.
                while isinstance(payload, (TaggedPayload, TaskVerdicts)):
                    if isinstance(payload, TaskVerdicts):
                        _remember(self.inner_done, payload.task, payload)
                        return []
                    item.inner += (payload.task,)
                    item.payload = payload = payload.payload
            else:
                owner = self._owner(item)
        else:
            owner = self._owner(item)
        if owner is not None and owner not in self.done and self._is_gated(owner):
            self.held.setdefault(owner, []).append(item)
            return []
        if item.mode in _PRIVATE_MODES and _mentions_private(item.payload):
            item.payload = strip_private(item.payload)
        return [item]

    def close(self) -> None:
        dropped = sum(len(items) for items in self.held.values())
        if dropped:
            _log.debug("kinguard.stream_dropped_uninspected", items=dropped, tasks=len(self.held))
        self.held.clear()

    # -- release ----------------------------------------------------------------------------

    def _release(self, verdicts: TaskVerdicts) -> list[Item]:
        _remember(self.done, verdicts.task, verdicts)
        items = self.held.pop(verdicts.task, [])
        if not items:
            return []
        # A payload is shown only if no guard that ruled on the messages of its task changed one.
        items = [item for item in items if all(map(self._unchanged, item.inner))]
        if self.inner_done:
            items = [self._ruled_inside(item) for item in items]
        return list(_transform(items, verdicts))

    def _ruled_inside(self, item: Item) -> Item:
        """``item`` as the guarded graphs running inside its task ruled (their own nodes'
        subgraphs stream what their agents said before those graphs' verdicts)."""
        if item.mode in ("messages", "custom"):
            return item  # tokens: held by those graphs themselves; custom: see ``feed``
        for segment in item.ns[self.shape.base_depth + 1 :]:
            verdicts = self.inner_done.get(segment)
            if verdicts is not None:
                item.payload = _scrub(item.payload, verdicts, 0)
        return item

    def _unchanged(self, task: str) -> bool:
        verdicts = self.inner_done.get(task)
        return verdicts is not None and not verdicts.modified


def _remember(done: OrderedDict[str, TaskVerdicts], task: str, verdicts: TaskVerdicts) -> None:
    done[task] = verdicts
    while len(done) > _MAX_DONE:
        done.popitem(last=False)


def _changed(verdicts: TaskVerdicts, message_id: str | None, text: str | None) -> bool:
    if message_id is None or message_id not in verdicts.replacements:
        return False
    replacement = verdicts.replacements[message_id]
    return replacement is None or text is None or replacement != text


def _transform(items: list[Item], verdicts: TaskVerdicts) -> Iterable[Item]:
    # Chunks per message id, to re-cut redacted text along the original boundaries.
    groups: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        if item.mode == "messages" and isinstance(item.payload, tuple):
            message = item.payload[0]
            if isinstance(message, BaseMessage) and isinstance(message.id, str):
                groups.setdefault(message.id, []).append(index)
    if verdicts.written:
        verdicts = _by_text(items, groups, verdicts)
    recut: dict[int, BaseMessage | None] = {}
    for message_id, indexes in groups.items():
        if message_id not in verdicts.replacements:
            continue
        replacement = verdicts.replacements[message_id]
        messages = [cast(BaseMessage, items[i].payload[0]) for i in indexes]
        if replacement is None:
            recut.update(dict.fromkeys(indexes))
            continue
        pieces = _recut(replacement, [message_text(m) for m in messages], messages)
        if pieces is not None:
            recut.update(zip(indexes, pieces, strict=True))
    run_messages: dict[str, str] = {}
    replaced_runs: set[str] = set()
    hidden_tools = _hidden_tool_calls(items, verdicts) if verdicts.hidden_calls else []
    for index, item in enumerate(items):
        if item.mode == "messages" and isinstance(item.payload, tuple) and len(item.payload) == 2:
            message, meta = item.payload
            if isinstance(message, BaseMessage):
                if is_identity_message(message) or _hidden_result(message, verdicts):
                    continue
                if index in recut:
                    new = recut[index]
                    if new is not None:
                        item.payload = (new, meta)
                        yield item
                    continue
                if (
                    verdicts.is_agent
                    and isinstance(message, (AIMessage, AIMessageChunk))
                    and message.id not in verdicts.replacements
                    and message.id not in verdicts.known_ids
                ):
                    continue  # model output the node never emitted: never inspected
                yield item
                continue
            if isinstance(message, dict):  # v3 content-block protocol events
                yield from _protocol_event(
                    item, message, meta, verdicts, run_messages, replaced_runs
                )
                continue
            yield item
            continue
        if item.mode == "custom":
            if not verdicts.modified:
                yield item
            continue
        if item.mode == "message_final":
            final = _scrub(item.payload, verdicts, 0)
            if final is not _DROP:
                item.payload = final
                event, slot = item.raw
                data = event.get("data") or {}
                if "input" in data:  # the model's prompt, with the identity the node was given
                    data = {**data, "input": _scrub(data["input"], verdicts, 0)}
                    item.raw = ({**event, "data": data}, slot)
                yield item
            continue
        if hidden_tools and _runs_hidden_call(item, hidden_tools):
            item.payload = {**item.payload, "input": {}}
        item.payload = _scrub(item.payload, verdicts, 0)
        yield item


def _hidden_tool_calls(items: list[Item], verdicts: TaskVerdicts) -> list[tuple[str, Any]]:
    """(tool, arguments) of each call in ``items`` that was made by a message not delivered
    (``verdicts.hidden_calls``): a tool's ``astream_events`` events show the arguments it ran
    with as their input, and not the call's id."""
    found: list[tuple[str, Any]] = []

    def visit(value: Any, depth: int) -> None:
        if depth > _SCRUB_DEPTH:
            return
        if isinstance(value, AIMessage):
            for call in value.tool_calls:
                visit(call, depth + 1)
        elif isinstance(value, dict):
            if "args" in value and value.get("id") in verdicts.hidden_calls:
                found.append((str(value.get("name")), value["args"]))
                return
            for each in value.values():
                visit(each, depth + 1)
        elif isinstance(value, (list, tuple)):
            for each in value:
                visit(each, depth + 1)
        elif isinstance(value, ChatGeneration):  # v1 ``on_chat_model_end`` outputs
            visit(value.message, depth + 1)
        elif isinstance(value, Command):
            visit(value.update, depth + 1)

    for item in items:
        if item.mode != "event":  # events carry the model's whole reply, calls included
            visit(item.payload, 0)
        elif isinstance(item.raw, tuple) and item.raw[0].get("event") == "on_chain_start":
            visit(item.payload, 0)  # a tools task's input: the call it runs
    return found


def _runs_hidden_call(item: Item, hidden: Sequence[tuple[str, Any]]) -> bool:
    """Whether ``item`` is a tool's event for one of the ``hidden`` calls: its tool's name
    and, in its input, the call's arguments (a tool node may add injected ones)."""
    if item.mode != "event" or not isinstance(item.raw, tuple):
        return False
    event = item.raw[0]
    data = item.payload
    if not str(event.get("event", "")).startswith("on_tool_") or not isinstance(data, dict):
        return False
    given = data.get("input")
    return isinstance(given, dict) and any(
        name == event.get("name")
        and isinstance(args, dict)
        and all(key in given and given[key] == value for key, value in args.items())
        for name, args in hidden
    )


def _by_text(
    items: list[Item], groups: Mapping[str, list[int]], verdicts: TaskVerdicts
) -> TaskVerdicts:
    """``verdicts`` with the model replies that the node wrote as strings (see
    ``TaskVerdicts.written``) ruled on as those strings were: the node's model call streamed
    them under ids of their own. A reply the node changed before writing it stays unknown,
    and is not shown."""
    texts: dict[str, str] = {}
    for message_id, indexes in groups.items():
        if message_id not in verdicts.replacements:
            texts[message_id] = message_text(_merged([items[i].payload[0] for i in indexes]))
    for item in items:  # ``astream_events``: the model's whole reply, as it ended
        final = item.payload
        if item.mode == "message_final" and isinstance(final, BaseMessage) and final.id:
            texts.setdefault(final.id, message_text(final))
    found = {
        message_id: verdicts.written[text]
        for message_id, text in texts.items()
        if text in verdicts.written
    }
    if not found:
        return verdicts
    return dataclasses.replace(verdicts, replacements={**verdicts.replacements, **found})


def _recut(
    text: str, originals: Sequence[str], messages: Sequence[BaseMessage]
) -> list[BaseMessage] | None:
    if len(messages) == 1 or "".join(originals) != message_text(_merged(messages)):
        # a full message (not chunks), or chunks we cannot line up: deliver it whole once
        first = (
            with_text(messages[-1], text)
            if len(messages) == 1
            else _merged_with_text(messages, text)
        )
        return [first, *([None] * (len(messages) - 1))]  # type: ignore[list-item]
    return [
        with_text(message, piece)
        for message, piece in zip(messages, recut(text, originals), strict=True)
    ]


def _merged(messages: Sequence[BaseMessage]) -> BaseMessage:
    if all(isinstance(m, AIMessageChunk) for m in messages):
        merged = cast(AIMessageChunk, messages[0])
        for m in messages[1:]:
            merged = merged + cast(AIMessageChunk, m)
        return merged
    return messages[-1]


def _merged_with_text(messages: Sequence[BaseMessage], text: str) -> BaseMessage:
    return with_text(_merged(messages), text)


def _protocol_event(
    item: Item,
    event: dict[str, Any],
    meta: Any,
    verdicts: TaskVerdicts,
    run_messages: dict[str, str],
    replaced_runs: set[str],
) -> Iterable[Item]:
    run_id = str((meta or {}).get("run_id", "")) if isinstance(meta, dict) else ""
    if event.get("event") == "message-start" and event.get("message_id"):
        run_messages[run_id] = str(event["message_id"])
    message_id = run_messages.get(run_id)
    if message_id is None or message_id not in verdicts.replacements:
        if verdicts.is_agent and message_id is None and run_id:
            return  # a model run the node's output does not contain
        yield item
        return
    replacement = verdicts.replacements[message_id]
    if not _changed(verdicts, message_id, None):
        yield item
        return
    if run_id in replaced_runs:
        return
    replaced_runs.add(run_id)
    if replacement is not None:
        item.payload = (AIMessage(content=replacement, id=message_id), meta)
        yield item


def _scrub(payload: Any, verdicts: TaskVerdicts, depth: int) -> Any:
    """Rewrite inspected messages to what was delivered, anywhere inside a stream payload."""
    if depth > _SCRUB_DEPTH:
        return payload
    if isinstance(payload, str):
        return _scrub_text(payload, verdicts)
    if isinstance(payload, BaseMessage):
        return _scrub_message(payload, verdicts)
    if isinstance(payload, ChatGeneration):  # v1 ``on_chat_model_end`` outputs
        message = _scrub_message(payload.message, verdicts)
        if message is _DROP:
            return _DROP
        return payload if message is payload.message else type(payload)(message=message)
    if isinstance(payload, Command):
        # What a node returned, in its ``on_chain_stream``/``on_chain_end`` events: the model
        # node of a ``create_agent`` agent returns its reply in a Command's update.
        return dataclasses.replace(
            payload,
            update=_scrub(payload.update, verdicts, depth + 1),
            goto=_scrub(payload.goto, verdicts, depth + 1),
        )
    if isinstance(payload, Send):
        return Send(payload.node, _scrub(payload.arg, verdicts, depth + 1), timeout=payload.timeout)
    if isinstance(payload, dict) and isinstance(payload.get("message"), BaseMessage):
        # a dumped generation (v1 events): its ``text`` repeats the message's text
        message = _scrub_message(payload["message"], verdicts)
        if message is _DROP:
            return _DROP
        if message is payload["message"]:
            return payload
        return {**payload, "message": message, "text": message_text(message)}
    if isinstance(payload, dict):
        if "args" in payload and payload.get("id") in verdicts.hidden_calls:
            return {**payload, "args": {}}  # a tool call: a tools task's input is a plain dict
        out: dict[Any, Any] = {}
        for key, value in payload.items():
            if key == GUARD_KEY:
                continue
            scrubbed = _scrub(value, verdicts, depth + 1)
            if scrubbed is not _DROP:
                out[key] = scrubbed
        return out
    if isinstance(payload, list):
        return [
            v for v in (_scrub(value, verdicts, depth + 1) for value in payload) if v is not _DROP
        ]
    if isinstance(payload, tuple) and not hasattr(payload, "_fields"):
        return tuple(
            v for v in (_scrub(value, verdicts, depth + 1) for value in payload) if v is not _DROP
        )
    return payload


_DROP: Any = object()


def _hidden_result(message: BaseMessage, verdicts: TaskVerdicts) -> bool:
    """The result of a call that an agent subgraph ran for a message not delivered."""
    return isinstance(message, ToolMessage) and message.tool_call_id in verdicts.hidden_calls


def _scrub_text(text: str, verdicts: TaskVerdicts) -> Any:
    """A string of a node's input or prompt (a channel of strings) without its identity."""
    identity = verdicts.identity
    if isinstance(text, IdentityText) or text == identity:
        return _DROP
    return text if identity is None else without_identity_text(text, identity)


def _scrub_message(message: BaseMessage, verdicts: TaskVerdicts) -> Any:
    if is_identity_message(message):
        shown = cut_identity(message)  # (the app's system message, as the app wrote it)
        return _DROP if shown is None else shown
    identity = verdicts.identity
    if identity is not None and isinstance(message.content, str) and identity in message.content:
        # The prompt a node joined from its strings, identity first: a model takes it as the
        # user's words, so it is no system message to cut.
        text = without_identity_text(message.content, identity)
        message = message.model_copy(update={"content": text})
    if _hidden_result(message, verdicts):
        return _DROP
    message_id = message.id
    if message_id is None:
        return message
    if message_id in verdicts.replacements:
        replacement = verdicts.replacements[message_id]
        if replacement is None:
            return _DROP
        if replacement != message_text(message):
            return with_text(message, replacement)
        return message
    if (
        verdicts.is_agent
        and isinstance(message, (AIMessage, AIMessageChunk))
        and message_id not in verdicts.known_ids
    ):
        return _DROP
    return message


class EventGate:
    """The stream gate for ``astream_events`` (v1/v2), whose token events come from callbacks.

    Events of a guarded node task are held until that task's own ``on_chain_end`` event; the
    verdicts were left with the core by the node wrapper just before. Then the held events are
    released with the same rules as :class:`StreamGate`.
    """

    def __init__(self, core: GraphCore, base_depth: int) -> None:
        self.core = core
        self.base = base_depth
        self.held: dict[str, list[Item]] = {}
        self.done: OrderedDict[str, None] = OrderedDict()
        self.runs: dict[str, Any] = {}
        """Node task -> the run id of the node's own run, from its ``on_chain_start``."""

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        meta = event.get("metadata") or {}
        namespace = str(meta.get("langgraph_checkpoint_ns") or "")
        parts = namespace.split(_NS_SEP)
        owner = parts[self.base] if len(parts) > self.base and parts[self.base] else None
        node = owner.split(":", 1)[0] if owner else None
        if owner is None or owner in self.done or node not in self.core.gated_nodes:
            return [self._clean(event)]
        kind = event.get("event")
        if (
            kind in ("on_chain_start", "on_chain_end")
            and event.get("name") == node
            and len(parts) == self.base + 1
            and meta.get("langgraph_node") == node
        ):
            # A run of the node's name in the node's task is not always the node's own: a
            # node that invokes an agent graph of its name (a langgraph-supervisor worker)
            # ends that graph, whose output is the agent's history, before the node
            # reports. The node's run starts first.
            run = event.get("run_id")
            if kind == "on_chain_start":
                self.runs.setdefault(owner, run)
            elif self.runs.get(owner, run) == run:
                return self._end(owner, namespace, event)
        self.held.setdefault(owner, []).append(self._item(event))
        return []

    def _end(self, owner: str, namespace: str, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The node task's own end: its held events go out as its verdicts allow."""
        self.runs.pop(owner, None)
        self.done[owner] = None
        while len(self.done) > _MAX_DONE:
            self.done.popitem(last=False)
        held = self.held.pop(owner, [])
        verdicts = self.core.take_verdicts(namespace)
        if verdicts is None:  # the node did not report: nothing it made was inspected
            return [self._clean(event)]
        return [*(self._format(i) for i in _transform(held, verdicts)), self._clean(event)]

    def close(self) -> None:
        self.held.clear()
        self.runs.clear()

    @staticmethod
    def _item(event: dict[str, Any]) -> Item:
        data = event.get("data") or {}
        meta = event.get("metadata") or {}
        kind = event.get("event")
        if kind == "on_chat_model_stream" and isinstance(data.get("chunk"), BaseMessage):
            return Item((), "messages", (data["chunk"], meta), (event, "chunk"))
        if kind == "on_chat_model_end" and isinstance(data.get("output"), BaseMessage):
            return Item((), "message_final", data["output"], (event, "output"))
        return Item((), "event", data, (event, None))

    @staticmethod
    def _format(item: Item) -> dict[str, Any]:
        event, slot = item.raw
        data = dict(event.get("data") or {})
        if slot == "chunk":
            data["chunk"] = item.payload[0]
        elif slot == "output":
            data["output"] = item.payload
        else:
            data = item.payload
        return {**event, "data": data}

    @staticmethod
    def _clean(event: dict[str, Any]) -> dict[str, Any]:
        data = event.get("data")
        if isinstance(data, dict) and _mentions_private(data):
            return {**event, "data": strip_private(data)}
        return event


class TokenHold:
    """What a graph's streams would show of one guarded run, held until its verdicts.

    Two runs need it: a guarded node when its graph runs as a subgraph of an unguarded one
    (that graph streams ``messages`` with ``subgraphs=True`` or ``astream_events`` v2), and the
    model call of a ``create_agent`` agent guarded by ``KinGuardMiddleware``. Either way the
    streaming handlers would pass on model tokens and events before kinguard has seen the
    message. For the run, each such handler is swapped for a proxy that streams into the hold;
    ``release`` passes on what the verdicts allow, by the stream gate's rules.
    """

    def __init__(self) -> None:
        self._messages: list[tuple[StreamMessagesHandler, list[Item]]] = []
        self._events: list[tuple[_AstreamEventsCallbackHandler, list[dict[str, Any]]]] = []

    @classmethod
    def install(cls, config: RunnableConfig) -> tuple[TokenHold, RunnableConfig] | None:
        """A hold for what ``config``'s streaming handlers would show, and the config that
        streams into it instead; None when nothing streams."""
        callbacks = config.get("callbacks")
        if not callbacks:
            return None
        handlers = callbacks if isinstance(callbacks, list) else callbacks.handlers
        hold = cls()
        swaps = [(h, proxy) for h in handlers if (proxy := hold.proxy_for(h)) is not None]
        if not swaps:
            return None
        if isinstance(callbacks, list):
            swapped: Any = [dict(swaps).get(h, h) for h in callbacks]
        else:
            swapped = callbacks.copy()
            for handler, proxy in swaps:
                swapped.remove_handler(handler)
                swapped.add_handler(proxy, inherit=True)
        return hold, cast(RunnableConfig, {**config, "callbacks": swapped})

    def proxy_for(self, handler: Any) -> Any:
        """A stand-in for ``handler`` that streams into this hold (None: it needs none).

        The stand-in filters what it streams as the handler would (its subgraph settings are
        the handler's), so holding what the handler would not show costs nothing else.
        """
        if isinstance(handler, StreamMessagesHandler):
            items: list[Item] = []

            def hold(chunk: Any) -> None:
                ns, mode, payload = chunk
                items.append(Item(tuple(ns), mode, payload))

            self._messages.append((handler, items))
            return StreamMessagesHandler(hold, handler.subgraphs, parent_ns=handler.parent_ns)
        if isinstance(handler, _AstreamEventsCallbackHandler):
            # A shallow copy shares the handler's run maps (parents, taps), so the events it
            # makes are the ones the handler would have made; only where they go changes.
            # (``copy.copy`` will not do: callback handlers copy as themselves.)
            events: list[dict[str, Any]] = []
            proxy = object.__new__(type(handler))
            proxy.__dict__.update(vars(handler))
            proxy.send_stream = _Collected(events)  # type: ignore[assignment]
            self._events.append((handler, events))
            return proxy
        return None

    def release(self, verdicts: TaskVerdicts) -> None:
        for handler, items in self._messages:
            held, items[:] = list(items), []
            if not held:
                # The handler streams nothing of this run (``subgraphs=False``, from a graph
                # this one is a node of): the delivered messages are for it to show where its
                # own node ends, so they are not marked as shown.
                continue
            seen = handler.seen
            # The task's own end, which the real handler sees next, must not show them again.
            seen.update(verdicts.replacements)
            for item in _transform(held, verdicts):
                if isinstance(item.payload, tuple) and isinstance(item.payload[0], BaseMessage):
                    message_id = item.payload[0].id
                    if message_id is not None:
                        seen.add(message_id)
                handler.stream((item.ns, item.mode, item.payload))
        for events_handler, events in self._events:
            held_events, events[:] = list(events), []
            for item in _transform([EventGate._item(e) for e in held_events], verdicts):
                events_handler.send_stream.send_nowait(EventGate._format(item))  # type: ignore[arg-type]


class _Collected:
    """Where a proxied events handler sends its events: a list, until the verdicts come."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events

    def send_nowait(self, event: dict[str, Any]) -> None:
        self.events.append(event)
