"""``halt``: interrupt() in its own step, resumed with approve/edit/reject; nodes never re-run."""

from __future__ import annotations

import asyncio
import json
import operator
import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import pytest
from kinguard_langgraph import guard_graph
from kinguard_langgraph._scripted import (
    ChatState,
    ScriptedChatModel,
    chain_graph,
    delivered,
    handover_graph,
    script_graph,
    start,
)
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Command, Send
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from kinguard import Action, AgentProfile, HumanDecision, KinGuard, Policy, Rule, SkipRepeats
from kinguard.testing import CapturingSink, KeywordDetector, capture_verdicts, halt_beside

SECRET = "ZEBRA-PACT"
AGENTS = (
    AgentProfile(name="buyer", model="openai:gpt-4o"),
    AgentProfile(name="seller", model="openai:gpt-4o"),
)


def halt_guard(**kw: Any) -> KinGuard:
    return KinGuard(
        AGENTS,
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action.HALT),)),
        **kw,
    )


def cfg() -> dict[str, Any]:
    return {"configurable": {"thread_id": uuid.uuid4().hex}}


def build(use_async: bool = False, **kw: Any) -> tuple[Any, dict[str, ScriptedChatModel]]:
    models = {
        "buyer": ScriptedChatModel(replies=["Ten at 40.", f"Agree to {SECRET}?", "Final offer."]),
        "seller": ScriptedChatModel(replies=["48.", "44.", "Deal."]),
    }
    order = ["buyer", "seller"] * 3
    graph = guard_graph(script_graph(order, models, {}, use_async=use_async), halt_guard(**kw))
    return graph.compile(checkpointer=InMemorySaver()), models


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        ({"type": "approve"}, f"Agree to {SECRET}?"),
        ({"type": "edit", "text": "Agree to 44?"}, "Agree to 44?"),
        ({"type": "reject"}, None),
        (HumanDecision(type="edit", text="Agree to 45?"), "Agree to 45?"),
        ("approve", f"Agree to {SECRET}?"),
    ],
)
def test_resume_decisions(decision: Any, expected: str | None, use_async: bool) -> None:
    graph, models = build(use_async)
    config = cfg()

    async def go(value: Any) -> Any:
        return await graph.ainvoke(value, config)

    run = (lambda v: asyncio.run(go(v))) if use_async else (lambda v: graph.invoke(v, config))
    first = run(start())
    (interrupt,) = first["__interrupt__"]
    payload = interrupt.value
    json.dumps(payload)  # JSON-able for any UI or API
    assert payload["kinguard"] == "halt"
    assert payload["agent"] == "buyer"
    assert payload["verdict"]["signals"] == ["collusion.market"]
    assert payload["decisions"] == ["approve", "edit", "reject"]
    assert models["buyer"].calls == 2
    assert models["seller"].calls == 1  # the seller did not get to answer yet

    final = run(Command(resume=decision))
    assert "__interrupt__" not in final
    assert models["buyer"].calls == 3  # the halted node was not re-run on resume
    texts = [text for _, text in delivered(final["messages"])]
    if expected is None:
        assert not any(SECRET in t for t in texts)
        assert len(texts) == 5
    else:
        assert texts[2] == expected
    seller_saw = "\n".join(models["seller"].rendered_inputs()[1:])
    assert (SECRET in seller_saw) == (expected is not None and SECRET in expected)


def test_invalid_resume_value_fails_closed() -> None:
    graph, _ = build()
    config = cfg()
    graph.invoke(start(), config)
    final = graph.invoke(Command(resume={"type": "maybe"}), config)
    assert SECRET not in repr(final["messages"])


