"""``KinGuardMiddleware`` on a real ``create_agent`` agent with a scripted model."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from kinguard_langgraph import KinGuardMiddleware
from kinguard_langgraph._messages import HELD_REPLY_NOTICE
from kinguard_langgraph._scripted import ScriptedChatModel
from langchain.agents import create_agent
from langchain.agents.middleware import (
    HumanInTheLoopMiddleware,
    ModelCallLimitMiddleware,
    ModelRetryMiddleware,
    ToolCallLimitMiddleware,
)
from langchain.agents.structured_output import ToolStrategy
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.func import entrypoint
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel
from structlog.testing import capture_logs

from kinguard import Action, AgentProfile, KinGuard, Policy, Rule
from kinguard.identity import IDENTITY_MARKER
from kinguard.testing import KeywordDetector, capture_verdicts, halt_beside

SECRET = "ZEBRA-PACT"
AGENTS = (
    AgentProfile(name="seller", model="openai:gpt-4o", principal="Globex"),
    AgentProfile(name="buyer", model="openai:gpt-4o", principal="ACME"),
)


def make(
    action: Action, replies: list[str], identity: str = "disassociate", saver: bool = True
) -> tuple[Any, KinGuard, ScriptedChatModel]:
    guard = KinGuard(
        AGENTS,
        identity=identity,
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=action),)),
    )
    model = ScriptedChatModel(replies=replies)
    agent = create_agent(
        model,
        tools=[],
        system_prompt="You sell widgets.",
        middleware=[KinGuardMiddleware(guard, agent_name="seller")],
        checkpointer=InMemorySaver() if saver else None,
    )
    return agent, guard, model


def cfg() -> dict[str, Any]:
    return {"configurable": {"thread_id": uuid.uuid4().hex}}


def ask(agent: Any, value: Any, config: dict[str, Any], use_async: bool) -> Any:
    if use_async:
        return asyncio.run(agent.ainvoke(value, config))
    return agent.invoke(value, config)


def test_a_middleware_without_a_guard_is_refused_when_built() -> None:
    # Once accepted, to fail inside the agent's first model call.
    with pytest.raises(TypeError, match="takes a KinGuard as guard, not str"):
        KinGuardMiddleware("kinguard.toml", agent_name="seller")  # type: ignore[arg-type]


def test_an_agent_name_no_profile_has_is_logged() -> None:
    # Once silent: the agent ran as an unknown model serving no principal.
    _, guard, _ = make(Action.LOG, ["Hello."])
    with capture_logs() as logs:
        KinGuardMiddleware(guard, agent_name="seller")
        KinGuardMiddleware(guard, agent_name="sellr")
    assert [e["agent"] for e in logs if e["event"] == "kinguard.langgraph.undeclared_agent"] == [
        "sellr"
    ]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_identity_is_added_to_the_system_prompt(use_async: bool) -> None:
    agent, guard, model = make(Action.LOG, ["Hello."])
    ask(agent, {"messages": [HumanMessage("hi")]}, cfg(), use_async)
    system = model.inputs[0][0]
    assert system.type == "system"
    assert str(system.content).startswith("You sell widgets.")
    assert str(system.content).count(IDENTITY_MARKER) == 1
    block = guard.identity_block("seller")
    assert block is not None and block in str(system.content)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (Action.REDACT, "Price is [redacted by kinguard: collusion.market] 40."),
        (Action.BLOCK, "[kinguard blocked a message from seller: collusion.market]"),
    ],
)
def test_actions_rewrite_the_reply(action: Action, expected: str, use_async: bool) -> None:
    agent, guard, _ = make(action, [f"Price is {SECRET} 40."])
    with capture_verdicts(guard) as verdicts:
        out = ask(agent, {"messages": [HumanMessage("hi")]}, cfg(), use_async)
    assert out["messages"][-1].content == expected
    assert [v.action for v in verdicts] == [action]
    assert verdicts[0].recipients == ("buyer",)
    assert "kinguard" not in out  # private state stays private


def test_block_drops_the_tool_calls_of_the_blocked_message() -> None:
    ran: list[str] = []
    agent, _ = tool_calling_agent(Action.BLOCK, f"Calling {SECRET}", "price 40", ran)
    out = agent.invoke({"messages": [HumanMessage("hi")]})
    assert ran == []
    assert out["messages"][-1].content.startswith("[kinguard blocked")


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        ({"type": "approve"}, f"Deal at {SECRET}."),
        ({"type": "edit", "text": "Deal at 44."}, "Deal at 44."),
        ({"type": "reject"}, None),
    ],
)
def test_halt_asks_a_human_without_repeating_the_model_call(
    decision: dict[str, Any], expected: str | None, use_async: bool
) -> None:
    agent, _, model = make(Action.HALT, [f"Deal at {SECRET}.", "Another."])
    config = cfg()
    first = ask(agent, {"messages": [HumanMessage("hi")]}, config, use_async)
    assert first["__interrupt__"][0].value["verdict"]["action"] == "halt"
    assert all(SECRET not in str(m.content) for m in first["messages"])
    final = ask(agent, Command(resume=decision), config, use_async)
    assert model.calls == 1
    last = final["messages"][-1]
    if expected is None:
        assert last.type == "human"
    else:
        assert last.content == expected


def test_nudge_reaches_the_next_model_call_only() -> None:
    agent, _, model = make(Action.NUDGE, [f"Maybe {SECRET}.", "Fine."], identity="none")
    config = cfg()
    agent.invoke({"messages": [HumanMessage("hi")]}, config)
    agent.invoke({"messages": [HumanMessage("and now?")]}, config)
    first, second = (str(call[0].content) for call in model.inputs)
    assert "[kinguard reminder]" not in first
    assert "[kinguard reminder]" in second


class FlakyModel(ScriptedChatModel):
    """Fails its first call of each turn after the first, as a rate-limited API does."""

    def _generate(self, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
        if self.calls % 2 == 1:
            self._next(messages)
            raise ConnectionError("rate limited")
        return super()._generate(messages, *args, **kwargs)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_a_model_call_retried_after_a_failure_still_gets_the_nudge(use_async: bool) -> None:
    guard = KinGuard(
        AGENTS,
        identity="none",
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action.NUDGE),)),
    )
    model = FlakyModel(replies=[f"Maybe {SECRET}.", "", "Fine."])
    retry = ModelRetryMiddleware(max_retries=1, initial_delay=0, jitter=False)
    agent = create_agent(
        model,
        tools=[],
        middleware=[retry, KinGuardMiddleware(guard, agent_name="seller")],
        checkpointer=InMemorySaver(),
    )
    config = cfg()
    ask(agent, {"messages": [HumanMessage("hi")]}, config, use_async)
    out = ask(agent, {"messages": [HumanMessage("and now?")]}, config, use_async)
    assert out["messages"][-1].content == "Fine."
    first, failed, retried = (str(call[0].content) for call in model.inputs)
    assert "[kinguard reminder]" not in first
    assert "[kinguard reminder]" in failed
    assert "[kinguard reminder]" in retried
    assert guard.peek_nudge("seller", config["configurable"]["thread_id"]) is None


def test_a_guarded_agent_runs_no_step_of_kinguards_before_its_model_call() -> None:
    # Each hook node is a step of every run of the agent (≈ 0.16 ms a turn on fast models):
    # the guard's state is restored inside the model call (checked just below).
    agent, _, _ = make(Action.LOG, [f"Sure, {SECRET}."])
    steps = [
        name
        for part in agent.stream({"messages": [HumanMessage("hi")]}, cfg(), stream_mode="updates")
        for name in part
    ]
    assert steps == ["model", "KinGuardMiddleware[seller].after_model"]


@pytest.mark.parametrize("action", [Action.LOG, Action.HALT])
def test_guard_state_rides_the_agent_checkpoint(action: Action) -> None:
    """Also past a halt's decision, whose update clears only the pending halt."""
    saver = InMemorySaver()
    config = cfg()
    thread = config["configurable"]["thread_id"]

    def agent_with(guard: KinGuard) -> Any:
        return create_agent(
            ScriptedChatModel(replies=[f"{SECRET} again."]),
            tools=[],
            middleware=[KinGuardMiddleware(guard, agent_name="seller")],
            checkpointer=saver,
        )

    def new_guard() -> KinGuard:
        return KinGuard(
            AGENTS,
            detectors=[KeywordDetector(SECRET)],
            policy=Policy(rules=(Rule(signal="collusion.market", action=action),)),
        )

    first = new_guard()
    out = agent_with(first).invoke({"messages": [HumanMessage("hi")]}, config)
    if "__interrupt__" in out:
        agent_with(first).invoke(Command(resume={"type": "approve"}), config)
    risk = first.monitor.conversation(thread).risk
    assert risk > 0
    second = new_guard()  # e.g. a new process
    with capture_verdicts(second) as verdicts:
        agent_with(second).invoke({"messages": [HumanMessage("more")]}, config)
    assert verdicts[0].conversation_risk > verdicts[0].message_risk


