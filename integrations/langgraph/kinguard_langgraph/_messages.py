"""Small helpers over LangChain messages: their text, rewritten copies, kinguard's own notices."""

from __future__ import annotations

import threading
import uuid
import weakref
from typing import TYPE_CHECKING, Any, cast

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)

from kinguard.identity import IDENTITY_MARKER, NUDGE_MARKER
from kinguard.text import argument_strings

if TYPE_CHECKING:
    from kinguard import KinGuard

__all__ = [
    "HELD_NOTICE",
    "HELD_REPLY_NOTICE",
    "IDENTITY_ID_PREFIX",
    "NOTICE_NAME",
    "REASONING_KWARG",
    "IdentityDict",
    "IdentityPair",
    "IdentityText",
    "already_inspected",
    "as_written",
    "cut_identity",
    "delivered_as",
    "guard_token",
    "held_stand_in",
    "identity_message",
    "inspected_text",
    "is_identity_message",
    "is_system_message",
    "mark_inspected",
    "message_text",
    "notice_message",
    "reasoning_texts",
    "released_as",
    "source_id",
    "tool_call_ids",
    "with_identity",
    "with_text",
    "without_identity",
    "without_identity_text",
]

IDENTITY_ID_PREFIX = "kinguard-identity-"
_NOTICE_ID_PREFIX = "kinguard-notice-"
NOTICE_NAME = "kinguard"
"""``name`` of the messages kinguard puts in the conversation, so agents see who wrote them."""

_REASONING_BLOCKS = frozenset({"text", "reasoning", "thinking", "redacted_thinking"})
REASONING_KWARG = "reasoning_content"
"""Where DeepSeek, Groq and Ollama's LangChain models put a reply's reasoning (string content)."""
_CALLS = frozenset({"tool_calls", "function_call", "tool_use", "tool_call"})
"""Where a message's tool calls live: its fields, provider kwargs and content blocks."""
_SYSTEM_ROLES = frozenset({"system", "developer"})
"""Roles of an OpenAI-format dict's instructions (``developer``: o1 and later models)."""


def message_text(message: BaseMessage) -> str:
    """The message's visible text: a plain string, or the text blocks of block content."""
    content = message.content
    if isinstance(content, str):
        return content
    text = message.text
    return text if isinstance(text, str) else str(text)


def reasoning_texts(message: BaseMessage) -> list[str]:
    """The readable reasoning a message carries: Anthropic ``thinking`` blocks, standard and
    OpenAI ``reasoning`` blocks (text or summary), and ``reasoning_content`` (DeepSeek, Groq,
    Ollama). ``redacted_thinking`` is encrypted: nobody can read it.

    It travels with the message to every agent after it: their models are given it as history
    (Anthropic's thinking blocks are sent back as they are), their nodes and the app read it.
    """
    texts: list[Any] = []
    if not isinstance(message.content, str):
        for block in message.content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "thinking":
                texts.append(block.get("thinking"))
            elif block.get("type") == "reasoning":
                texts.append(block.get("reasoning"))
                summary = block.get("summary")
                if isinstance(summary, list):
                    texts += [part.get("text") for part in summary if isinstance(part, dict)]
    texts.append(message.additional_kwargs.get(REASONING_KWARG))
    return [text for text in texts if isinstance(text, str) and text.strip()]


def inspected_text(message: BaseMessage) -> tuple[str, int]:
    """What kinguard reads in a message, and how much of it is the visible text.

    After the visible text comes its reasoning (:func:`reasoning_texts`), then the string
    arguments of the message's tool calls: a tool such as ``send_message(to, text)`` carries
    words to other agents as surely as the message does. So do the raw arguments of calls the
    model got wrong (``invalid_tool_calls``): they stay in the message that other agents and a
    retry read.
    """
    text = message_text(message)
    reasoning = reasoning_texts(message)
    calls = getattr(message, "tool_calls", None)
    invalid = getattr(message, "invalid_tool_calls", None)
    if not calls and not invalid and not reasoning:
        return text, len(text)
    arguments = [value for call in calls or () for value in argument_strings(call.get("args"))]
    arguments += [call["args"] for call in invalid or () if (call.get("args") or "").strip()]
    if not arguments and not reasoning:
        return text, len(text)
    return "\n\n".join([text, *reasoning, *arguments]), len(text)