@pytest.mark.parametrize("capture", [False, True])
def test_an_invalid_decision_is_logged_quoting_it_only_where_content_may_go(
    capture: bool,
) -> None:
    # An edit a person typed is content: once logged whole, with pydantic's error quoting it
    # again, whatever content capture said.
    graph, _ = build(capture_content=capture)
    config = cfg()
    graph.invoke(start(), config)
    with capture_logs() as logs:
        graph.invoke(Command(resume={"type": "edit", "text": "Patient Jane Roe", "by": 1}), config)
    (entry,) = [e for e in logs if e["event"] == "kinguard.invalid_decision"]
    assert "by" in entry["error"]  # what was wrong is said either way
    assert ("Jane Roe" in str(entry)) is capture


def test_state_while_halted_does_not_contain_the_message() -> None:
    graph, _ = build()
    config = cfg()
    graph.invoke(start(), config)
    snapshot = graph.get_state(config)
    assert snapshot.next == ("buyer.kinguard_halt",)
    assert SECRET not in repr(snapshot.values)


def test_command_goto_is_kept_for_after_the_decision() -> None:
    calls: list[str] = []

    def speaker(state: ChatState) -> Command[Any]:
        calls.append("speaker")
        return Command(
            update={"messages": [AIMessage(f"Let us {SECRET}.", name="speaker")]}, goto="listener"
        )

    def listener(state: ChatState) -> dict[str, Any]:
        calls.append("listener")
        return {"turn": 1}

    builder = StateGraph(ChatState)
    builder.add_node("speaker", speaker, destinations=("listener",))
    builder.add_node("listener", listener)
    builder.add_edge(START, "speaker")
    builder.add_edge("listener", END)
    guard = KinGuard(
        [AgentProfile(name="speaker"), AgentProfile(name="listener")],
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action.HALT),)),
    )
    graph = guard_graph(builder, guard, agents=["speaker"]).compile(checkpointer=InMemorySaver())
    config = cfg()
    assert "__interrupt__" in graph.invoke(start(), config)
    assert calls == ["speaker"]
    graph.invoke(Command(resume={"type": "approve"}), config)
    assert calls == ["speaker", "listener"]


def test_parallel_agents_halt_together() -> None:
    def fan_out(state: ChatState) -> list[Send]:
        return [Send("voter", {"messages": state["messages"], "turn": i}) for i in range(3)]

    def voter(state: ChatState) -> dict[str, Any]:
        text = f"vote {state['turn']} {SECRET}" if state["turn"] != 1 else "vote 1 fair"
        return {"messages": [AIMessage(text, name="voter", id=f"vote-{state['turn']}")]}

    builder = StateGraph(ChatState)
    builder.add_node("voter", voter)
    builder.add_conditional_edges(START, fan_out, ["voter"])
    builder.add_edge("voter", END)
    guard = KinGuard(
        [AgentProfile(name="voter")],
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action.HALT),)),
    )
    graph = guard_graph(builder, guard).compile(checkpointer=InMemorySaver())
    config = cfg()
    out = graph.invoke(start(), config)
    assert len(out["__interrupt__"]) >= 1
    while "__interrupt__" in out:
        out = graph.invoke(Command(resume={"type": "reject"}), config)
    texts = [m.content for m in out["messages"]]
    assert "vote 1 fair" in texts
    assert not any(SECRET in str(t) for t in texts)


class FanInState(ChatState):
    seen: Annotated[list[list[str]], operator.add]


def fan_in_graph(buyer_says: str) -> Any:
    """Buyer and seller speak in parallel; a join reads both once both are done."""

    def buyer(state: FanInState) -> dict[str, Any]:
        return {"messages": [AIMessage(content=buyer_says, name="buyer")]}

    def seller(state: FanInState) -> dict[str, Any]:
        return {"messages": [AIMessage(content="Seller is ready.", name="seller")]}

    def join(state: FanInState) -> dict[str, Any]:
        return {"seen": [[str(m.content) for m in state["messages"][1:]]]}

    builder = StateGraph(FanInState)
    builder.add_node("buyer", buyer)
    builder.add_node("seller", seller)
    builder.add_node("join", join)
    builder.add_edge(START, "buyer")
    builder.add_edge(START, "seller")
    builder.add_edge(["buyer", "seller"], "join")
    builder.add_edge("join", END)
    graph = guard_graph(builder, halt_guard(), agents=["buyer", "seller"])
    return graph.compile(checkpointer=InMemorySaver())