def seller_in_guarded_graph(
    outer: KinGuard | None = None, action: Action = Action.REDACT, **options: Any
) -> tuple[Any, KinGuard, ScriptedChatModel]:
    """A middleware-guarded seller agent as the one node of a graph guarded by the same guard
    (or by ``outer``)."""
    from kinguard_langgraph import guard_graph
    from kinguard_langgraph._scripted import ChatState
    from langgraph.graph import END, START, StateGraph

    guard = KinGuard(
        AGENTS,
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=action),)),
        **options,
    )
    model = ScriptedChatModel(replies=[f"Price is {SECRET}."])
    seller = create_agent(
        model,
        tools=[],
        system_prompt="You sell.",
        middleware=[KinGuardMiddleware(guard, agent_name="seller")],
    )
    builder = StateGraph(ChatState)
    builder.add_node("seller", seller)
    builder.add_edge(START, "seller")
    builder.add_edge("seller", END)
    return guard_graph(builder, outer or guard).compile(), guard, model


def test_a_guarded_agent_inside_a_guarded_graph_is_inspected_once() -> None:
    from kinguard_langgraph._scripted import start

    graph, guard, model = seller_in_guarded_graph(identity="disassociate")
    with capture_verdicts(guard) as verdicts:
        out = graph.invoke(start())
    assert len(verdicts) == 1
    assert "[redacted by kinguard" in out["messages"][-1].content
    rendered = "\n".join(str(m.content) for m in model.inputs[0])
    assert rendered.count(IDENTITY_MARKER) == 1