def delivered_as(
    message: BaseMessage, text: str | None, read: tuple[str, int] | None = None
) -> BaseMessage | None:
    """``message`` as a verdict delivers ``text`` (what :func:`inspected_text` read, passed as
    ``read`` when the caller has it); ``None``: it cannot be delivered.

    A change to the visible text is applied to it; a change to a tool call's arguments cannot
    be (they are data, not prose to re-cut), so such a message is not delivered at all.
    """
    if text is None:
        return None
    inspected, visible = read if read is not None else inspected_text(message)
    if text == inspected:
        return message
    if visible == len(inspected):
        return with_text(message, text)
    tail = inspected[visible:]  # its reasoning, then its calls' arguments
    if text.endswith(tail):
        shown = text[: len(text) - len(tail)]
        return message if shown == inspected[:visible] else with_text(message, shown)
    reasoning = reasoning_texts(message)
    arguments = tail[len("\n\n".join(["", *reasoning])) :]
    if not reasoning or not text.endswith(arguments):
        return None
    # The reasoning was rewritten: the visible text goes on, rewritten or not, without it.
    # All of ``text`` is fit to deliver, so the cut need only fall where the reasoning began:
    # after as many paragraph breaks as the visible text had (a rewrite seldom changes that).
    cut = -2
    for _ in range(inspected[:visible].count("\n\n") + 1):
        cut = text.find("\n\n", cut + 2)
        if cut < 0:
            return None
    return with_text(message, text[:cut])


def released_as(message: BaseMessage, text: str | None, *, edited: bool) -> BaseMessage | None:
    """A halted message as a person released it (``text``: what the guard's decision gives;
    ``None``, as on a rejection, gives ``None``).

    Approved: as the guard would have delivered it without the halt (:func:`delivered_as`: the
    message itself, or its visible text redacted or concealed; ``None`` when another rule
    blocks it or a rewrite reached a tool call's arguments). Edited: the reviewer's text and
    nothing else, even when that is the visible text as it was. An edited message makes no
    tool calls: the reviewer saw their arguments but could not edit them, and a call kept
    would carry what the reviewer took out.
    """
    if text is None:
        return None
    if not edited:
        inspected, visible = inspected_text(message)
        if text == inspected[:visible]:
            return message
        return delivered_as(message, text, (inspected, visible))
    return _without_tool_calls(with_text(message, text))


def tool_call_ids(message: BaseMessage | None) -> list[str]:
    """Ids of the tool calls ``message`` makes (their results answer to these)."""
    calls = getattr(message, "tool_calls", None) or ()
    return [str(call["id"]) for call in calls if call.get("id")]


def _without_tool_calls(message: BaseMessage) -> BaseMessage:
    if not isinstance(message, AIMessage):
        return message
    content = message.content
    if not isinstance(content, str):
        blocks = [b for b in content if not (isinstance(b, dict) and b.get("type") in _CALLS)]
        content = blocks if blocks else ""
    kwargs = {k: v for k, v in message.additional_kwargs.items() if k not in _CALLS}
    return message.model_copy(
        update={
            "content": content,
            "tool_calls": [],
            "invalid_tool_calls": [],
            "additional_kwargs": kwargs,
        }
    )


def with_text(message: BaseMessage, text: str) -> BaseMessage:
    """A copy of ``message`` (same id, type and tool calls) whose visible text is ``text``.

    Block content keeps its non-text blocks (images, tool-use blocks); text and reasoning blocks
    are replaced by the one delivered text, and a ``reasoning_content`` field is dropped, since
    reasoning can carry what was redacted.
    """
    content = message.content
    new_content: str | list[str | dict[Any, Any]]
    if isinstance(content, str):
        new_content = text
    else:
        kept = [
            block
            for block in content
            if isinstance(block, dict) and block.get("type") not in _REASONING_BLOCKS
        ]
        new_content = [{"type": "text", "text": text}, *kept] if kept else text
    update: dict[str, Any] = {"content": new_content}
    if REASONING_KWARG in message.additional_kwargs:
        kwargs = message.additional_kwargs
        update["additional_kwargs"] = {k: v for k, v in kwargs.items() if k != REASONING_KWARG}
    return message.model_copy(update=update)