@pytest.mark.parametrize(
    ("decision", "joined"),
    [
        ({"type": "approve"}, ["Seller is ready.", f"Let us fix {SECRET}."]),
        ({"type": "edit", "text": "Our price stands."}, ["Seller is ready.", "Our price stands."]),
        ({"type": "reject"}, ["Seller is ready."]),
    ],
)
def test_a_fan_in_waits_for_the_decision_on_a_halted_start(
    decision: dict[str, str], joined: list[str]
) -> None:
    graph = fan_in_graph(f"Let us fix {SECRET}.")
    config = cfg()
    first = graph.invoke({**start(), "seen": []}, config)
    assert "__interrupt__" in first
    assert first["seen"] == []  # the join has not gone ahead without the withheld message
    out = graph.invoke(Command(resume=decision), config)
    assert "__interrupt__" not in out
    assert [sorted(seen) for seen in out["seen"]] == [sorted(joined)]


def test_a_fan_in_without_a_halt_runs_once_with_every_message() -> None:
    out = fan_in_graph("Ten at 40.").invoke({**start(), "seen": []}, cfg())
    assert [sorted(seen) for seen in out["seen"]] == [["Seller is ready.", "Ten at 40."]]


def send_graph(price_says: str) -> Any:
    """One agent node run in parallel by Send (one task per topic), then a reducer."""

    def fan_out(state: FanInState) -> list[Send]:
        return [
            Send("agent", {"messages": state["messages"], "seen": [], "turn": i}) for i in range(2)
        ]

    def agent(state: FanInState) -> dict[str, Any]:
        text = price_says if state["turn"] == 0 else "On delivery: March is fine."
        return {"messages": [AIMessage(content=text, name="agent")]}

    def reduce(state: FanInState) -> dict[str, Any]:
        return {"seen": [sorted(str(m.content) for m in state["messages"][1:])]}

    builder = StateGraph(FanInState)
    builder.add_node("agent", agent)
    builder.add_node("reduce", reduce)
    builder.add_conditional_edges(START, fan_out, ["agent"])
    builder.add_edge("agent", "reduce")
    builder.add_edge("reduce", END)
    guard = KinGuard(
        [AgentProfile(name="agent")],
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action.HALT),)),
    )
    return guard_graph(builder, guard, agents=["agent"]).compile(checkpointer=InMemorySaver())


def test_a_reducer_after_parallel_send_tasks_waits_for_the_decision() -> None:
    graph = send_graph(f"On price: let us fix {SECRET}.")
    config = cfg()
    first = graph.invoke({**start(), "seen": []}, config)
    assert "__interrupt__" in first
    assert first["seen"] == []  # not run on the other task's message alone
    out = graph.invoke(Command(resume={"type": "approve"}), config)
    # Once, with both messages: not again after the decision.
    assert out["seen"] == [["On delivery: March is fine.", f"On price: let us fix {SECRET}."]]


def test_a_reducer_after_parallel_send_tasks_runs_once_without_a_halt() -> None:
    out = send_graph("On price: 40.").invoke({**start(), "seen": []}, cfg())
    assert out["seen"] == [["On delivery: March is fine.", "On price: 40."]]


def send_handoff(action: Action, *, in_update: bool) -> tuple[Any, list[list[tuple[str, str]]]]:
    """The buyer hands its message to the seller in ``Command(goto=Send(...))``, with the
    message in its update as well or only in the Send."""
    seller_saw: list[list[tuple[str, str]]] = []

    def buyer(state: ChatState) -> Command[Any]:
        message = AIMessage(f"Let us agree on {SECRET}.", name="buyer", id="b1")
        return Command(
            update={"messages": [message]} if in_update else {"turn": 1},
            goto=[Send("seller", {"messages": [*state["messages"], message]})],
        )

    def seller(state: ChatState) -> dict[str, Any]:
        seller_saw.append([(str(m.id), str(m.content)) for m in state["messages"]])
        return {"messages": [AIMessage("ok", name="seller")]}

    builder = handover_graph(buyer, seller)
    guard = KinGuard(
        AGENTS,
        identity="disassociate",
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=action),)),
    )
    return guard_graph(builder, guard).compile(checkpointer=InMemorySaver()), seller_saw


