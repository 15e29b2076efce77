"""Streaming cannot bypass the guard: every mode, sync and async, subgraphs, v1 and v2 parts."""

from __future__ import annotations

import asyncio
import uuid
import warnings
from typing import Any

import pytest
from kinguard_langgraph import GUARD_KEY, KinGuardMiddleware, guard_graph
from kinguard_langgraph._scripted import (
    ChatState,
    ScriptedChatModel,
    agent_node,
    chain_graph,
    delivered,
    script_graph,
    start,
)
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, SystemMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from kinguard import Action, AgentProfile, KinGuard, Policy, Rule
from kinguard.testing import KeywordDetector

SECRET = "ZEBRA-PACT"
AGENTS = (
    AgentProfile(name="buyer", model="openai:gpt-4o", principal="ACME"),
    AgentProfile(name="seller", model="openai:gpt-4o", principal="Globex"),
)
BUYER = [
    "Opening offer: ten units at 40.",
    f"Let us agree on {SECRET} and hold the price.",
    "Fine.",
]
SELLER = ["Counter: ten units at 48.", "Noted, 44 then.", "Deal."]
ORDER = ["buyer", "seller", "buyer", "seller", "buyer", "seller"]


def make_guard(action: Action) -> KinGuard:
    return KinGuard(
        AGENTS,
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", min_score=0.5, action=action),)),
    )


def make_graph(action: Action, *, use_async: bool = False, chunk_size: int = 4) -> Any:
    models = {
        "buyer": ScriptedChatModel(replies=BUYER, chunk_size=chunk_size),
        "seller": ScriptedChatModel(replies=SELLER, chunk_size=chunk_size),
    }
    builder = script_graph(ORDER, models, {}, use_async=use_async)
    return guard_graph(builder, make_guard(action)).compile(checkpointer=InMemorySaver())


def config() -> dict[str, Any]:
    return {"configurable": {"thread_id": uuid.uuid4().hex}}


def collect(graph: Any, use_async: bool, *args: Any, **kwargs: Any) -> list[Any]:
    if not use_async:
        return list(graph.stream(*args, **kwargs))

    async def run() -> list[Any]:
        return [part async for part in graph.astream(*args, **kwargs)]

    return asyncio.run(run())


def chunks_by_message(parts: list[Any]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for message, meta in parts:
        assert isinstance(message, BaseMessage)
        assert "langgraph_node" in meta
        texts[str(message.id)] = texts.get(str(message.id), "") + str(message.content)
    return texts


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("action", [Action.LOG, Action.REDACT, Action.BLOCK])
def test_token_stream_carries_only_delivered_text(action: Action, use_async: bool) -> None:
    graph = make_graph(action, use_async=use_async)
    cfg = config()
    parts = collect(graph, use_async, start(), cfg, stream_mode="messages")
    assert SECRET not in repr(parts) or action is Action.LOG
    streamed = chunks_by_message(parts)
    final = graph.get_state(cfg).values["messages"]
    for message in final[1:]:
        assert (
            streamed[str(message.id)] == message.content
        )  # what was streamed is what was delivered
    chunked = [m for m, _ in parts if isinstance(m, AIMessageChunk)]
    assert len(chunked) > len(final)  # still a token stream, not one message per turn
    if action is Action.REDACT:
        assert "[redacted by kinguard: collusion.market]" in "".join(streamed.values())
    if action is Action.BLOCK:
        assert any(str(m.content).startswith("[kinguard blocked") for m, _ in parts)


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 7])
def test_redaction_catches_evidence_split_across_chunks(chunk_size: int) -> None:
    graph = make_graph(Action.REDACT, chunk_size=chunk_size)
    parts = list(graph.stream(start(), config(), stream_mode="messages"))
    pieces = [str(m.content) for m, _ in parts]
    assert not any(SECRET in piece for piece in pieces)
    assert SECRET not in "".join(pieces)
    assert "ZEBRA" not in "".join(pieces)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    "modes",
    [
        "values",
        "updates",
        ["values", "updates"],
        ["messages", "updates", "values", "custom"],
        ["messages", "tasks", "checkpoints", "debug"],
    ],
    ids=str,
)
def test_every_mode_is_clean(modes: Any, use_async: bool) -> None:
    graph = make_graph(Action.REDACT, use_async=use_async)
    parts = collect(graph, use_async, start(), config(), stream_mode=modes)
    assert parts
    text = repr(parts)
    assert SECRET not in text
    assert f"'{GUARD_KEY}'" not in text  # kinguard's private channel never leaks
    if isinstance(modes, list):
        assert {mode for mode, _ in parts} <= set(modes)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_v2_stream_parts(version: str) -> None:
    graph = make_graph(Action.REDACT)
    parts = list(
        graph.stream(start(), config(), stream_mode=["messages", "updates"], version=version)
    )
    assert SECRET not in repr(parts)
    if version == "v2":
        assert all(isinstance(p, dict) and p["type"] in {"messages", "updates"} for p in parts)