def test_a_guarded_agent_inside_a_graph_with_another_guard_is_inspected_by_both() -> None:
    """The graph's own guard (a stricter policy here) reads what the agent's guard let out."""
    from kinguard_langgraph._scripted import start

    outer = KinGuard(
        AGENTS,
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action.BLOCK),)),
    )
    graph, inner, _ = seller_in_guarded_graph(outer, action=Action.LOG)
    with capture_verdicts(inner) as inner_verdicts, capture_verdicts(outer) as outer_verdicts:
        out = graph.invoke(start())
    assert [v.action for v in inner_verdicts] == [Action.LOG]
    assert [v.action for v in outer_verdicts] == [Action.BLOCK]
    assert SECRET not in repr(out["messages"])


def streamed_tokens(agent: Any, value: Any, config: dict[str, Any], use_async: bool) -> Any:
    """``stream_mode="messages"`` parts of a run, sync or async."""
    if not use_async:
        return list(agent.stream(value, config, stream_mode="messages"))

    async def run() -> list[Any]:
        return [p async for p in agent.astream(value, config, stream_mode="messages")]

    return asyncio.run(run())


def texts_by_id(parts: list[Any]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for message, _ in parts:
        if isinstance(message, AIMessage | AIMessageChunk):
            texts[str(message.id)] = texts.get(str(message.id), "") + str(message.content)
    return texts


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("action", [Action.LOG, Action.REDACT, Action.BLOCK, Action.HALT])
def test_a_streamed_agent_shows_only_delivered_tokens(action: Action, use_async: bool) -> None:
    agent, _, _ = make(action, [f"Sure, {SECRET} it is."])
    config = cfg()
    parts = streamed_tokens(agent, {"messages": [HumanMessage("hi")]}, config, use_async)
    if action in (Action.LOG, Action.REDACT):  # the reply still streams as tokens
        assert sum(isinstance(m, AIMessageChunk) for m, _ in parts) > 1
    shown = texts_by_id(parts)
    said = {
        str(m.id): str(m.content)
        for m in agent.get_state(config).values["messages"]
        if isinstance(m, AIMessage)
    }
    assert shown == said  # each message once, as delivered (a halted one: not yet)
    assert (SECRET in "".join(shown.values())) == (action is Action.LOG)
    if action is Action.HALT:
        assert shown == {}


def test_a_guarded_agent_inside_a_guarded_graph_streams_its_rewrite() -> None:
    # The agent's middleware rules on the message, so the graph does not inspect it again; the
    # graph's stream gate must still only show the tokens the middleware let out.
    from kinguard_langgraph._scripted import start

    graph, _, _ = seller_in_guarded_graph()
    parts = list(graph.stream(start(), stream_mode="messages", subgraphs=True))
    shown = texts_by_id([payload for _, payload in parts])
    assert SECRET not in "".join(shown.values())
    assert any("[redacted by kinguard" in text for text in shown.values())


@pytest.mark.parametrize("action", [Action.LOG, Action.REDACT, Action.BLOCK])
def test_astream_events_of_a_guarded_agent_show_only_delivered_tokens(action: Action) -> None:
    agent, _, _ = make(action, [f"Sure, {SECRET} it is."])

    async def run() -> list[Any]:
        value = {"messages": [HumanMessage("hi")]}
        return [e async for e in agent.astream_events(value, cfg(), version="v2")]

    events = asyncio.run(run())
    tokens = "".join(
        str(e["data"]["chunk"].content) for e in events if e["event"] == "on_chat_model_stream"
    )
    assert (SECRET in repr(events)) == (action is Action.LOG)
    expected = {
        Action.LOG: f"Sure, {SECRET} it is.",
        Action.REDACT: "Sure, [redacted by kinguard: collusion.market] it is.",
        Action.BLOCK: "",
    }
    assert tokens == expected[action]


def tool_calling_agent(
    action: Action,
    content: str,
    note: str,
    ran: list[str],
    checkpointer: Any = None,
    guard: KinGuard | None = None,
    review: str | None = None,
    **options: Any,
) -> tuple[Any, KinGuard]:
    """A create_agent agent whose model calls a tool that carries text to the other side;
    given ``review``, the app's own HumanInTheLoopMiddleware is listed ``first`` or ``last``."""

    @tool
    def post_to_buyer(note: str) -> str:
        """Post a note the buyer's agent reads."""
        ran.append(note)
        return "posted"

    from langchain_core.outputs import ChatGeneration, ChatResult

    class ToolModel(ScriptedChatModel):
        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self

        def _generate(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
        ) -> Any:
            if self.calls:  # after the tool: a plain closing line
                return ChatResult(generations=[ChatGeneration(message=AIMessage("Done."))])
            self._next(messages)
            call = {"name": "post_to_buyer", "args": {"note": note}, "id": "call-1"}
            message = AIMessage(content=content, tool_calls=[call])
            return ChatResult(generations=[ChatGeneration(message=message)])

    guard = guard or KinGuard(
        AGENTS,
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=action),)),
    )
    middleware: list[Any] = [KinGuardMiddleware(guard, agent_name="seller")]
    if review is not None:
        hitl = HumanInTheLoopMiddleware(interrupt_on={"post_to_buyer": True})
        middleware = [hitl, *middleware] if review == "first" else [*middleware, hitl]
    agent = create_agent(
        ToolModel(replies=["x"]),
        tools=[post_to_buyer],
        middleware=middleware,
        checkpointer=checkpointer,
        **options,
    )
    return agent, guard