@pytest.mark.parametrize("in_update", [True, False], ids=["update-and-send", "send-only"])
@pytest.mark.parametrize(
    ("action", "decision", "seller_gets"),
    [
        (Action.BLOCK, None, "[kinguard blocked a message from buyer: collusion.market]"),
        (Action.REDACT, None, "Let us agree on [redacted by kinguard: collusion.market]."),
        (Action.HALT, "approve", f"Let us agree on {SECRET}."),
        (Action.HALT, "reject", None),
    ],
)
def test_a_message_handed_on_in_a_send_is_delivered_as_ruled(
    action: Action, decision: str | None, seller_gets: str | None, in_update: bool
) -> None:
    graph, seller_saw = send_handoff(action, in_update=in_update)
    config = cfg()
    out = graph.invoke(start(), config)
    if decision is not None:
        assert "__interrupt__" in out and seller_saw == []
        out = graph.invoke(Command(resume={"type": decision}), config)
    (seen,) = seller_saw  # the Send still goes, even when its message does not
    texts = [text for _, text in seen]
    assert texts[-1] == seller_gets if seller_gets is not None else SECRET not in repr(texts)
    # The buyer's identity, in the state it built the Send from, is not handed on.
    assert not any(message_id.endswith("-buyer") for message_id, _ in seen)
    assert SECRET not in repr(out["messages"]) or (decision == "approve" and in_update)


def test_an_abandoned_halt_is_not_asked_about_or_delivered_at_the_next_halt() -> None:
    said = iter([f"First {SECRET}.", f"Second {SECRET}."])

    def buyer(state: ChatState) -> dict[str, Any]:
        return {"messages": [AIMessage(next(said), name="buyer")]}

    def seller(state: ChatState) -> dict[str, Any]:
        return {"messages": [AIMessage("ok", name="seller")]}

    builder = chain_graph(("buyer", buyer), ("seller", seller))
    graph = guard_graph(builder, halt_guard()).compile(checkpointer=InMemorySaver())
    config = cfg()
    first = graph.invoke(start(), config)
    assert [i.value["text"] for i in first["__interrupt__"]] == [f"First {SECRET}."]
    # The app sends new input instead of a decision: that halt is abandoned.
    second = graph.invoke(start(), config)
    assert [i.value["text"] for i in second["__interrupt__"]] == [f"Second {SECRET}."]
    out = graph.invoke(Command(resume={"type": "approve"}), config)
    assert "__interrupt__" not in out
    assert [m.content for m in out["messages"] if m.type == "ai"] == [f"Second {SECRET}.", "ok"]
    assert not graph.get_state(config).values.get("kinguard", {}).get("pending")