def test_invoke_output_and_state_hide_the_private_channel() -> None:
    graph = make_graph(Action.REDACT)
    cfg = config()
    out = graph.invoke(start(), cfg)
    assert GUARD_KEY not in out
    assert GUARD_KEY not in graph.get_state(cfg).values
    assert SECRET not in repr(out)


def test_custom_events_wait_for_the_verdict_and_go_when_modified() -> None:
    model = ScriptedChatModel(replies=[f"I propose {SECRET}.", "Plain words."], chunk_size=5)

    def talker(state: ChatState) -> dict[str, Any]:
        writer = get_stream_writer()
        pieces = []
        for chunk in model.stream(state["messages"]):
            pieces.append(str(chunk.content))
            writer({"token": chunk.content})
        return {"messages": [("ai", "".join(pieces))], "turn": state["turn"] + 1}

    def helper(state: ChatState) -> dict[str, Any]:
        get_stream_writer()({"status": "helper ran"})
        return {"turn": state["turn"] + 1}

    builder = StateGraph(ChatState)
    builder.add_node("talker", talker)
    builder.add_node("helper", helper)
    builder.add_edge(START, "talker")
    builder.add_edge("talker", "helper")
    builder.add_conditional_edges("helper", lambda s: "talker" if s["turn"] < 4 else END)
    guard = KinGuard(
        [AgentProfile(name="talker"), AgentProfile(name="helper")],
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action.REDACT),)),
    )
    graph = guard_graph(builder, guard).compile()
    parts = list(graph.stream(start(), stream_mode="custom"))
    assert SECRET not in repr(parts)
    assert "ZEBRA" not in repr(parts)
    assert {"status": "helper ran"} in parts
    assert {"token": "Plain"} in parts  # the clean turn streams its tokens as written


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_create_agent_subgraph_streams_are_gated(use_async: bool) -> None:
    buyer_model = ScriptedChatModel(replies=BUYER, chunk_size=3)
    seller_model = ScriptedChatModel(
        replies=[f"Sure, {SECRET} it is.", "Ok.", "Bye."], chunk_size=3
    )
    seller = create_agent(seller_model, tools=[], system_prompt="You sell.", name="seller")

    def buyer(state: ChatState) -> dict[str, Any]:
        reply = buyer_model.invoke([SystemMessage("You buy."), *state["messages"]])
        return {"messages": [reply.model_copy(update={"name": "buyer"})]}

    builder = chain_graph(("buyer", buyer), ("seller", seller))
    graph = guard_graph(builder, make_guard(Action.REDACT)).compile(checkpointer=InMemorySaver())
    cfg = config()
    parts = collect(
        graph,
        use_async,
        start(),
        cfg,
        stream_mode=["messages", "updates", "values"],
        subgraphs=True,
    )
    text = repr(parts)
    assert SECRET not in text
    assert "[kinguard identity]" not in text  # the injected prompt stays internal
    inner = [p for p in parts if p[0]]
    assert inner, "subgraph events are still streamed"
    assert any(mode == "messages" for _, mode, _ in inner)
    final = graph.get_state(cfg).values["messages"]
    assert "[redacted by kinguard: collusion.market]" in final[-1].content
    assert delivered(final)[-1][0] == "seller"