def test_tool_call_arguments_are_inspected_and_a_change_to_them_blocks() -> None:
    ran: list[str] = []
    agent, guard = tool_calling_agent(Action.REDACT, "Posting a note.", f"hold {SECRET}", ran)
    with capture_verdicts(guard) as verdicts:
        out = agent.invoke({"messages": [HumanMessage("hi")]})
    assert verdicts[0].signal_names == ("collusion.market",)
    assert ran == []  # arguments cannot be redacted: the call never ran
    assert out["messages"][-1].content.startswith("[kinguard blocked")


def test_a_redaction_of_the_visible_text_keeps_clean_tool_calls() -> None:
    ran: list[str] = []
    agent, _ = tool_calling_agent(Action.REDACT, f"Posting {SECRET} now.", "ten units", ran)
    out = agent.invoke({"messages": [HumanMessage("hi")]})
    assert ran == ["ten units"]
    call_message = next(m for m in out["messages"] if getattr(m, "tool_calls", None))
    assert call_message.content == "Posting [redacted by kinguard: collusion.market] now."


def test_flagged_tool_call_arguments_only_logged_run_unchanged() -> None:
    ran: list[str] = []
    agent, guard = tool_calling_agent(Action.LOG, "Posting a note.", f"hold {SECRET}", ran)
    with capture_verdicts(guard) as verdicts:
        agent.invoke({"messages": [HumanMessage("hi")]})
    assert verdicts[0].action is Action.LOG
    assert ran == [f"hold {SECRET}"]


class Offer(BaseModel):
    price: int
    note: str


class ToolCallingModel(FakeMessagesListChatModel):
    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def structured_agent(action: Action, note: str) -> Any:
    """An agent answering with a structured ``Offer`` through ``ToolStrategy``."""
    call = {"name": "Offer", "args": {"price": 40, "note": note}, "id": "offer-1"}
    guard = KinGuard(
        AGENTS,
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=action),)),
    )
    return create_agent(
        ToolCallingModel(responses=[AIMessage("", tool_calls=[call])]),
        tools=[],
        response_format=ToolStrategy(Offer),
        middleware=[KinGuardMiddleware(guard, agent_name="seller")],
        checkpointer=InMemorySaver(),
    )


@pytest.mark.parametrize("action", [Action.BLOCK, Action.REDACT])
def test_a_blocked_structured_reply_leaves_no_structured_response(action: Action) -> None:
    out = structured_agent(action, f"hold at {SECRET}").invoke(
        {"messages": [HumanMessage("make an offer")]}, cfg()
    )
    assert out.get("structured_response") is None
    assert SECRET not in repr(out)  # nor the "Returning structured response" tool message
    assert out["messages"][-1].content.startswith("[kinguard blocked")


def test_an_approved_redacted_structured_reply_keeps_its_tool_result() -> None:
    """Approval redacts the visible text and keeps the call: its result must stay too, or the
    next model request carries a call nobody answered."""
    call = {"name": "Offer", "args": {"price": 40, "note": "forty is fair"}, "id": "offer-1"}
    guard = halt_beside(AGENTS, Action.REDACT, SECRET, "HALT-ME")
    reply = AIMessage(f"HALT-ME offering; {SECRET} noted", tool_calls=[call])
    agent = create_agent(
        ToolCallingModel(responses=[reply]),
        tools=[],
        response_format=ToolStrategy(Offer),
        middleware=[KinGuardMiddleware(guard, agent_name="seller")],
        checkpointer=InMemorySaver(),
    )
    config = cfg()
    assert "__interrupt__" in agent.invoke({"messages": [HumanMessage("make an offer")]}, config)
    out = agent.invoke(Command(resume="approve"), config)
    calls = {c["id"] for m in out["messages"] if isinstance(m, AIMessage) for c in m.tool_calls}
    answered = {m.tool_call_id for m in out["messages"] if isinstance(m, ToolMessage)}
    assert calls == answered == {"offer-1"}
    assert SECRET not in repr(out["messages"])


@pytest.mark.parametrize(
    ("decision", "returned"), [("approve", True), ("reject", False), ("edit", False)]
)
def test_a_halted_structured_reply_waits_for_the_decision(decision: str, returned: bool) -> None:
    """Without the structured response (the model insists on the same one) the turn ends:
    asking the model again would halt again, forever."""
    agent = structured_agent(Action.HALT, f"hold at {SECRET}")
    config = cfg()
    first = agent.invoke({"messages": [HumanMessage("make an offer")]}, config)
    assert "__interrupt__" in first
    assert first.get("structured_response") is None
    out = agent.invoke(Command(resume={"type": decision, "text": "No offer yet."}), config)
    assert "__interrupt__" not in out
    if returned:
        assert out["structured_response"] == Offer(price=40, note=f"hold at {SECRET}")
    else:
        assert out.get("structured_response") is None
        assert SECRET not in repr(out)