@pytest.mark.parametrize(
    ("breakpoint", "as_node"),
    [(None, None), (None, "buyer"), ("interrupt_after", None), ("interrupt_before", None)],
)
def test_update_state_while_a_halt_waits_keeps_it_waiting(
    breakpoint: str | None, as_node: str | None
) -> None:
    """The app notes something in the state (LangGraph's usual human-in-the-loop move) while
    the halt waits, at kinguard's interrupt or at a static breakpoint: the halt still asks."""
    seller_saw: list[list[str]] = []

    def buyer(state: ChatState) -> dict[str, Any]:
        return {"messages": [AIMessage(f"Offer 40, {SECRET}", name="buyer")]}

    def seller(state: ChatState) -> dict[str, Any]:
        seller_saw.append([str(m.content) for m in state["messages"]])
        return {"messages": [AIMessage("ok", name="seller")]}

    builder = chain_graph(("buyer", buyer), ("seller", seller))
    points = {"interrupt_after": ["buyer"], "interrupt_before": ["seller"]}
    options = {breakpoint: points[breakpoint]} if breakpoint else {}
    graph = guard_graph(builder, halt_guard()).compile(checkpointer=InMemorySaver(), **options)
    config = cfg()
    graph.invoke(start(), config)
    note = AIMessage("(noted by the app)", name="app")
    graph.update_state(config, {"messages": [note]}, as_node=as_node)
    assert graph.get_state(config).next == ("buyer.kinguard_halt",)
    (asked,) = graph.invoke(None, config)["__interrupt__"]
    assert asked.value["text"] == f"Offer 40, {SECRET}"
    out = graph.invoke(Command(resume={"type": "approve"}), config)
    if graph.get_state(config).next:  # the interrupt_before breakpoint, at the seller
        out = graph.invoke(None, config)
    assert seller_saw == [["Begin.", "(noted by the app)", f"Offer 40, {SECRET}"]]
    assert [m.content for m in out["messages"]][-1] == "ok"


@pytest.mark.parametrize("moved_past", ["new-input", "update-as-halt-node"])
def test_a_halt_the_app_moved_past_does_not_come_back_through_update_state(
    moved_past: str,
) -> None:
    said = iter([f"Offer 40, {SECRET}", "Offer 41, final."])
    seller_saw: list[list[str]] = []

    def buyer(state: ChatState) -> dict[str, Any]:
        return {"messages": [AIMessage(next(said), name="buyer")]}

    def seller(state: ChatState) -> dict[str, Any]:
        seller_saw.append([str(m.content) for m in state["messages"]])
        return {"messages": [AIMessage("ok", name="seller")]}

    builder = chain_graph(("buyer", buyer), ("seller", seller))
    graph = guard_graph(builder, halt_guard()).compile(checkpointer=InMemorySaver())
    config = cfg()
    assert "__interrupt__" in graph.invoke(start(), config)
    if moved_past == "new-input":
        graph.invoke(start(), config)
    else:  # documented as standing in for the decision: the held message is not delivered
        graph.update_state(config, {"messages": []}, as_node="buyer.kinguard_halt")
        graph.invoke(None, config)
    assert not graph.get_state(config).next
    # Later the app writes a message as the buyer; the old halt is not due any more.
    note = AIMessage("(buyer) delivery by Friday", name="buyer", id="note")
    graph.update_state(config, {"messages": [note]}, as_node="buyer")
    assert graph.get_state(config).next == ("seller",)
    out = graph.invoke(None, config)
    assert "__interrupt__" not in out
    assert SECRET not in repr(seller_saw) and SECRET not in repr(out["messages"])


def sending_buyer_app(text: str, argument: str, guard: KinGuard) -> tuple[Any, list[str]]:
    """A buyer that says ``text`` and calls ``send_message(to="seller", text=argument)`` once
    (the tool runs in its own node, after kinguard read the message), guarded and compiled
    with a checkpointer; and the texts the tool sent."""
    sent: list[str] = []

    @tool
    def send_message(to: str, text: str) -> str:
        """Send a message to another agent."""
        sent.append(text)
        return "delivered"

    def buyer(state: ChatState) -> dict[str, Any]:
        if any(isinstance(m, ToolMessage) for m in state["messages"]):
            return {"messages": [AIMessage("done", name="buyer")]}
        call = {"name": "send_message", "args": {"to": "seller", "text": argument}, "id": "c1"}
        return {"messages": [AIMessage(text, name="buyer", tool_calls=[call])]}

    builder = StateGraph(ChatState)
    builder.add_node("buyer", buyer)
    builder.add_node("tools", ToolNode([send_message]))
    builder.add_edge(START, "buyer")
    builder.add_conditional_edges("buyer", tools_condition)
    builder.add_edge("tools", "buyer")
    app = guard_graph(builder, guard, agents=["buyer"]).compile(checkpointer=InMemorySaver())
    return app, sent