def seller_team(action: Action) -> Any:
    """A guarded graph whose one agent is a ``create_agent`` agent that says the secret."""
    model = ScriptedChatModel(replies=[f"Sure, {SECRET} it is."], chunk_size=3)
    seller = create_agent(model, tools=[], system_prompt="You sell.")
    return guard_graph(chain_graph(("seller", seller)), make_guard(action)).compile()


@pytest.mark.parametrize("action", [Action.REDACT, Action.BLOCK])
def test_astream_events_of_a_create_agent_subgraph_are_gated(action: Action) -> None:
    # The agent's model node returns its reply in a Command, shown by its chain events.
    graph = seller_team(action)

    async def run() -> list[Any]:
        return [event async for event in graph.astream_events(start(), version="v2")]

    events = asyncio.run(run())
    assert any(e["event"] == "on_chain_end" and e["name"] == "model" for e in events)
    assert SECRET not in repr(events)


@pytest.mark.parametrize(
    ("inner", "outer"), [(Action.REDACT, "same"), (Action.BLOCK, "same"), (Action.BLOCK, "other")]
)
def test_a_guarded_graph_inside_a_guarded_graph_gates_its_agents_subgraph_streams(
    inner: Action, outer: str
) -> None:
    # What the agent subgraph inside the inner graph streams is ruled on by the inner guard.
    team = seller_team(inner)
    graph = parent_of(team, team.guard if outer == "same" else make_guard(Action.LOG))
    modes = ["updates", "values", "tasks", "debug"]
    parts = list(graph.stream(start(), stream_mode=modes, subgraphs=True))
    assert any(len(ns) == 2 for ns, _, _ in parts), "the agent's own streams are still shown"
    assert SECRET not in repr(parts)


def holds_private(payload: Any) -> bool:
    """kinguard's channel anywhere in a payload, a Command's update included."""
    if isinstance(payload, Command):
        return holds_private(payload.update)
    if isinstance(payload, dict):
        return GUARD_KEY in payload or any(holds_private(v) for v in payload.values())
    if isinstance(payload, (list, tuple)):
        return (len(payload) == 2 and payload[0] == GUARD_KEY) or any(map(holds_private, payload))
    return False


@pytest.mark.parametrize("action", [Action.REDACT, Action.HALT])
def test_astream_events_of_a_handoff_hide_the_private_channel(action: Action) -> None:
    # The node's own on_chain_end event shows the Command it returned, as kinguard rewrote it.
    def buyer(state: ChatState) -> Command[Any]:
        return Command(goto="seller", update={"messages": [AIMessage(BUYER[1], name="buyer")]})

    def seller(state: ChatState) -> dict[str, Any]:
        return {"messages": [AIMessage("Deal.", name="seller")]}

    builder = StateGraph(ChatState)
    builder.add_node("buyer", buyer, destinations=("seller",))
    builder.add_node("seller", seller)
    builder.add_edge(START, "buyer")
    builder.add_edge("seller", END)
    graph = guard_graph(builder, make_guard(action)).compile(checkpointer=InMemorySaver())

    async def run() -> list[Any]:
        return [event async for event in graph.astream_events(start(), config(), version="v2")]

    events = asyncio.run(run())
    assert any(e["event"] == "on_chain_end" and e["name"] == "buyer" for e in events)
    assert not any(holds_private(e["data"]) for e in events)
    # The held message is shown only to the reviewer, in the interrupt.
    shown = [e for e in events if "__interrupt__" not in repr(e["data"])]
    assert SECRET not in repr(shown)