def test_a_clean_structured_reply_is_returned() -> None:
    out = structured_agent(Action.BLOCK, "forty is fair").invoke(
        {"messages": [HumanMessage("make an offer")]}, cfg()
    )
    assert out["structured_response"] == Offer(price=40, note="forty is fair")


@pytest.mark.parametrize("text", ["No note.", "Posting a note."], ids=["new-text", "same-text"])
def test_an_edited_halt_of_a_tool_calling_reply_runs_no_tool(text: str) -> None:
    ran: list[str] = []
    agent, _ = tool_calling_agent(
        Action.HALT, "Posting a note.", f"hold {SECRET}", ran, InMemorySaver()
    )
    config = cfg()
    assert "__interrupt__" in agent.invoke({"messages": [HumanMessage("hi")]}, config)
    out = agent.invoke(Command(resume={"type": "edit", "text": text}), config)
    assert ran == []
    assert out["messages"][-1].content == text
    assert not out["messages"][-1].tool_calls


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("review", ["first", "last"], ids=["hitl-first", "hitl-last"])
@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_call_approved_at_a_halt_still_waits_for_the_apps_own_review(
    decision: str, review: str, use_async: bool
) -> None:
    """The app's HumanInTheLoopMiddleware reviews a call kinguard's reviewer approved, listed
    before or after kinguard (``after_model`` hooks run in reverse order: listed after, it
    ran while kinguard held the reply, found no call, and the call ran unreviewed)."""
    ran: list[str] = []
    agent, _ = tool_calling_agent(
        Action.HALT, f"Posting {SECRET}.", "ten units", ran, InMemorySaver(), review=review
    )
    config = cfg()
    first = ask(agent, {"messages": [HumanMessage("hi")]}, config, use_async)
    assert first["__interrupt__"][0].value["verdict"]["action"] == "halt"
    second = ask(agent, Command(resume="approve"), config, use_async)
    assert ran == []
    (asked,) = second["__interrupt__"]
    assert [r["args"] for r in asked.value["action_requests"]] == [{"note": "ten units"}]
    out = ask(agent, Command(resume={"decisions": [{"type": decision}]}), config, use_async)
    assert ran == (["ten units"] if decision == "approve" else [])
    assert out["messages"][-1].content == "Done."
    calls = [m for m in out["messages"] if isinstance(m, AIMessage) and m.tool_calls]
    assert [m.content for m in calls] == [f"Posting {SECRET}."]  # delivered once


def test_new_input_gets_a_new_reply_not_the_approved_one_again() -> None:
    """The approved reply goes through the model node again for the hooks that missed it: an
    app that stops before that (here at a breakpoint) and sends new input gets the model's
    answer to it."""
    ran: list[str] = []
    agent, _ = tool_calling_agent(
        Action.HALT,
        f"Posting {SECRET}.",
        "ten units",
        ran,
        InMemorySaver(),
        review="last",
        interrupt_before=["model"],
    )
    config = cfg()
    agent.invoke({"messages": [HumanMessage("hi")]}, config)
    assert "__interrupt__" in agent.invoke(None, config)  # the halt
    agent.invoke(Command(resume="approve"), config)
    assert agent.get_state(config).next == ("model",)
    agent.invoke({"messages": [HumanMessage("never mind")]}, config)
    out = agent.invoke(None, config)
    assert not out.get("__interrupt__")
    assert out["messages"][-1].content == "Done."
    assert ran == []


@pytest.mark.parametrize("in_arguments", [False, True], ids=["visible-text", "tool-arguments"])
def test_an_approved_halt_keeps_a_redaction(in_arguments: bool) -> None:
    """Approval delivers the reply as the other rules left it; a redaction of a tool call's
    arguments cannot be applied, so that reply and its call go, as they would without a halt."""
    ran: list[str] = []
    guard = halt_beside(AGENTS, Action.REDACT, SECRET, "HALT-ME")
    content, note = ("HALT-ME posting.", SECRET) if in_arguments else (f"HALT-ME {SECRET}", "hi")
    agent, _ = tool_calling_agent(Action.LOG, content, note, ran, InMemorySaver(), guard)
    config = cfg()
    assert "__interrupt__" in agent.invoke({"messages": [HumanMessage("hi")]}, config)
    out = agent.invoke(Command(resume="approve"), config)
    assert SECRET not in repr(out["messages"])
    assert ran == ([] if in_arguments else ["hi"])