def notice_message(
    original: BaseMessage, notice: str, *, sender: str, action: str
) -> AIMessage | ToolMessage:
    """What other agents see in place of a withheld message: a notice signed by kinguard.

    A tool's result gets a tool message answering the same call: the AI message that made the
    call may stay in the history, and OpenAI and Anthropic reject a call left unanswered.
    """
    original_id = original.id or uuid.uuid4().hex
    notice_id = f"{_NOTICE_ID_PREFIX}{original_id}"
    meta = {"kinguard": {"action": action, "sender": sender, "message_id": original_id}}
    if isinstance(original, ToolMessage):
        return ToolMessage(
            content=notice,
            tool_call_id=original.tool_call_id,
            name=original.name,
            id=notice_id,
            status="error",
            response_metadata=meta,
        )
    return AIMessage(content=notice, name=NOTICE_NAME, id=notice_id, response_metadata=meta)


HELD_NOTICE = "[kinguard withheld this tool result for human review]"
HELD_REPLY_NOTICE = "[kinguard withheld this reply for human review]"


def held_stand_in(message: ToolMessage, *, sender: str) -> ToolMessage:
    """What answers a tool call while its result is held for a human: the call stays in the
    history, and a model reading it unanswered (new input instead of a decision) fails at
    OpenAI and Anthropic. It has the held result's id, so what the decision delivers replaces
    it in place; true enough to stay if nobody ever decides."""
    notice = notice_message(message, HELD_NOTICE, sender=sender, action="halt")
    return cast(ToolMessage, notice).model_copy(update={"id": message.id})


_tokens: weakref.WeakKeyDictionary[KinGuard, str] = weakref.WeakKeyDictionary()
_tokens_lock = threading.Lock()


def guard_token(guard: KinGuard) -> str:
    """A token that names ``guard`` (for as long as it lives) in the marks it leaves."""
    with _tokens_lock:
        token = _tokens.get(guard)
        if token is None:
            token = _tokens[guard] = uuid.uuid4().hex
        return token


def mark_inspected(message: BaseMessage, action: str, token: str) -> BaseMessage:
    """Record on a message (in ``response_metadata``, never sent to a provider) that the guard
    ``token`` names already ruled on it, so a graph guarded by that guard around a guarded
    agent does not inspect it twice. Another guard's graph reads it again, under its policy."""
    meta = dict(message.response_metadata or {})
    mark = {**dict(meta.get("kinguard") or {}), "inspected": True, "action": action}
    meta["kinguard"] = {**mark, "guard": token, "id": message.id}
    return message.model_copy(update={"response_metadata": meta})


def already_inspected(message: BaseMessage, token: str) -> bool:
    """The guard ``token`` names ruled on ``message``, or it is a notice kinguard wrote.

    Only the message the mark was put on: a node may copy one with other words under a new
    id (``model_copy`` keeps the metadata), which is new and read.
    """
    meta = message.response_metadata
    mark = meta.get("kinguard") if isinstance(meta, dict) else None
    if not isinstance(mark, dict):
        return False
    if mark.get("inspected"):
        # (A mark saved before marks named their message has no id: trusted as it was.)
        return mark.get("guard") == token and mark.get("id", message.id) == message.id
    # A notice has its own id; a stand-in for a held tool result, the held result's.
    original = mark.get("message_id")
    return message.id in (original, f"{_NOTICE_ID_PREFIX}{original}")


def identity_message(node: str, text: str) -> SystemMessage:
    return SystemMessage(content=text, id=f"{IDENTITY_ID_PREFIX}{node}")


class IdentityDict(dict[str, Any]):
    """The identity message in a channel of OpenAI-format dicts: to the node and the SDK it
    calls (which ``json.dumps`` the request) a plain ``{"role": "system", "content": ...}``,
    known by its type when the node hands its input back (a channel without a reducer)."""

    __slots__ = ()


class IdentityPair(tuple[str, str]):
    """The identity message in a channel of ``(role, text)`` pairs: ``("system", text)``,
    known by its type as :class:`IdentityDict` is."""

    __slots__ = ()