@pytest.mark.parametrize(
    ("decision", "runs"), [("approve", True), ("edit", False), ("edit-same-text", False)]
)
def test_an_edited_halt_makes_none_of_the_messages_tool_calls(decision: str, runs: bool) -> None:
    """An edit drops the calls even when it keeps the visible text: only the calls' arguments
    were flagged, and the reviewer cannot edit those."""
    app, sent = sending_buyer_app("Sending now.", SECRET, halt_guard())
    config = cfg()
    (interrupt,) = app.invoke(start(), config)["__interrupt__"]
    assert interrupt.value["tool_calls"][0]["args"]["text"] == SECRET  # the reviewer sees it
    edits = {"edit": "Sending nothing.", "edit-same-text": "Sending now."}
    resume = {"type": "edit", "text": edits[decision]} if decision in edits else decision
    out = app.invoke(Command(resume=resume), config)
    assert (sent == [SECRET]) is runs
    assert (SECRET in repr(out["messages"])) is runs


def test_a_call_whose_arguments_conceal_rewrites_is_withheld_with_a_record() -> None:
    # Under conceal the verdict is an allow: no alert, no log line, nothing said that the
    # message and its call never went out.
    guard = KinGuard(
        [AgentProfile(name="buyer", model="openai:gpt-4o")], identity="conceal", detectors=[]
    )
    app, sent = sending_buyer_app("Sending now.", "I am GPT-4o, like you", guard)
    with capture_logs() as logs, capture_verdicts(guard) as verdicts:
        out = app.invoke(start(), cfg())
    assert sent == [] and "GPT-4o" not in repr(out["messages"])
    assert verdicts[0].action is Action.ALLOW
    (withheld,) = [e for e in logs if e["event"] == "kinguard.langgraph.calls_withheld"]
    assert (withheld["node"], withheld["tools"], withheld["action"]) == (
        "buyer",
        ["send_message"],
        "allow",
    )
    assert "GPT" not in repr(withheld)  # no content in the record


def test_each_human_decision_is_recorded_once() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def buyer(state: ChatState) -> dict[str, Any]:
        said = [f"First {SECRET}.", f"Second {SECRET}."]
        return {"messages": [AIMessage(text, name="buyer") for text in said]}

    builder = StateGraph(ChatState)
    builder.add_node("buyer", buyer)
    builder.add_edge(START, "buyer")
    builder.add_edge("buyer", END)
    guard = KinGuard(
        AGENTS,
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action.HALT),)),
        tracer_provider=provider,
    )
    graph = guard_graph(builder, guard).compile(checkpointer=InMemorySaver())
    config = cfg()
    out = graph.invoke(start(), config)
    decisions = iter([{"type": "reject", "reason": "price talk"}, {"type": "approve"}])
    while "__interrupt__" in out:  # the halt node asks twice, re-running for each answer
        out = graph.invoke(Command(resume=next(decisions)), config)
    decided = [s for s in exporter.get_finished_spans() if s.name == "kinguard.decide"]
    assert [(s.attributes or {}).get("kinguard.decision") for s in decided] == ["reject", "approve"]
    assert {(s.attributes or {}).get("gen_ai.conversation.id") for s in decided} == {
        config["configurable"]["thread_id"]
    }