def test_halted_message_streams_only_after_approval() -> None:
    graph = make_graph(Action.HALT)
    cfg = config()
    first = list(graph.stream(start(), cfg, stream_mode=["messages", "updates"]))
    assert SECRET not in repr([p for p in first if p[0] == "messages"])
    interrupts = [p for p in first if p[0] == "updates" and "__interrupt__" in p[1]]
    assert interrupts
    payload = interrupts[0][1]["__interrupt__"][0].value
    assert payload["text"] == BUYER[1]
    second = list(graph.stream(Command(resume={"type": "approve"}), cfg, stream_mode="messages"))
    assert SECRET in "".join(str(m.content) for m, _ in second)


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("action", [Action.REDACT, Action.BLOCK])
def test_astream_events_token_events_are_gated(version: str, action: Action) -> None:
    graph = make_graph(action)

    async def run() -> list[Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # v1 is deprecated upstream, still supported
            return [e async for e in graph.astream_events(start(), config(), version=version)]

    events = asyncio.run(run())
    text = repr(events)
    assert SECRET not in text
    assert "'rev':" not in text  # kinguard's private channel
    assert "[kinguard identity]" not in text
    tokens = [e["data"]["chunk"].content for e in events if e["event"] == "on_chat_model_stream"]
    assert len(tokens) > 6  # still token events
    if action is Action.REDACT:
        assert "[redacted by kinguard: collusion.market]" in "".join(tokens)


def test_stream_events_v3_smoke() -> None:
    graph = make_graph(Action.REDACT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the v3 protocol is marked experimental
        run = graph.stream_events(start(), config(), version="v3")
        parts = list(run)
    assert parts
    assert SECRET not in repr(parts)
    assert SECRET not in repr(run.output)


def unguarded_parent(action: Action, use_async: bool) -> Any:
    """A graph kinguard does not guard, whose one node is the guarded graph."""
    builder = StateGraph(ChatState)
    builder.add_node("team", make_graph(action, use_async=use_async))
    builder.add_edge(START, "team")
    builder.add_edge("team", END)
    return builder.compile()


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("action", [Action.LOG, Action.REDACT, Action.BLOCK])
def test_guarded_subgraph_in_an_unguarded_parent_streams_only_delivered_tokens(
    use_async: bool, action: Action
) -> None:
    parts = collect(
        unguarded_parent(action, use_async),
        use_async,
        start(),
        stream_mode=["messages", "values"],
        subgraphs=True,
    )
    tokens = [payload for ns, mode, payload in parts if mode == "messages" and ns]
    assert len(tokens) > len(ORDER), "the agents' tokens are still streamed"
    final = [payload for ns, mode, payload in parts if mode == "values" and not ns][-1]
    said = {m.id: m.content for m in final["messages"][1:]}
    streamed = chunks_by_message(tokens)
    # Every agent message streamed once (no full copy after its tokens), as delivered.
    assert streamed == said
    assert (SECRET in "".join(streamed.values())) == (action is Action.LOG)
    if action is Action.REDACT:
        assert "[redacted by kinguard: collusion.market]" in "".join(streamed.values())
    if action is Action.BLOCK:
        assert any(t.startswith("[kinguard blocked") for t in streamed.values())


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("action", [Action.LOG, Action.REDACT, Action.BLOCK])
def test_guarded_subgraph_in_an_unguarded_parent_gates_astream_events(
    use_async: bool, action: Action
) -> None:
    parent = unguarded_parent(action, use_async)

    async def run() -> list[Any]:
        return [event async for event in parent.astream_events(start(), version="v2")]

    events = asyncio.run(run())
    tokens: dict[str, str] = {}
    for event in events:
        if event["event"] == "on_chat_model_stream":
            run_id = event["run_id"]
            tokens[run_id] = tokens.get(run_id, "") + str(event["data"]["chunk"].content)
    final = next(
        e["data"]["output"]
        for e in reversed(events)
        if e["event"] == "on_chain_end" and e["name"] == "LangGraph"
    )
    said = [str(m.content) for m in final["messages"][1:]]
    spoken = [text for text in said if not text.startswith("[kinguard")]
    assert list(tokens.values()) == spoken  # each streamed model run: a delivered message
    assert (SECRET in repr(events)) == (action is Action.LOG)
    if action is Action.REDACT:
        assert any("[redacted by kinguard: collusion.market]" in t for t in tokens.values())


def test_a_guarded_subgraph_keeps_its_halt_out_of_an_unguarded_parents_task_streams() -> None:
    builder = StateGraph(ChatState)
    builder.add_node("team", make_graph(Action.HALT))
    builder.add_edge(START, "team")
    builder.add_edge("team", END)
    parent = builder.compile(checkpointer=InMemorySaver())
    parts = list(parent.stream(start(), config(), stream_mode=["tasks", "debug"], subgraphs=True))
    text = repr(parts)
    assert "'buyer.kinguard_halt'" in text  # the halt node's task is streamed, its input is clean
    # Neither a withheld message's record nor the guard's state (it keeps recent texts).
    assert "'entries'" not in text and "last_text_by_agent" not in text


def parent_of(team: Any, guard: KinGuard | None) -> Any:
    """A graph whose one node is ``team``, guarded by ``guard`` (None: not guarded)."""
    builder = StateGraph(ChatState)
    builder.add_node("team", team)
    builder.add_edge(START, "team")
    builder.add_edge("team", END)
    return guard_graph(builder, guard).compile() if guard is not None else builder.compile()


@pytest.mark.parametrize("parent", ["unguarded", "guarded"])
@pytest.mark.parametrize("team", ["guarded graph", "create_agent"])
def test_a_parents_message_stream_shows_what_a_guarded_node_delivered(
    team: str, parent: str
) -> None:
    # ``stream_mode="messages"`` without ``subgraphs``: the parent's stream shows a node's
    # messages, once each, when the node ends (as it does without kinguard).
    if team == "guarded graph":
        inner = make_graph(Action.REDACT)
        guard = inner.guard
    else:
        guard = make_guard(Action.REDACT)
        inner = create_agent(
            ScriptedChatModel(replies=[BUYER[1]]),
            tools=[],
            middleware=[KinGuardMiddleware(guard, agent_name="buyer")],
        )
    graph = parent_of(inner, guard if parent == "guarded" else None)
    parts = list(graph.stream(start(), stream_mode=["messages", "values"]))
    final = [payload for mode, payload in parts if mode == "values"][-1]
    said = {m.id: m.content for m in final["messages"][1:]}
    assert chunks_by_message([payload for mode, payload in parts if mode == "messages"]) == said
    assert "[redacted by kinguard: collusion.market]" in "".join(said.values())


@pytest.mark.parametrize("stream", ["messages", "astream_events"])
@pytest.mark.parametrize(
    ("inner", "outer"), [(Action.REDACT, "same"), (Action.BLOCK, "same"), (Action.BLOCK, "other")]
)
def test_a_guarded_graph_inside_a_guarded_graph_streams_only_delivered_tokens(
    inner: Action, outer: str, stream: str
) -> None:
    # The enclosing graph's gate knows its own node's verdicts only: with the same guard (whose
    # marks it trusts), or with only a notice in the node's update, it had nothing to hold to.
    model = ScriptedChatModel(replies=[BUYER[1]], chunk_size=3)
    team = guard_graph(
        chain_graph(("buyer", agent_node("buyer", model, "You buy."))), make_guard(inner)
    ).compile()
    graph = parent_of(team, team.guard if outer == "same" else make_guard(Action.LOG))
    if stream == "messages":
        parts = list(graph.stream(start(), stream_mode="messages", subgraphs=True))
        tokens = "".join(str(message.content) for _, (message, _) in parts)
    else:

        async def run() -> list[Any]:
            return [event async for event in graph.astream_events(start(), version="v2")]

        events = asyncio.run(run())
        assert SECRET not in repr(events)
        tokens = "".join(
            str(e["data"]["chunk"].content) for e in events if e["event"] == "on_chat_model_stream"
        )
    assert SECRET not in tokens
    if inner is Action.REDACT:
        assert "[redacted by kinguard: collusion.market]" in tokens


@pytest.mark.parametrize("outer", ["same", "other"])
@pytest.mark.parametrize("action", [Action.LOG, Action.REDACT])
def test_custom_events_of_a_guarded_graph_inside_a_guarded_graph(
    action: Action, outer: str
) -> None:
    def talker(state: ChatState) -> dict[str, Any]:
        get_stream_writer()({"draft": BUYER[1]})
        return {"messages": [AIMessage(BUYER[1], name="buyer")], "turn": 1}

    team = guard_graph(chain_graph(("buyer", talker)), make_guard(action)).compile()
    graph = parent_of(team, team.guard if outer == "same" else make_guard(Action.LOG))
    parts = list(graph.stream(start(), stream_mode="custom", subgraphs=True))
    # The app's own payloads only (not kinguard's wrappers), and none whose task was redacted.
    assert [payload for _, payload in parts] == (
        [{"draft": BUYER[1]}] if action is Action.LOG else []
    )


class ToolCallingModel(FakeMessagesListChatModel):
    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def mailing_buyer(action: Action) -> tuple[Any, list[str]]:
    """A guarded graph whose buyer, a ``create_agent`` agent, calls a tool with the secret
    and then answers; and the tool's mailbox."""
    mailbox: list[str] = []

    @tool
    def send_message(to: str, text: str) -> str:
        """Send a message to another agent."""
        mailbox.append(text)
        return f"sent: {text}"

    call = {"name": "send_message", "args": {"to": "seller", "text": f"fix {SECRET}"}, "id": "c1"}
    model = ToolCallingModel(
        responses=[AIMessage("Sending.", tool_calls=[call]), AIMessage("Sent it.")]
    )
    builder = StateGraph(ChatState)
    builder.add_node("buyer", create_agent(model, [send_message]))
    builder.add_edge(START, "buyer")
    builder.add_edge("buyer", END)
    graph = guard_graph(builder, make_guard(action), agents=["buyer"])
    return graph.compile(checkpointer=InMemorySaver()), mailbox


@pytest.mark.parametrize("action", [Action.BLOCK, Action.HALT])
def test_streams_hide_the_calls_an_agent_subgraph_ran_for_a_message_not_delivered(
    action: Action,
) -> None:
    graph, mailbox = mailing_buyer(action)
    parts = list(
        graph.stream(
            start(),
            config(),
            stream_mode=["tasks", "debug", "updates", "values", "messages"],
            subgraphs=True,
        )
    )
    # The limitation (see docs/known-gaps.md): the agent's own tool node ran the call before the
    # agent's node returned and kinguard saw the message ...
    assert mailbox == [f"fix {SECRET}"]
    # ... but no stream shows its arguments or its result (the reviewer's question does).
    shown = [p for p in parts if "interrupt" not in repr(p).lower()]
    assert SECRET not in repr(shown)
    assert any(p[1] == "tasks" and p[2].get("name") == "tools" for p in parts)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_astream_events_hide_the_calls_an_agent_subgraph_ran_for_a_message_not_delivered(
    version: str,
) -> None:
    # A tool's events carry its arguments as their input, and no call id.
    graph, mailbox = mailing_buyer(Action.BLOCK)

    async def run() -> list[Any]:
        with warnings.catch_warnings():  # v1 is deprecated
            warnings.simplefilter("ignore")
            return [e async for e in graph.astream_events(start(), config(), version=version)]

    events = asyncio.run(run())
    assert mailbox == [f"fix {SECRET}"]
    tool_events = [e for e in events if e["name"] == "send_message"]
    assert {e["event"] for e in tool_events} == {"on_tool_start", "on_tool_end"}
    assert SECRET not in repr(events)