class IdentityText(str):
    """The identity message in a channel of plain strings: the text itself, a ``str`` the node
    can join into its prompt, known by its type as :class:`IdentityDict` is. (A copy of it, or
    the prompt it was joined into, is a plain string: that is known by the identity's words,
    which the node wrapper takes out of what the node writes.)"""

    __slots__ = ()


def source_id(message: BaseMessage) -> Any:
    """Id of the message that ``message`` stands for: its own, or a notice's original's."""
    message_id = message.id
    if isinstance(message_id, str) and message_id.startswith(_NOTICE_ID_PREFIX):
        return message_id[len(_NOTICE_ID_PREFIX) :]
    return message_id


def as_written(message: BaseMessage, raw: Any) -> Any:
    """``message`` (a delivered, rewritten or notice form of what a node wrote as ``raw``: an
    OpenAI-format dict, a ``(role, text)`` pair or a string) in ``raw``'s own form, for a
    channel that holds such values as they are (``operator.add``) and a node that sends them
    to an SDK as they are. A dict keeps its other keys but those the message no longer
    carries: tool calls it does not make, reasoning that a rewrite dropped."""
    if isinstance(raw, dict):
        written = {**raw, "content": message.content}
        if not getattr(message, "tool_calls", None):
            written.pop("tool_calls", None)
            written.pop("function_call", None)
        if REASONING_KWARG not in message.additional_kwargs:
            written.pop(REASONING_KWARG, None)
        return written
    if isinstance(raw, (tuple, list)):  # (a checkpoint gives a pair back as a list)
        return (raw[0], message_text(message))
    return message_text(message)


def is_identity_message(message: object) -> bool:
    """The identity message kinguard gave a node, the node's removal of it, or an app's system
    message (a LangChain message, dict or pair) with an identity block or nudge in it: the
    app's first system message as kinguard gave it to the node (:func:`with_identity`), or a
    copy.

    The node sees these in its state (only there): a node that trims its history
    (``RemoveMessage(id=m.id) for m in state["messages"][:-n]``) removes the identity message
    too, and ``add_messages`` fails on the removal of an id the state does not hold.
    """
    if isinstance(message, (IdentityDict, IdentityPair, IdentityText)):
        return True
    if isinstance(message, (SystemMessage, RemoveMessage)):
        if isinstance(message.id, str) and message.id.startswith(IDENTITY_ID_PREFIX):
            return True
        return isinstance(message, SystemMessage) and _has_marker(message.content)
    if type(message) is dict:
        return _is_system_role(message.get("role")) and _has_marker(message.get("content"))
    return (
        isinstance(message, (tuple, list))  # (a checkpoint gives a pair back as a list)
        and len(message) == 2
        and _is_system_role(message[0])
        and _has_marker(message[1])
    )


def is_system_message(message: Any) -> bool:
    """The app's instructions: a system message, or a dict or pair in a system role; or an
    enclosing guarded graph's identity in a channel of strings (which has no roles)."""
    if isinstance(message, (SystemMessage, IdentityText)):
        return True
    if isinstance(message, dict):
        return _is_system_role(message.get("role"))
    return isinstance(message, tuple) and len(message) == 2 and _is_system_role(message[0])


def _is_system_role(role: Any) -> bool:
    # A role is checked to be a string first: an unhashable one (garbage from an app's SDK
    # call) would make the set lookup raise.
    return isinstance(role, str) and role in _SYSTEM_ROLES


def _has_marker(content: Any) -> bool:
    """``content`` holds an identity block or a nudge (which goes in alone under ``none``)."""
    if isinstance(content, str):
        return IDENTITY_MARKER in content or NUDGE_MARKER in content
    return isinstance(content, list) and any(
        _has_marker(block if isinstance(block, str) else str(block.get("text")))
        for block in content
        if isinstance(block, (str, dict))
    )