def test_a_decision_can_be_joined_to_its_inspection_and_message() -> None:
    """The decision's span and the inspection's name the message by kinguard's id, which the
    reviewer's payload carries too; the inspection's span also has the LangGraph id."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def buyer(state: ChatState) -> dict[str, Any]:
        return {"messages": [AIMessage(f"Agree {SECRET}", name="buyer", id="msg-42")]}

    guard = KinGuard(
        AGENTS,
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action.HALT),)),
        tracer_provider=provider,
    )
    graph = guard_graph(chain_graph(("buyer", buyer)), guard).compile(checkpointer=InMemorySaver())
    config = cfg()
    (asked,) = graph.invoke(start(), config)["__interrupt__"]
    graph.invoke(Command(resume={"type": "approve"}), config)
    spans = {s.name: dict(s.attributes or {}) for s in exporter.get_finished_spans()}
    inspected, decided = spans["kinguard.inspect"], spans["kinguard.decide"]
    assert decided["kinguard.message.id"] == inspected["kinguard.message.id"]
    assert decided["kinguard.message.id"] == asked.value["verdict"]["message_id"]
    assert inspected["kinguard.framework.message.id"] == asked.value["message_id"] == "msg-42"


@pytest.mark.parametrize("in_arguments", [False, True], ids=["visible-text", "tool-arguments"])
def test_an_approved_halt_keeps_a_redaction_and_makes_its_calls_only_if_untouched(
    in_arguments: bool,
) -> None:
    """A redact rule matching beside the halt still applies on approval; redacting a call's
    arguments cannot be done (they are data), so the message and its calls go, as they would
    without the halt."""
    text, argument = ("Sending now.", SECRET) if in_arguments else (f"Sending {SECRET} now.", "hi")
    guard = halt_beside(AGENTS, Action.REDACT, SECRET, "HALT-ME")
    app, sent = sending_buyer_app(f"HALT-ME {text}", argument, guard)
    config = cfg()
    (interrupt,) = app.invoke(start(), config)["__interrupt__"]
    assert SECRET in interrupt.value["text"] + json.dumps(interrupt.value["tool_calls"])
    assert (interrupt.value["approve_delivers"] is None) is in_arguments
    assert SECRET not in (interrupt.value["approve_delivers"] or "")
    out = app.invoke(Command(resume="approve"), config)
    assert SECRET not in repr(out["messages"])
    assert sent == ([] if in_arguments else ["hi"])
    if not in_arguments:
        assert "[redacted by kinguard: collusion.market]" in out["messages"][1].content


def test_an_approved_halt_under_conceal_keeps_its_calls_and_their_arguments_apart() -> None:
    """Concealment rewrites the text as read (visible text and arguments joined); approving
    applies that rewrite to the visible text, and the calls stay as they were."""
    guard = KinGuard(
        AGENTS,
        identity="conceal",
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action.HALT),)),
    )
    text = f"{SECRET}. Speaking as GPT-4o from OpenAI, sending."
    app, sent = sending_buyer_app(text, "ten units", guard)
    config = cfg()
    app.invoke(start(), config)
    out = app.invoke(Command(resume="approve"), config)
    approved = out["messages"][1]
    assert (
        approved.content
        == f"{SECRET}. Speaking as [identity withheld] from [identity withheld], sending."
    )
    assert approved.tool_calls[0]["args"] == {"to": "seller", "text": "ten units"}
    assert sent == ["ten units"]


def run_with(graph: Any, use_async: bool, config: Any = None) -> Callable[[Any], Any]:
    async def go(value: Any) -> Any:
        return await graph.ainvoke(value, config)

    return (lambda v: asyncio.run(go(v))) if use_async else (lambda v: graph.invoke(v, config))


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_a_halt_without_a_checkpointer_blocks_the_message_and_says_how_to_review_it(
    use_async: bool,
) -> None:
    # LangGraph cannot resume an interrupt without a checkpointer: a halt there would stop the
    # run for a decision that can never be given. It fails closed instead, and says so.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    models = {
        "buyer": ScriptedChatModel(replies=["Ten at 40.", f"Agree to {SECRET}?", "Final offer."]),
        "seller": ScriptedChatModel(replies=["48.", "44.", "Deal."]),
    }
    builder = script_graph(["buyer", "seller"] * 3, models, {}, use_async=use_async)
    graph = guard_graph(builder, halt_guard(tracer_provider=provider)).compile()
    with capture_logs() as logs:
        out = run_with(graph, use_async)(start())
    assert "__interrupt__" not in out
    assert delivered(out["messages"])[2] == ("buyer", "[kinguard blocked a message from buyer]")
    assert models["seller"].calls == 3 and SECRET not in repr(models["seller"].inputs)
    (entry,) = [e for e in logs if e["event"] == "kinguard.halt_blocked"]
    assert entry["log_level"] == "error" and entry["reason"] == "no checkpointer"
    assert entry["fix"] == "compile with a checkpointer to review halts"
    (decided,) = [s for s in exporter.get_finished_spans() if s.name == "kinguard.decide"]
    attributes = dict(decided.attributes or {})
    assert attributes["kinguard.decision"] == "reject"
    assert "compile with a checkpointer" in str(attributes["kinguard.decision.reason"])


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_a_guarded_subgraph_halts_on_its_parents_checkpointer(use_async: bool) -> None:
    models = {
        "buyer": ScriptedChatModel(replies=["Ten at 40.", f"Agree to {SECRET}?", "Final offer."]),
        "seller": ScriptedChatModel(replies=["48.", "44.", "Deal."]),
    }
    builder = script_graph(["buyer", "seller"] * 3, models, {}, use_async=use_async)
    team = guard_graph(builder, halt_guard()).compile()  # no checkpointer of its own
    parent = chain_graph(("team", team)).compile(checkpointer=InMemorySaver())
    run = run_with(parent, use_async, cfg())
    (asked,) = run(start())["__interrupt__"]
    assert asked.value["agent"] == "buyer"
    final = run(Command(resume={"type": "approve"}))
    assert "__interrupt__" not in final
    assert delivered(final["messages"])[2] == ("buyer", f"Agree to {SECRET}?")


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_decision_on_a_channel_without_a_reducer_keeps_the_history(decision: str) -> None:
    # Each node writes the whole history there: the halt node wrote the decided message alone,
    # and the history before it was lost.
    class FullState(TypedDict):
        messages: list[AnyMessage]

    builder = StateGraph(FullState)
    for node, said in (("buyer", f"Agree to {SECRET}?"), ("seller", "Deal.")):
        builder.add_node(
            node, lambda state, said=said: {"messages": [*state["messages"], AIMessage(said)]}
        )
    builder.add_edge(START, "buyer")
    builder.add_edge("buyer", "seller")
    builder.add_edge("seller", END)
    graph = guard_graph(builder, halt_guard(identity="none")).compile(checkpointer=InMemorySaver())
    config = cfg()
    graph.invoke({"messages": [HumanMessage("Negotiate.")]}, config)
    out = graph.invoke(Command(resume={"type": decision}), config)
    shown = [m.content for m in out["messages"]]
    kept = [f"Agree to {SECRET}?"] if decision == "approve" else []
    assert shown == ["Negotiate.", *kept, "Deal."]


def test_every_halt_pages_a_person_also_one_on_held_risk() -> None:
    # Halting at pair risk: once the buyer's flagged offer is approved, the seller's reply halts
    # on the pair's held risk, with no finding of its own, and waits for a person like the
    # first. It was a repeat of the incident: a pager behind SkipRepeats heard of one halt in 4.
    audit, pager = CapturingSink(), CapturingSink()
    guard = KinGuard(
        AGENTS,
        detectors=[KeywordDetector(SECRET, score=0.5)],
        policy=Policy(rules=(Rule(risk=0.35, action=Action.HALT),)),
        sinks=[audit, SkipRepeats(pager)],
    )
    models = {
        "buyer": ScriptedChatModel(replies=[f"Agree to {SECRET}?", "Final offer."]),
        "seller": ScriptedChatModel(replies=["Sure, fine.", "Deal."]),
    }
    graph = guard_graph(script_graph(["buyer", "seller"] * 2, models, {}), guard)
    app = graph.compile(checkpointer=InMemorySaver())
    config = cfg()
    out = app.invoke(start(), config)
    halts = 0
    while "__interrupt__" in out:
        halts += 1
        out = app.invoke(Command(resume={"type": "approve"}), config)
    assert halts == len(audit.alerts) == 4
    assert len({alert.incident_id for alert in audit.alerts}) == 1
    assert len(pager.alerts) == halts