def test_a_human_decision_on_a_halted_reply_is_recorded_once() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    guard = KinGuard(
        AGENTS,
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action.HALT),)),
        tracer_provider=provider,
    )
    agent = create_agent(
        ScriptedChatModel(replies=[f"Deal at {SECRET}."]),
        tools=[],
        middleware=[KinGuardMiddleware(guard, agent_name="seller")],
        checkpointer=InMemorySaver(),
    )
    config = cfg()
    agent.invoke({"messages": [HumanMessage("hi")]}, config)
    agent.invoke(Command(resume={"type": "reject"}), config)
    decided = [s for s in exporter.get_finished_spans() if s.name == "kinguard.decide"]
    assert [(s.attributes or {}).get("kinguard.decision") for s in decided] == ["reject"]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_a_halt_skipped_by_new_input_is_not_asked_about_again(use_async: bool) -> None:
    agent, _, model = make(Action.HALT, [f"Deal at {SECRET}.", "Fine, 41."])
    config = cfg()
    assert "__interrupt__" in ask(agent, {"messages": [HumanMessage("hi")]}, config, use_async)
    # The user types again instead of deciding; the new reply is clean.
    out = ask(agent, {"messages": [HumanMessage("your price?")]}, config, use_async)
    assert "__interrupt__" not in out
    assert model.calls == 2
    assert [m.content for m in out["messages"]] == ["hi", "your price?", "Fine, 41."]
    assert not agent.get_state(config).next


@pytest.mark.parametrize("layout", ["subgraphs-with-memory", "apps-sharing-a-thread"])
def test_agents_keeping_their_own_state_do_not_undo_each_others_risk(layout: str) -> None:
    """Each agent's checkpoint holds the guard's state as of its own last turn: restoring it
    over the live state would drop what the other agent's turns added (and skip a block)."""
    guard = KinGuard(
        AGENTS,
        detectors=[KeywordDetector(SECRET, score=0.3)],
        policy=Policy(
            rules=(
                Rule(signal="collusion.market", min_score=0.2, action=Action.LOG),
                Rule(risk=0.5, action=Action.BLOCK),
            )
        ),
    )

    def agent(name: str, checkpointer: Any) -> Any:
        model = ScriptedChatModel(replies=[f"{name} {i}: keep {SECRET}" for i in range(3)])
        middleware = [KinGuardMiddleware(guard, agent_name=name)]
        return create_agent(model, [], name=name, middleware=middleware, checkpointer=checkpointer)

    config = cfg()
    with capture_verdicts(guard) as verdicts:
        if layout == "subgraphs-with-memory":  # LangGraph's way to give a subgraph memory
            builder = StateGraph(MessagesState)
            builder.add_node("buyer", agent("buyer", True))
            builder.add_node("seller", agent("seller", True))
            builder.add_edge(START, "buyer")
            builder.add_edge("buyer", "seller")
            builder.add_conditional_edges(
                "seller", lambda s: END if len(s["messages"]) > 4 else "buyer"
            )
            builder.compile(checkpointer=InMemorySaver()).invoke(
                {"messages": [HumanMessage("go")]}, config
            )
        else:
            buyer, seller = agent("buyer", InMemorySaver()), agent("seller", InMemorySaver())
            for app in (buyer, seller, buyer):
                app.invoke({"messages": [HumanMessage("next")]}, config)
    risks = [v.pair_risk for v in verdicts[:3]]
    assert risks == sorted(risks) and len(set(risks)) == 3  # never rolled back
    assert verdicts[2].action is Action.BLOCK


def two_guard_agent(model: ScriptedChatModel, org: KinGuard, team: KinGuard) -> Any:
    """The seller, guarded by ``org`` (listed first) and ``team``, under a checkpointer."""
    return create_agent(
        model,
        tools=[],
        middleware=[
            KinGuardMiddleware(org, agent_name="seller", name="org"),
            KinGuardMiddleware(team, agent_name="seller", name="team"),
        ],
        checkpointer=InMemorySaver(),
    )


def test_two_guards_on_one_agent_each_ask_about_their_own_halts() -> None:
    def guard(action: Action) -> KinGuard:
        rule = Rule(signal="collusion.market", action=action)
        return KinGuard(AGENTS, detectors=[KeywordDetector(SECRET)], policy=Policy(rules=(rule,)))

    org, team = guard(Action.HALT), guard(Action.LOG)
    agent = two_guard_agent(ScriptedChatModel(replies=[f"Deal at {SECRET}."]), org, team)
    config = cfg()
    (asked,) = agent.invoke({"messages": [HumanMessage("hi")]}, config)["__interrupt__"]
    assert asked.value["node"] == "org"
    out = agent.invoke(Command(resume={"type": "reject"}), config)
    assert "__interrupt__" not in out
    assert [m.content for m in out["messages"]] == ["hi"]


def keyword_guard(action: Action, word: str = SECRET, signal: str = "collusion.market") -> KinGuard:
    rule = Rule(signal=signal, action=action)
    return KinGuard(AGENTS, detectors=[KeywordDetector(word, signal)], policy=Policy(rules=(rule,)))


def posting(content: str, note: str, call_id: str) -> AIMessage:
    call = {"name": "post_to_buyer", "args": {"note": note}, "id": call_id}
    return AIMessage(content, tool_calls=[call])


def replying_agent(replies: list[AIMessage], middleware: list[Any], ran: list[str]) -> Any:
    """A create_agent agent whose model gives ``replies`` in order, with a tool that posts."""

    @tool
    def post_to_buyer(note: str) -> str:
        """Post a note the buyer's agent reads."""
        ran.append(note)
        return "posted"

    return create_agent(
        ToolCallingModel(responses=replies),
        tools=[post_to_buyer],
        middleware=middleware,
        checkpointer=InMemorySaver(),
    )