def with_identity(message: Any, text: str) -> Any:
    """The app's system message ``message`` (a LangChain message, dict or pair) with kinguard's
    ``text`` after its own: what the node is given in its place, so a window that keeps "the
    system message" (``trim_messages(..., include_system=True)``) keeps the identity too. A
    LangChain message keeps its id: the node was given it, it is not new."""
    if isinstance(message, BaseMessage):
        return message.model_copy(update={"content": _appended(message.content, text)})
    if isinstance(message, dict):
        return {**message, "content": _appended(message.get("content"), text)}
    return (message[0], _appended(message[1], text))


def _appended(content: Any, text: str) -> Any:
    if isinstance(content, list):
        return [*content, {"type": "text", "text": text}]
    return f"{content or ''}\n\n{text}"


def without_identity(message: Any, text: str | None) -> Any:
    """``message`` (:func:`is_identity_message`) as the app had it before kinguard put the
    identity ``text`` in: ``None`` for kinguard's own identity message (or its removal, or a
    copy), the app's message without ``text`` for one it was added to (a copy, or a
    ``merge_message_runs`` of it, keeps what the node did to it). Unchanged: it does not carry
    ``text`` (an enclosing guarded graph's identity, which that graph takes out)."""
    if isinstance(message, (IdentityDict, IdentityPair, IdentityText)):
        return None
    if isinstance(message, (SystemMessage, RemoveMessage)):
        if isinstance(message.id, str) and message.id.startswith(IDENTITY_ID_PREFIX):
            return None
        if isinstance(message, RemoveMessage):
            return message
    if text is None:
        return message
    if isinstance(message, BaseMessage):
        content = _stripped(message.content, text)
        if content is None or content is message.content:
            return None if content is None else message
        return message.model_copy(update={"content": content})
    if isinstance(message, dict):
        content = _stripped(message.get("content"), text)
        if content is None or content is message.get("content"):
            return None if content is None else message
        return {**message, "content": content}
    content = _stripped(message[1], text)
    if content is None or content is message[1]:
        return None if content is None else message
    return (message[0], content)


def without_identity_text(value: str, text: str) -> str:
    """``value`` (a string built from a node's input of strings, e.g. the prompt it joined)
    without the identity ``text`` and the line break it was joined to the rest with."""
    for joined in (f"{text}\n", f"\n{text}", text):
        if joined in value:
            return value.replace(joined, "")
    return value


def cut_identity(message: Any) -> Any:
    """``message`` (:func:`is_identity_message`: a LangChain message, dict or pair) without what
    kinguard added to it, where what it added is not known (a stream's view of a node's input,
    an enclosing guarded graph's identity in a node's input): ``None`` for kinguard's own
    message, the app's message up to the block or nudge kinguard put after its text."""
    if isinstance(message, (IdentityDict, IdentityPair, IdentityText, RemoveMessage)):
        return None
    if isinstance(message, BaseMessage):
        if isinstance(message.id, str) and message.id.startswith(IDENTITY_ID_PREFIX):
            return None
        content = _cut(message.content)
        return None if content is None else message.model_copy(update={"content": content})
    if isinstance(message, dict):
        content = _cut(message.get("content"))
        return None if content is None else {**message, "content": content}
    content = _cut(message[1])
    return None if content is None else (message[0], content)


def _cut(content: Any) -> Any:
    """``content`` up to kinguard's block or nudge (``None``: nothing of the app's is left)."""
    if isinstance(content, list):
        return [block for block in content if not _has_marker([block])] or None
    if not isinstance(content, str):
        return None
    cuts = [content.find(f"\n\n{marker}") for marker in (IDENTITY_MARKER, NUDGE_MARKER)]
    cut = min((at for at in cuts if at >= 0), default=-1)
    return None if cut < 0 else content[:cut]


def _stripped(content: Any, text: str) -> Any:
    """``content`` without ``text`` (``None``: it was ``text`` alone; itself: no ``text`` in it)."""
    if isinstance(content, str):
        if content == text:
            return None
        # Added after a paragraph break; ``merge_message_runs`` adds a line after it.
        stripped = content.replace(f"\n\n{text}", "")
        if stripped == content:
            stripped = content.replace(text, "")
        return content if stripped == content else stripped
    if isinstance(content, list):
        kept = [
            block
            for block in content
            if block != text and not (isinstance(block, dict) and block.get("text") == text)
        ]
        if len(kept) == len(content):
            return content
        return kept or None
    return content
