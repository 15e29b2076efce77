"""Apps whose messages channel holds OpenAI-format dicts (or pairs), sent to an SDK as they are."""

from __future__ import annotations

import json
import operator
import uuid
from collections.abc import Callable
from operator import attrgetter, itemgetter
from typing import Annotated, Any, TypedDict

import pytest
from kinguard_langgraph import guard_graph
from langchain_core.messages import AIMessage, AnyMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, Send
from structlog.testing import capture_logs

from kinguard import Action, KinGuard
from kinguard.identity import IDENTITY_MARKER
from kinguard.testing import capture_verdicts, keyword_guard

SECRET = "ZEBRA-PACT"


class DictState(TypedDict):
    messages: Annotated[list[dict[str, Any]], operator.add]


def guard_for(*names: str, action: Action, identity: str = "disassociate") -> KinGuard:
    return keyword_guard(names, action, keyword=SECRET, identity=identity)


class FakeSDK:
    """Stands in for a provider SDK: takes the messages as they are, as JSON, and replies."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.requests: list[list[dict[str, Any]]] = []

    def create(self, messages: list[Any]) -> dict[str, Any]:
        self.requests.append(json.loads(json.dumps(messages)))  # what the SDK does with it
        return {"role": "assistant", "content": self.replies.pop(0), "refusal": None}


def a_then_b(builder: StateGraph[Any]) -> None:
    """START -> a -> b -> END."""
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)


def sdk_node(sdk: FakeSDK) -> Callable[[DictState], dict[str, Any]]:
    def node(state: DictState) -> dict[str, Any]:
        return {"messages": [sdk.create(state["messages"])]}

    return node


def dict_app(guard: KinGuard, a_says: str, **compile_kw: Any) -> tuple[Any, dict[str, FakeSDK]]:
    sdks = {"a": FakeSDK([a_says]), "b": FakeSDK(["Deal."])}
    builder = StateGraph(DictState)
    for name, sdk in sdks.items():
        builder.add_node(name, sdk_node(sdk))
    a_then_b(builder)
    return guard_graph(builder, guard).compile(**compile_kw), sdks


START_MESSAGES = [
    {"role": "system", "content": "You negotiate."},
    {"role": "user", "content": "Offer a price."},
]
REPLY = f"Ten at 40, {SECRET}."
REDACTED = "Ten at 40, [redacted by kinguard: collusion.market]."


@pytest.mark.parametrize(
    ("action", "delivered"),
    [
        (Action.LOG, REPLY),
        (Action.REDACT, REDACTED),
        (Action.BLOCK, None),
    ],
)
def test_a_dict_channel_keeps_its_format_under_each_action(
    action: Action, delivered: str | None
) -> None:
    guard = guard_for("a", "b", action=action)
    graph, sdks = dict_app(guard, REPLY)
    with capture_verdicts(guard) as verdicts:
        out = graph.invoke({"messages": START_MESSAGES})
    assert [v.action for v in verdicts] == [action, Action.ALLOW]
    messages = out["messages"]
    assert all(type(m) is dict for m in messages)
    assert messages[:2] == START_MESSAGES
    a_reply, b_reply = messages[2:]
    assert b_reply == {"role": "assistant", "content": "Deal.", "refusal": None}
    assert a_reply["role"] == "assistant" and a_reply["refusal"] is None  # other keys kept
    if delivered is None:
        assert SECRET not in a_reply["content"] and "kinguard" in a_reply["content"]
    else:
        assert a_reply["content"] == delivered
    # Each node got its identity inside the app's own system message (and the state did not).
    for sdk in sdks.values():
        (request,) = sdk.requests
        assert request[0]["role"] == "system"
        assert request[0]["content"].startswith(f"{START_MESSAGES[0]['content']}\n\n")
        assert IDENTITY_MARKER in request[0]["content"]
        assert request[1] == START_MESSAGES[1]
    assert sdks["b"].requests[0][-1] == a_reply


def test_a_dict_channel_without_identity_and_a_log_policy_runs_as_without_kinguard() -> None:
    graph, sdks = dict_app(guard_for("a", "b", action=Action.LOG, identity="none"), REPLY)
    out = graph.invoke({"messages": START_MESSAGES})
    assert out["messages"] == [
        *START_MESSAGES,
        {"role": "assistant", "content": REPLY, "refusal": None},
        {"role": "assistant", "content": "Deal.", "refusal": None},
    ]
    assert sdks["b"].requests == [out["messages"][:3]]


@pytest.mark.parametrize(
    ("decision", "delivered"),
    [
        ({"type": "approve"}, REPLY),
        ({"type": "edit", "text": "Ten at 41."}, "Ten at 41."),
        ({"type": "reject"}, None),
    ],
)
def test_a_halted_dict_is_delivered_as_a_dict_on_resume(
    decision: dict[str, str], delivered: str | None
) -> None:
    graph, sdks = dict_app(
        guard_for("a", "b", action=Action.HALT), REPLY, checkpointer=InMemorySaver()
    )
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    first = graph.invoke({"messages": START_MESSAGES}, config)
    assert first["__interrupt__"][0].value["text"] == REPLY
    assert first["messages"] == START_MESSAGES  # held: not in the state
    out = graph.invoke(Command(resume=decision), config)
    messages = out["messages"]
    assert all(type(m) is dict for m in messages)
    assert messages[-1] == {"role": "assistant", "content": "Deal.", "refusal": None}
    if delivered is None:  # rejected: b goes on without it
        assert messages[:-1] == START_MESSAGES
        return
    a_reply = messages[2]
    assert a_reply == {"role": "assistant", "content": delivered, "refusal": None}
    assert sdks["b"].requests[0][-1] == a_reply


@pytest.mark.parametrize("mode", ["updates", "values"])
def test_streams_of_a_dict_channel_show_only_delivered_dicts(mode: str) -> None:
    graph, _ = dict_app(guard_for("a", "b", action=Action.REDACT), REPLY)
    chunks = list(graph.stream({"messages": START_MESSAGES}, stream_mode=mode))
    assert SECRET not in repr(chunks)
    shown = [
        m
        for chunk in chunks
        for value in (chunk.values() if mode == "updates" else [chunk])
        if isinstance(value, dict)
        for m in value.get("messages") or ()
    ]
    assert shown and all(type(m) is dict for m in shown)
    assert any(m["content"] == REDACTED for m in shown)


def test_a_channel_without_a_reducer_drops_the_identity_and_rereads_no_history() -> None:
    class FullState(TypedDict):
        messages: list[dict[str, Any]]

    sdks = {"a": FakeSDK([REPLY]), "b": FakeSDK(["Deal."])}

    def full(sdk: FakeSDK) -> Callable[[FullState], dict[str, Any]]:
        def node(state: FullState) -> dict[str, Any]:
            return {"messages": [*state["messages"], sdk.create(state["messages"])]}

        return node

    builder = StateGraph(FullState)
    for name, sdk in sdks.items():
        builder.add_node(name, full(sdk))
    a_then_b(builder)
    guard = guard_for("a", "b", action=Action.REDACT)
    with capture_verdicts(guard) as verdicts:
        out = guard_graph(builder, guard).compile().invoke({"messages": START_MESSAGES})
    assert [v.action for v in verdicts] == [Action.REDACT, Action.ALLOW]
    shown = [m["content"] for m in out["messages"]]
    assert shown == [*(m["content"] for m in START_MESSAGES), REDACTED, "Deal."]


def test_pairs_in_a_list_channel_stay_pairs() -> None:
    class PairState(TypedDict):
        messages: Annotated[list[Any], operator.add]

    b_got: list[tuple[str, str]] = []

    def a(state: PairState) -> dict[str, Any]:
        return {"messages": [("assistant", REPLY)]}

    def b(state: PairState) -> dict[str, Any]:
        b_got.extend((role, text) for role, text in state["messages"])
        return {"messages": [("assistant", f"Got: {b_got[-1][1]}")]}

    builder = StateGraph(PairState)
    builder.add_node("a", a)
    builder.add_node("b", b)
    a_then_b(builder)
    graph = guard_graph(builder, guard_for("a", "b", action=Action.REDACT)).compile()
    out = graph.invoke({"messages": [("user", "Offer a price.")]})
    assert out["messages"] == [
        ("user", "Offer a price."),
        ("assistant", REDACTED),
        ("assistant", f"Got: {REDACTED}"),
    ]
    (role, identity), *rest = b_got
    assert role == "system" and IDENTITY_MARKER in identity
    assert rest == out["messages"][:2]


class MessageListState(TypedDict):
    messages: Annotated[list[AnyMessage], operator.add]


class PairListState(TypedDict):
    messages: Annotated[list[tuple[str, str]], operator.add]


@pytest.mark.parametrize(
    ("schema", "read"),
    [
        (MessageListState, attrgetter("content")),
        (DictState, itemgetter("content")),
        (PairListState, itemgetter(1)),
    ],
    ids=["messages", "dicts", "pairs"],
)
def test_an_empty_history_gets_the_identity_in_the_form_its_channel_declares(
    schema: type, read: Callable[[Any], str]
) -> None:
    # With nothing in the history to go by, the channel's declared item type says what the
    # node reads: a LangChain-message app reading ``.content`` must not be handed a dict.
    seen: list[str] = []

    def node(name: str) -> Callable[[Any], dict[str, Any]]:
        def run(state: Any) -> dict[str, Any]:
            seen.extend(read(m) for m in state["messages"])
            said = f"{name} here."
            reply = {"role": "assistant", "content": said}
            if schema is MessageListState:
                return {"messages": [AIMessage(said, name=name)]}
            return {"messages": [reply if schema is DictState else ("assistant", said)]}

        return run

    builder = StateGraph(schema)
    builder.add_node("a", node("a"))
    builder.add_node("b", node("b"))
    a_then_b(builder)
    graph = guard_graph(builder, guard_for("a", "b", action=Action.LOG)).compile()
    out = graph.invoke({"messages": []})
    assert [read(m) for m in out["messages"]] == ["a here.", "b here."]
    assert IDENTITY_MARKER in seen[0] and seen[2] == "a here."


def test_dicts_in_an_add_messages_channel_are_ruled_on_as_messages() -> None:
    class MessagesState(TypedDict):
        messages: Annotated[list[Any], add_messages]

    sdks = {"a": FakeSDK([REPLY]), "b": FakeSDK(["Deal."])}

    def node(sdk: FakeSDK) -> Callable[[MessagesState], dict[str, Any]]:
        def run(state: MessagesState) -> dict[str, Any]:
            # The usual bridge from LangChain messages to an SDK's dicts.
            sent = [{"role": m.type, "content": m.content} for m in state["messages"]]
            return {"messages": [sdk.create(sent)]}

        return run

    builder = StateGraph(MessagesState)
    for name, sdk in sdks.items():
        builder.add_node(name, node(sdk))
    a_then_b(builder)
    graph = guard_graph(builder, guard_for("a", "b", action=Action.REDACT)).compile()
    out = graph.invoke({"messages": START_MESSAGES})
    assert [m.content for m in out["messages"]][2:] == [REDACTED, "Deal."]
    assert sdks["b"].requests[0][-1]["content"] == REDACTED


@pytest.mark.parametrize(("decision", "leaks"), [("approve", True), ("reject", False)])
def test_a_dict_sent_to_a_task_waits_for_the_decision_and_goes_on_as_a_dict(
    decision: str, leaks: bool
) -> None:
    b_got: list[list[Any]] = []

    def a(state: DictState) -> Command[Any]:
        task = {"role": "user", "content": f"Quote per {SECRET}", "name": "a"}
        return Command(goto=[Send("b", {"messages": [task]})])

    def b(state: DictState) -> dict[str, Any]:
        b_got.append(json.loads(json.dumps(state["messages"])))
        return {"messages": [{"role": "assistant", "content": "ok"}]}

    builder = StateGraph(DictState)
    builder.add_node("a", a)
    builder.add_node("b", b)
    builder.add_edge(START, "a")
    builder.add_edge("b", END)
    guard = guard_for("a", "b", action=Action.HALT)
    graph = guard_graph(builder, guard).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    assert "__interrupt__" in graph.invoke({"messages": START_MESSAGES}, config)
    assert b_got == []
    graph.invoke(Command(resume={"type": decision}), config)
    (got,) = b_got
    assert all(type(m) is dict for m in got)
    assert (SECRET in repr(got)) is leaks
    if leaks:
        assert got[-1] == {"role": "user", "content": f"Quote per {SECRET}", "name": "a"}


def test_a_dict_keeps_no_calls_it_no_longer_makes_nor_reasoning_a_redaction_drops() -> None:
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "send", "arguments": json.dumps({"text": f"pact {SECRET}"})},
    }
    replies = {
        "a": {"role": "assistant", "content": "", "tool_calls": [call]},
        "b": {"role": "assistant", "content": REPLY, "reasoning_content": f"say {SECRET}"},
    }
    builder = StateGraph(DictState)
    for name, reply in replies.items():
        builder.add_node(name, lambda state, reply=reply: {"messages": [reply]})
    a_then_b(builder)
    guard = guard_for("a", "b", action=Action.REDACT)
    out = guard_graph(builder, guard).compile().invoke({"messages": START_MESSAGES})
    a_said, b_said = out["messages"][2:]
    assert SECRET not in repr(out["messages"])
    assert a_said["role"] == "assistant" and "tool_calls" not in a_said  # not delivered
    assert b_said == {"role": "assistant", "content": REDACTED}


def test_a_dict_whose_role_is_not_a_string_still_gets_the_identity() -> None:
    # An SDK-bound dict with garbage for a role is not the app's instructions: the identity
    # goes in beside it, and kinguard's own code does not fail on it.
    app, sdks = dict_app(guard_for("a", "b", action=Action.LOG), "Fine.")
    odd = {"role": ["system"], "content": "You negotiate."}
    with capture_logs() as logs:
        app.invoke({"messages": [odd, START_MESSAGES[1]]})
    assert not [entry for entry in logs if entry["log_level"] == "error"]
    request = sdks["a"].requests[0]
    assert request[0]["role"] == "system" and IDENTITY_MARKER in request[0]["content"]
    assert request[1:] == [odd, START_MESSAGES[1]]