APPROVE_CALLS = {"decisions": [{"type": "approve"}]}


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("review", ["first", "last"], ids=["hitl-first", "hitl-last"])
@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_reply_held_after_tool_results_leaves_their_calls_alone(
    decision: str, review: str, use_async: bool
) -> None:
    """While kinguard holds a reply that follows tool results, the app's
    HumanInTheLoopMiddleware is not asked again about the calls that already ran. Listed after
    kinguard, its hook runs during the hold and took the last reply in the history: the one
    that made those calls (an approval asked again; a rejection answered a call twice)."""
    ran: list[str] = []
    hitl = HumanInTheLoopMiddleware(interrupt_on={"post_to_buyer": True})
    kinguard = KinGuardMiddleware(keyword_guard(Action.HALT), agent_name="seller")
    replies = [
        posting("Posting.", "n0", "call-0"),
        posting(f"Deal at {SECRET}.", "n1", "call-1"),
        AIMessage("Done."),
    ]
    agent = replying_agent(
        replies, [hitl, kinguard] if review == "first" else [kinguard, hitl], ran
    )
    config = cfg()
    (asked,) = ask(agent, {"messages": [HumanMessage("hi")]}, config, use_async)["__interrupt__"]
    assert [r["args"] for r in asked.value["action_requests"]] == [{"note": "n0"}]
    held = ask(agent, Command(resume=APPROVE_CALLS), config, use_async)
    (halt,) = held["__interrupt__"]
    assert halt.value["verdict"]["action"] == "halt"
    assert held["messages"][-1].content == HELD_REPLY_NOTICE
    out = ask(agent, Command(resume={"type": decision}), config, use_async)
    if decision == "approve":
        (asked,) = out["__interrupt__"]
        assert [r["args"] for r in asked.value["action_requests"]] == [{"note": "n1"}]
        out = ask(agent, Command(resume=APPROVE_CALLS), config, use_async)
        assert out["messages"][-1].content == "Done."
    assert "__interrupt__" not in out
    assert ran == (["n0", "n1"] if decision == "approve" else ["n0"])
    answered = [m.tool_call_id for m in out["messages"] if isinstance(m, ToolMessage)]
    assert answered == (["call-0", "call-1"] if decision == "approve" else ["call-0"])
    assert HELD_REPLY_NOTICE not in repr(out["messages"])


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_a_reply_held_after_tool_results_streams_its_stand_in_then_itself(
    use_async: bool,
) -> None:
    """The ``messages`` stream shows the stand-in while the reply is held, then the approved
    reply: the stand-in has its own id, as a stream shows no message id twice."""
    replies = [
        posting("Posting.", "n0", "call-0"),
        posting(f"Deal at {SECRET}.", "n1", "call-1"),
        AIMessage("Done."),
    ]
    kinguard = KinGuardMiddleware(keyword_guard(Action.HALT), agent_name="seller")
    agent = replying_agent(replies, [kinguard], [])
    config = cfg()
    held = streamed_tokens(agent, {"messages": [HumanMessage("hi")]}, config, use_async)
    released = streamed_tokens(agent, Command(resume="approve"), config, use_async)
    assert list(texts_by_id(held).values()) == ["Posting.", HELD_REPLY_NOTICE]
    assert list(texts_by_id(released).values()) == [f"Deal at {SECRET}.", "Done."]


def test_a_reply_held_after_tool_results_leaves_their_calls_uncounted() -> None:
    """ToolCallLimitMiddleware listed after kinguard counts a reply's calls once: during the
    hold it counted the calls that had already run again, and stopped the approved one."""
    ran: list[str] = []
    replies = [
        posting("Posting.", "n0", "call-0"),
        posting(f"Deal at {SECRET}.", "n1", "call-1"),
        AIMessage("Done."),
    ]
    middleware = [
        KinGuardMiddleware(keyword_guard(Action.HALT), agent_name="seller"),
        ToolCallLimitMiddleware(thread_limit=2),
    ]
    agent = replying_agent(replies, middleware, ran)
    config = cfg()
    assert "__interrupt__" in agent.invoke({"messages": [HumanMessage("hi")]}, config)
    out = agent.invoke(Command(resume="approve"), config)
    assert ran == ["n0", "n1"]
    assert out["messages"][-1].content == "Done."


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("action", [Action.REDACT, Action.BLOCK, Action.HALT])
def test_a_reply_one_guard_releases_meets_the_other_guards_rules(
    action: Action, use_async: bool
) -> None:
    """Of two guards on one agent, the one listed first inspects the reply the other held and
    a person approved: it inspected the model call's reply without it, and never read it."""
    org = keyword_guard(action)
    team = keyword_guard(Action.HALT, "HALT-ME", "kin.mimicry")
    model = ScriptedChatModel(replies=[f"HALT-ME deal at {SECRET}."])
    agent = two_guard_agent(model, org, team)
    config = cfg()
    with capture_verdicts(org) as verdicts:
        first = ask(agent, {"messages": [HumanMessage("hi")]}, config, use_async)
        assert [i.value["node"] for i in first["__interrupt__"]] == ["team"]
        out = ask(agent, Command(resume="approve"), config, use_async)
        if action is Action.HALT:
            assert [i.value["node"] for i in out["__interrupt__"]] == ["org"]
            out = ask(agent, Command(resume={"type": "reject"}), config, use_async)
    assert [v.action for v in verdicts] == [action]
    assert "__interrupt__" not in out
    assert SECRET not in repr(out["messages"])
    assert model.calls == 1
    last = out["messages"][-1].content
    if action is Action.REDACT:
        assert last.startswith("HALT-ME deal at [redacted by kinguard")
    elif action is Action.BLOCK:
        assert last.startswith("[kinguard blocked")
    else:
        assert [m.content for m in out["messages"]] == ["hi"]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_the_pass_that_delivers_an_approved_reply_is_no_model_call(use_async: bool) -> None:
    """ModelCallLimitMiddleware listed after kinguard counts the model call while kinguard
    holds its reply; the pass through the model node that shows its hook the approved reply
    counted it again (and stopped the agent a call early)."""
    ran: list[str] = []
    middleware = [
        KinGuardMiddleware(keyword_guard(Action.HALT), agent_name="seller"),
        ModelCallLimitMiddleware(thread_limit=2),
    ]
    agent = replying_agent(
        [posting(f"Deal at {SECRET}.", "n0", "call-0"), AIMessage("Done.")], middleware, ran
    )
    config = cfg()
    assert "__interrupt__" in ask(agent, {"messages": [HumanMessage("hi")]}, config, use_async)
    out = ask(agent, Command(resume="approve"), config, use_async)
    assert ran == ["n0"]
    assert out["messages"][-1].content == "Done."
    assert agent.get_state(config).values["thread_model_call_count"] == 2


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_a_halt_without_a_checkpointer_blocks_the_reply_and_says_how_to_review_it(
    use_async: bool,
) -> None:
    # LangGraph cannot resume an interrupt without a checkpointer: the reply fails closed.
    agent, _, model = make(Action.HALT, [f"Price {SECRET}."], saver=False)
    with capture_logs() as logs:
        out = ask(agent, {"messages": [HumanMessage("Quote.")]}, {}, use_async)
    assert "__interrupt__" not in out and model.calls == 1
    assert out["messages"][-1].content == "[kinguard blocked a message from seller]"
    (blocked,) = [e for e in logs if e["event"] == "kinguard.halt_blocked"]
    assert blocked["log_level"] == "error" and blocked["reason"] == "no checkpointer"
    assert blocked["fix"] == "compile with a checkpointer to review halts"
    (decided,) = [e for e in logs if e["event"] == "kinguard.halt_decided"]
    assert decided["decision"] == "reject" and "no checkpointer" in decided["reason"]


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_agents_called_from_a_functional_api_workflow_are_guarded(decision: str) -> None:
    # guard_graph() takes a StateGraph; an @entrypoint workflow is guarded agent by agent.
    seller, guard, _ = make(Action.HALT, [f"Hold the price, {SECRET}."], saver=False)
    buyer_model = ScriptedChatModel(replies=["Noted."])
    buyer = create_agent(
        buyer_model,
        tools=[],
        system_prompt="You buy widgets.",
        middleware=[KinGuardMiddleware(guard, agent_name="buyer")],
    )

    @entrypoint(checkpointer=InMemorySaver())
    def workflow(task: str) -> str:
        said = seller.invoke({"messages": [HumanMessage(task)]})["messages"][-1]
        answer = buyer.invoke({"messages": [HumanMessage(str(said.content))]})["messages"][-1]
        return str(answer.content)

    config = cfg()
    halted = workflow.invoke("Quote a price.", config)
    assert halted["__interrupt__"][0].value["agent"] == "seller"
    assert buyer_model.inputs == []
    assert workflow.invoke(Command(resume={"type": decision}), config) == "Noted."
    buyer_saw = buyer_model.rendered_inputs()[0]
    assert (SECRET in buyer_saw) is (decision == "approve")
    assert guard.identity_block("buyer") in buyer_saw


def test_a_call_whose_arguments_conceal_rewrites_is_withheld_with_a_record() -> None:
    # Under conceal the verdict is an allow: no alert, no log line, nothing said that the
    # reply and its call never went out.
    ran: list[str] = []
    guard = KinGuard(AGENTS, identity="conceal", detectors=[])
    replies = [posting("Posting.", "I am GPT-4o, same as you", "call-0"), AIMessage("Done.")]
    agent = replying_agent(replies, [KinGuardMiddleware(guard, agent_name="seller")], ran)
    with capture_logs() as logs, capture_verdicts(guard) as verdicts:
        out = agent.invoke({"messages": [HumanMessage("hi")]}, cfg())
    assert ran == []  # the call never ran with the model's name in it
    assert "GPT-4o" not in repr(out["messages"])
    assert verdicts[0].action is Action.ALLOW
    (withheld,) = [e for e in logs if e["event"] == "kinguard.langgraph.calls_withheld"]
    assert (withheld["agent"], withheld["tools"], withheld["action"]) == (
        "seller",
        ["post_to_buyer"],
        "allow",
    )
    assert "GPT" not in repr(withheld)  # no content in the record
