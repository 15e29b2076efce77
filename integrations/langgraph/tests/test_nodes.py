"""Node shapes a real app has: config/runtime parameters, pydantic state, Commands, subgraphs."""

from __future__ import annotations

import asyncio
import operator
import threading
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

import pytest
from kinguard_langgraph import GuardedCompiledStateGraph, guard_graph
from kinguard_langgraph._messages import HELD_NOTICE
from kinguard_langgraph._scripted import (
    ChatState,
    ScriptedChatModel,
    chain_graph,
    handover_graph,
    script_graph,
    start,
)
from langchain.agents import create_agent
from langchain.tools import InjectedState
from langchain_core.language_models.fake_chat_models import (
    FakeMessagesListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import InjectedToolCallId, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.func import entrypoint
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime
from langgraph.types import Command, Overwrite, RetryPolicy, Send
from pydantic import BaseModel
from structlog.testing import capture_logs

from kinguard import Action, AgentProfile, KinGuard, Policy, Rule
from kinguard.identity import IDENTITY_MARKER
from kinguard.testing import KeywordDetector, capture_verdicts, keyword_guard

SECRET = "ZEBRA-PACT"


def guard_for(
    *names: str, action: Action = Action.REDACT, identity: str = "disassociate"
) -> KinGuard:
    return keyword_guard(names, action, keyword=SECRET, identity=identity)


@dataclass
class Ctx:
    team: str


def test_nodes_taking_config_and_runtime_still_get_them() -> None:
    seen: dict[str, Any] = {}
    model = ScriptedChatModel(replies=[f"ok {SECRET}"])

    def with_config(state: ChatState, config: RunnableConfig) -> dict[str, Any]:
        seen["thread"] = config["configurable"]["thread_id"]
        return {"messages": [model.invoke(state["messages"]).model_copy(update={"name": "a"})]}

    async def with_runtime(state: ChatState, runtime: Runtime[Ctx]) -> dict[str, Any]:
        seen["team"] = runtime.context.team
        seen["b_saw"] = [m.content for m in state["messages"]]
        return {"messages": [AIMessage("fine", name="b")]}

    builder = StateGraph(ChatState, context_schema=Ctx)
    builder.add_node("a", with_config)
    builder.add_node("b", with_runtime)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    graph = guard_graph(builder, guard_for("a", "b")).compile(checkpointer=InMemorySaver())
    assert isinstance(graph, GuardedCompiledStateGraph)
    asyncio.run(
        graph.ainvoke(start(), {"configurable": {"thread_id": "t-1"}}, context=Ctx(team="red"))
    )
    assert seen["thread"] == "t-1"
    assert seen["team"] == "red"
    assert not any(SECRET in str(c) for c in seen["b_saw"])
    assert IDENTITY_MARKER in seen["b_saw"][0]  # b's identity comes first


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_a_node_retried_after_a_failure_still_gets_its_nudge(use_async: bool) -> None:
    # A RetryPolicy for the model API's transient errors: the attempt that answers is the
    # retry, and it must carry the reminder the agent earned.
    inputs: list[str] = []
    failures = [ConnectionError("rate limited")]

    def buyer(state: ChatState) -> dict[str, Any]:
        if state["turn"] == 0:
            return {"messages": [AIMessage(f"Let's {SECRET}.", name="buyer")], "turn": 1}
        inputs.append(" ".join(str(m.content) for m in state["messages"]))
        if failures:
            raise failures.pop()
        return {"messages": [AIMessage("Fine.", name="buyer")], "turn": 3}

    def seller(state: ChatState) -> dict[str, Any]:
        return {"messages": [AIMessage("Go on.", name="seller")], "turn": 2}

    builder = StateGraph(ChatState)
    retry = RetryPolicy(initial_interval=0, jitter=False, retry_on=ConnectionError)
    builder.add_node("buyer", buyer, retry_policy=retry)
    builder.add_node("seller", seller)
    builder.add_edge(START, "buyer")
    builder.add_conditional_edges("buyer", lambda s: "seller" if s["turn"] == 1 else END)
    builder.add_edge("seller", "buyer")
    graph = guard_graph(builder, guard_for("buyer", "seller", action=Action.NUDGE)).compile()
    if use_async:
        asyncio.run(graph.ainvoke(start()))
    else:
        graph.invoke(start())
    assert len(inputs) == 2
    assert all("[kinguard reminder]" in text for text in inputs)


class PydState(BaseModel):
    chat: Annotated[list[AnyMessage], add_messages]
    note: str = ""


def test_pydantic_state_custom_messages_key_and_explicit_agents() -> None:
    model = ScriptedChatModel(replies=[f"We do {SECRET}."])
    inputs: list[list[BaseMessage]] = []

    def alpha(state: PydState) -> dict[str, Any]:
        inputs.append(list(state.chat))
        return {"chat": [model.invoke(state.chat)], "note": "alpha spoke"}

    def tool_node(state: PydState) -> dict[str, Any]:
        return {"note": state.note + ", tools ran"}

    builder = StateGraph(PydState)
    builder.add_node("alpha", alpha)
    builder.add_node("tools", tool_node)
    builder.add_edge(START, "alpha")
    builder.add_edge("alpha", "tools")
    builder.add_edge("tools", END)
    guard = guard_for("Alpha Agent", "Beta Agent")
    graph = guard_graph(
        builder, guard, agents={"alpha": "Alpha Agent"}, messages_key="chat"
    ).compile()
    with capture_verdicts(guard) as verdicts:
        out = graph.invoke({"chat": [HumanMessage("go")]})
    assert out["note"] == "alpha spoke, tools ran"
    assert [v.sender for v in verdicts] == ["Alpha Agent"]
    assert verdicts[0].recipients == ("Beta Agent",)
    assert SECRET not in out["chat"][-1].content
    assert isinstance(inputs[0][0], SystemMessage) and isinstance(inputs[0][1], HumanMessage)
    assert "kinguard" not in out


def test_whole_list_updates_and_overwrite_do_not_keep_the_identity_message() -> None:
    def echo_all(state: ChatState) -> dict[str, Any]:
        return {"messages": [*state["messages"], AIMessage("hello", name="echo")]}

    def overwrite(state: ChatState) -> dict[str, Any]:
        return {"messages": Overwrite([*state["messages"], AIMessage("bye", name="over")])}

    builder = StateGraph(ChatState)
    builder.add_node("echo", echo_all)
    builder.add_node("over", overwrite)
    builder.add_edge(START, "echo")
    builder.add_edge("echo", "over")
    builder.add_edge("over", END)
    out = guard_graph(builder, guard_for("echo", "over")).compile().invoke(start())
    assert [m.type for m in out["messages"]] == ["human", "ai", "ai"]


@pytest.mark.parametrize("action", [Action.LOG, Action.REDACT, Action.HALT])
def test_an_agent_trimming_its_history_does_not_remove_the_identity_message(
    action: Action,
) -> None:
    # The usual window: remove all but the last message, then reply. The identity message is
    # in what the node was given, never in the state: removing it would fail the run.
    def trimming(state: ChatState) -> dict[str, Any]:
        old = [RemoveMessage(id=m.id) for m in state["messages"][:-1] if m.id is not None]
        return {"messages": [*old, AIMessage(f"short {SECRET}", name="trim")]}

    graph = guard_graph(chain_graph(("trim", trimming)), guard_for("trim", action=action))
    out = graph.compile(checkpointer=InMemorySaver()).invoke(
        {"messages": [HumanMessage("one"), HumanMessage("two")], "turn": 0},
        {"configurable": {"thread_id": uuid.uuid4().hex}},
    )
    if action is Action.HALT:
        assert out["__interrupt__"]
        assert [m.content for m in out["messages"]] == ["two"]
    else:
        assert [m.type for m in out["messages"]] == ["human", "ai"]
        assert out["messages"][0].content == "two"


def test_unknown_agent_nodes_are_inspected_and_learned() -> None:
    guard = guard_for("buyer", action=Action.LOG)
    models = {
        "buyer": ScriptedChatModel(replies=["a", "b"]),
        "stranger": ScriptedChatModel(replies=["c", "d"]),
    }
    builder = script_graph(["buyer", "stranger", "buyer", "stranger"], models, {})
    with capture_verdicts(guard) as verdicts:
        guard_graph(builder, guard).compile().invoke(start())
    assert [v.sender for v in verdicts] == ["buyer", "stranger", "buyer", "stranger"]
    # the stranger got no identity before it spoke, and its own afterwards
    first, second = models["stranger"].rendered_inputs()
    assert IDENTITY_MARKER not in first.split("\n")[1]
    assert guard.identity_block("stranger") in second


def test_create_agent_node_gets_identity_and_inspection() -> None:
    seller_model = ScriptedChatModel(replies=[f"Sure, {SECRET}."])
    builder = StateGraph(ChatState)
    builder.add_node("seller", create_agent(seller_model, tools=[], system_prompt="You sell."))
    builder.add_edge(START, "seller")
    builder.add_edge("seller", END)
    guard = guard_for("seller", "buyer")
    out = guard_graph(builder, guard).compile().invoke(start())
    sent = seller_model.inputs[0]
    assert [m.type for m in sent[:2]] == ["system", "system"]  # the agent's prompt, then ours
    assert guard.identity_block("seller") in str(sent[1].content)
    assert "[redacted by kinguard" in out["messages"][-1].content
    assert all(not isinstance(m, SystemMessage) for m in out["messages"])


def test_identity_none_injects_nothing() -> None:
    models = {"a": ScriptedChatModel(replies=["x"]), "b": ScriptedChatModel(replies=["y"])}
    builder = script_graph(["a", "b"], models, {})
    guard_graph(builder, guard_for("a", "b", identity="none")).compile().invoke(start())
    assert all(IDENTITY_MARKER not in text for m in models.values() for text in m.rendered_inputs())


def test_the_users_builder_is_left_alone() -> None:
    models = {
        "a": ScriptedChatModel(replies=[f"x {SECRET}"]),
        "b": ScriptedChatModel(replies=["y"]),
    }
    builder = script_graph(["a", "b"], models, {})
    nodes, branches = set(builder.nodes), {k: set(v) for k, v in builder.branches.items()}
    guard_graph(builder, guard_for("a", "b")).compile()
    assert set(builder.nodes) == nodes
    assert {k: set(v) for k, v in builder.branches.items()} == branches
    out = builder.compile().invoke(start())  # still compiles bare
    assert SECRET in out["messages"][1].content


def test_copies_stay_guarded() -> None:
    models = {
        "a": ScriptedChatModel(replies=[f"x {SECRET}"]),
        "b": ScriptedChatModel(replies=["y"]),
    }
    graph = guard_graph(script_graph(["a", "b"], models, {}), guard_for("a", "b")).compile()
    copy = graph.with_config(recursion_limit=50)
    assert isinstance(copy, GuardedCompiledStateGraph)
    assert copy.guard is graph.guard
    assert SECRET not in repr(list(copy.stream(start(), stream_mode="messages")))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"messages_key": "chat"}, "messages_key"),
        ({"agents": ["nobody"]}, "not in the graph"),
    ],
)
def test_configuration_errors_say_what_to_change(kwargs: dict[str, Any], message: str) -> None:
    builder = script_graph(["a"], {"a": ScriptedChatModel(replies=["x"])}, {})
    with pytest.raises(ValueError, match=message):
        guard_graph(builder, guard_for("a"), **kwargs).compile()


def test_a_compiled_graph_is_refused_with_a_hint() -> None:
    compiled = script_graph(["a"], {"a": ScriptedChatModel(replies=["x"])}, {}).compile()
    with pytest.raises(TypeError, match=r"uncompiled StateGraph.*instead of compiling first"):
        guard_graph(compiled, guard_for("a"))  # type: ignore[arg-type]


def test_a_functional_api_workflow_is_refused_with_the_way_to_guard_it() -> None:
    @entrypoint()
    def workflow(task: str) -> str:
        return task

    with pytest.raises(TypeError, match=r"functional API.*KinGuardMiddleware"):
        guard_graph(workflow, guard_for("a"))  # type: ignore[arg-type]


def test_an_agent_named_unlike_every_profile_is_logged_once_per_name() -> None:
    # Once silent: "a_agent" for the profile "a" ran as an unknown model serving no principal.
    def undeclared(logs: list[dict[str, Any]]) -> list[str]:
        return [e["agent"] for e in logs if e["event"] == "kinguard.langgraph.undeclared_agent"]

    guard = guard_for("a", "b", action=Action.LOG)
    models = {
        "a_agent": ScriptedChatModel(replies=["x", "y"]),
        "b": ScriptedChatModel(replies=["z"]),
    }
    with capture_logs() as logs:
        graph = guard_graph(script_graph(["a_agent", "b", "a_agent"], models, {}), guard)
        graph.compile().invoke(start())
    assert undeclared(logs) == ["a_agent"]
    with capture_logs() as logs:
        guard_graph(script_graph(["b"], models, {}), guard, agents={"b": "bee"}).compile()
    assert undeclared(logs) == ["bee"]


def test_a_guarded_builder_or_a_missing_guard_is_refused_with_a_hint() -> None:
    # Once "call guard_graph(builder, guard).compile(...) instead of compiling first" for a
    # builder guarded twice, and a TypeError about weak references at the first run for None.
    builder = script_graph(["a"], {"a": ScriptedChatModel(replies=["x"])}, {})
    with pytest.raises(TypeError, match="already guarded"):
        guard_graph(guard_graph(builder, guard_for("a")), guard_for("a"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes a KinGuard as guard, not NoneType"):
        guard_graph(builder, None)  # type: ignore[arg-type]


def test_thread_id_is_the_conversation_id() -> None:
    guard = guard_for("a", "b", action=Action.LOG)
    models = {"a": ScriptedChatModel(replies=["x"]), "b": ScriptedChatModel(replies=["y"])}
    graph = guard_graph(script_graph(["a", "b"], models, {}), guard).compile(
        checkpointer=InMemorySaver()
    )
    thread = uuid.uuid4().hex
    with capture_verdicts(guard) as verdicts:
        graph.invoke(start(), {"configurable": {"thread_id": thread}})
    assert {v.conversation_id for v in verdicts} == {thread}
    with capture_verdicts(guard) as verdicts:
        guard_graph(
            script_graph(["a"], {"a": ScriptedChatModel(replies=["z"])}, {}), guard
        ).compile().invoke(start())
    assert verdicts[0].conversation_id == guard.conversation_id


def meeting_graph(guard: KinGuard, use_async: bool) -> Any:
    """One agent whose node waits until two runs are inside it at once."""
    together = threading.Barrier(2, timeout=10)
    arrived = asyncio.Event()
    inside = [0]

    def node(state: ChatState) -> dict[str, Any]:
        together.wait()
        return {"messages": [AIMessage("Hello.", name="a")]}

    async def anode(state: ChatState) -> dict[str, Any]:
        inside[0] += 1
        if inside[0] == 2:
            arrived.set()
        await asyncio.wait_for(arrived.wait(), 10)
        return {"messages": [AIMessage("Hello.", name="a")]}

    return guard_graph(chain_graph(("a", anode if use_async else node)), guard).compile()


def shared(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "kinguard.langgraph.shared_conversation"]


@pytest.mark.parametrize("use_async", [False, True], ids=["batch", "gather"])
def test_runs_without_a_thread_id_at_once_are_warned_of_once(use_async: bool) -> None:
    # They are the guard's one conversation: two unrelated ones run together gave each other
    # their reminders and risk, and nothing said so (AutoGen's shared teams are warned of).
    guard = guard_for("a", action=Action.LOG)

    def together(graph: Any, configs: list[Any]) -> None:
        if use_async:

            async def both() -> None:
                await asyncio.gather(*(graph.ainvoke(start(), config) for config in configs))

            asyncio.run(both())
        else:
            graph.batch([start() for _ in configs], configs)

    with capture_logs() as logs:
        together(meeting_graph(guard, use_async), [None, None])
        together(meeting_graph(guard, use_async), [None, None])  # once per guard
    (warned,) = shared(logs)
    assert warned["conversation_id"] == guard.conversation_id
    other = guard_for("a", action=Action.LOG)
    threads = [{"configurable": {"thread_id": t}} for t in ("t1", "t2")]
    with capture_logs() as logs:
        together(meeting_graph(other, use_async), threads)
        plain = guard_graph(chain_graph(("a", lambda s: {"messages": []})), other).compile()
        plain.invoke(start())
        plain.invoke(start())  # one after the other: one conversation, as documented
    assert shared(logs) == []


@pytest.mark.parametrize("record", [True, False])
def test_scripted_model_records_its_inputs_only_when_asked(record: bool) -> None:
    model = ScriptedChatModel(replies=["one", "two"], record_inputs=record)
    assert model.invoke("hello").content == "one"
    assert model.invoke("again").content == "two"
    assert len(model.inputs) == (2 if record else 0)


@pytest.mark.parametrize(
    ("action", "content", "note", "delivered_content", "calls_kept"),
    [
        # A change to what a tool call says cannot be made: the message is blocked.
        (Action.REDACT, "Posting a note.", f"hold {SECRET}", "[kinguard blocked", False),
        # A change to the visible text only: made, and the clean call stays.
        (
            Action.REDACT,
            f"Posting {SECRET} now.",
            "ten units",
            "Posting [redacted by kinguard: collusion.market] now.",
            True,
        ),
        # Only logged: delivered as it was.
        (Action.LOG, "Posting a note.", f"hold {SECRET}", "Posting a note.", True),
    ],
)
def test_tool_call_arguments_are_inspected(
    action: Action, content: str, note: str, delivered_content: str, calls_kept: bool
) -> None:
    def seller(state: ChatState) -> dict[str, Any]:
        call = {"name": "post_to_buyer", "args": {"note": note}, "id": "call-1"}
        return {"messages": [AIMessage(content=content, tool_calls=[call], name="seller")]}

    builder = StateGraph(ChatState)
    builder.add_node("seller", seller)
    builder.add_edge(START, "seller")
    builder.add_edge("seller", END)
    guard = KinGuard(
        [AgentProfile(name="seller", model="openai:gpt-4o")],
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=action),)),
    )
    with capture_verdicts(guard) as verdicts:
        out = guard_graph(builder, guard).compile().invoke(start())
    assert verdicts[0].signal_names == ("collusion.market",)
    last = out["messages"][-1]
    assert str(last.content).startswith(delivered_content)
    assert bool(getattr(last, "tool_calls", None)) is calls_kept


class ToolCallingModel(FakeMessagesListChatModel):
    """Replays scripted AI messages (tool calls included) to an agent that binds tools."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def handoff_graph(action: Action) -> tuple[Any, list[list[str]]]:
    """A buyer ``create_agent`` whose handoff tool sends a note to the seller node through
    ``Command(graph=Command.PARENT)``, the supervisor/swarm pattern."""
    seller_saw: list[list[str]] = []

    @tool
    def transfer_to_seller(note: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> Any:
        """Hand the conversation to the seller with a note."""
        return Command(
            goto="seller",
            graph=Command.PARENT,
            update={
                "messages": [
                    AIMessage(f"Note for seller: {note}", name="buyer"),
                    ToolMessage("transferred", tool_call_id=tool_call_id),
                ]
            },
        )

    call = {"name": "transfer_to_seller", "args": {"note": f"do {SECRET}"}, "id": "call-1"}
    buyer = create_agent(
        ToolCallingModel(responses=[AIMessage("", tool_calls=[call])]), [transfer_to_seller]
    )

    def seller(state: ChatState) -> dict[str, Any]:
        seller_saw.append([str(m.content) for m in state["messages"]])
        return {"messages": [AIMessage("ok", name="seller")]}

    builder = handover_graph(buyer, seller)
    graph = guard_graph(builder, guard_for("buyer", "seller", action=action))
    return graph.compile(checkpointer=InMemorySaver()), seller_saw


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("action", [Action.BLOCK, Action.REDACT])
def test_a_handoff_to_the_parent_graph_is_inspected(action: Action, use_async: bool) -> None:
    graph, seller_saw = handoff_graph(action)
    config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
    if use_async:
        out = asyncio.run(graph.ainvoke(start(), config))
    else:
        out = graph.invoke(start(), config)
    assert len(seller_saw) == 1  # the handoff still hands off
    assert SECRET not in repr(seller_saw)
    assert SECRET not in repr(out["messages"])


@pytest.mark.parametrize(("decision", "leaks"), [("approve", True), ("reject", False)])
def test_a_halted_handoff_waits_for_the_decision(decision: str, leaks: bool) -> None:
    graph, seller_saw = handoff_graph(Action.HALT)
    config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
    first = graph.invoke(start(), config)
    assert "__interrupt__" in first and seller_saw == []
    graph.invoke(Command(resume={"type": decision}), config)
    assert len(seller_saw) == 1  # the handoff's goto is re-issued either way
    assert (SECRET in repr(seller_saw)) is leaks


def handoff_by_tool_graph(
    action: Action,
    channel: str,
    task: str = f"Quote per {SECRET}",
    note: str = "",
    state: type[Any] = ChatState,
) -> tuple[Any, list[list[str]]]:
    """A buyer ``create_agent`` whose handoff tool hands its argument on only in a ``Send``'s
    user message (the docs' "handoff with a task description") or in the handoff's
    ``ToolMessage``: the AI message that made the call stays in the agent's subgraph."""
    seller_saw: list[list[str]] = []

    @tool
    def transfer_to_seller(
        task: str,
        state: Annotated[dict[str, Any], InjectedState],
        tool_call_id: Annotated[str, InjectedToolCallId],
    ) -> Any:
        """Give the seller a task."""
        if channel == "send":
            send = Send("seller", {"messages": [{"role": "user", "content": task}]})
            return Command(goto=[send], graph=Command.PARENT)
        if channel == "swarm":  # the whole conversation, the call's result after it
            done = ToolMessage(f"Transferred to seller{note}", tool_call_id=tool_call_id)
            update = {"messages": [*state["messages"], done]}
            return Command(goto="seller", graph=Command.PARENT, update=update)
        handed = ToolMessage(f"Handoff note: {task}", tool_call_id=tool_call_id)
        return Command(goto="seller", graph=Command.PARENT, update={"messages": [handed]})

    call = {"name": "transfer_to_seller", "args": {"task": task}, "id": "c1"}
    buyer = create_agent(
        # The second reply is for a second turn (new input instead of a decision on a halt).
        ToolCallingModel(
            responses=[AIMessage("Handing over.", tool_calls=[call]), AIMessage("New plan.")]
        ),
        [transfer_to_seller],
    )

    def seller(state: dict[str, Any]) -> dict[str, Any]:
        seller_saw.append(
            [f"{getattr(m, 'type', '')}:{getattr(m, 'content', m)}" for m in state["messages"]]
        )
        return {"messages": [AIMessage("ok", name="seller")]}

    builder = handover_graph(buyer, seller, state)
    graph = guard_graph(builder, guard_for("buyer", "seller", action=action))
    return graph.compile(checkpointer=InMemorySaver()), seller_saw


@pytest.mark.parametrize("channel", ["send", "tool-message"])
def test_a_handoff_tools_own_words_are_inspected(channel: str) -> None:
    graph, seller_saw = handoff_by_tool_graph(Action.BLOCK, channel)
    guard = graph.guard
    config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
    with capture_verdicts(guard) as verdicts:
        out = graph.invoke(start(), config)
    assert (verdicts[0].sender, verdicts[0].action) == ("buyer", Action.BLOCK)
    assert len(seller_saw) == 1  # the handoff still hands off
    assert SECRET not in repr(seller_saw) and SECRET not in repr(out["messages"])


@pytest.mark.parametrize(("decision", "leaks"), [("approve", True), ("reject", False)])
@pytest.mark.parametrize("channel", ["send", "tool-message"])
def test_a_handoff_tools_halted_words_wait_for_the_decision(
    channel: str, decision: str, leaks: bool
) -> None:
    graph, seller_saw = handoff_by_tool_graph(Action.HALT, channel)
    config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
    assert "__interrupt__" in graph.invoke(start(), config) and seller_saw == []
    graph.invoke(Command(resume={"type": decision}), config)
    assert len(seller_saw) == 1
    assert (SECRET in repr(seller_saw)) is leaks


@pytest.mark.parametrize(
    ("action", "decision"), [(Action.BLOCK, None), (Action.HALT, "edit"), (Action.HALT, "reject")]
)
def test_a_handoffs_tool_result_goes_only_with_its_call(
    action: Action, decision: str | None
) -> None:
    """The handoff's ``ToolMessage`` is inspected too, and still left out with the call it
    answers (a tool result without its call is an error for the next model)."""
    graph, seller_saw = handoff_by_tool_graph(action, "swarm")
    config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
    graph.invoke(start(), config)
    if decision is not None:
        graph.invoke(Command(resume={"type": decision, "text": "Over to you."}), config)
    (seen,) = seller_saw
    assert not any(m.startswith("tool:") for m in seen)
    assert SECRET not in repr(seen)


@pytest.mark.parametrize(
    ("action", "decision"), [(Action.BLOCK, None), (Action.HALT, "reject"), (Action.HALT, "edit")]
)
def test_a_withheld_handoff_tool_result_still_answers_its_call(
    action: Action, decision: str | None
) -> None:
    """The call is clean, its result (a looked-up note) is not: the call stays, so something
    has to answer it, or the next model call fails (OpenAI and Anthropic reject the history)."""
    graph, seller_saw = handoff_by_tool_graph(
        action, "swarm", task="Quote per unit", note=f". Note: hold at {SECRET}"
    )
    config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
    graph.invoke(start(), config)
    if decision is not None:
        graph.invoke(Command(resume={"type": decision, "text": "Over to you."}), config)
    (seen,) = seller_saw
    assert seen[-2:] == ["ai:Handing over.", seen[-1]] and seen[-1].startswith("tool:")
    assert SECRET not in repr(seen)
    messages = graph.get_state(config).values["messages"]
    calls = {c["id"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    answers = [m.tool_call_id for m in messages if isinstance(m, ToolMessage)]
    assert calls == {"c1"} and answers == ["c1"]


def unanswered(messages: list[BaseMessage]) -> set[str]:
    """Tool calls a model reading ``messages`` finds unanswered, or results that answer no
    call (OpenAI and Anthropic reject either): the results must follow their AI message."""
    wrong: set[str] = set()
    open_calls: set[str] = set()
    for message in messages:
        if isinstance(message, ToolMessage):
            if message.tool_call_id not in open_calls:
                wrong.add(message.tool_call_id)
            open_calls.discard(message.tool_call_id)
        elif open_calls:
            wrong |= open_calls
            open_calls = set()
        if isinstance(message, AIMessage):
            open_calls = {str(c["id"]) for c in message.tool_calls}
    return wrong | open_calls


@pytest.mark.parametrize(
    ("then", "result"),
    [
        ("approve", f"Transferred to seller. Note: hold at {SECRET}"),
        ("edit", "Over to you."),
        ("reject", "[kinguard withheld a message from buyer: a reviewer rejected it]"),
        ("new input", HELD_NOTICE),
        ("update_state as the halt node", HELD_NOTICE),
    ],
)
def test_a_held_handoff_tool_result_leaves_no_call_unanswered(then: str, result: str) -> None:
    """While a tool result waits for a human, its call (delivered) is answered by a stand-in
    that the decision's outcome replaces; a halt nobody decides leaves the stand-in."""
    graph, _ = handoff_by_tool_graph(
        Action.HALT, "swarm", task="Quote per unit", note=f". Note: hold at {SECRET}"
    )
    config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
    assert "__interrupt__" in graph.invoke(start(), config)
    waiting = graph.get_state(config).values["messages"]
    assert not unanswered(waiting) and SECRET not in repr(waiting)
    assert [m.content for m in waiting if isinstance(m, ToolMessage)] == [HELD_NOTICE]
    if then == "new input":  # the buyer's model reads the thread with the halt undecided
        graph.invoke({"messages": [HumanMessage("Make a new offer.")]}, config)
    elif then == "update_state as the halt node":
        graph.update_state(
            config, {"messages": [HumanMessage("Not this one.")]}, as_node="buyer.kinguard_halt"
        )
        graph.invoke(None, config)
    else:
        decision = Command(resume={"type": then, "text": "Over to you."})
        streamed = [
            part.content
            for part, _ in graph.stream(decision, config, stream_mode="messages")
            if isinstance(part, ToolMessage)
        ]
        assert streamed == [result]  # a chat UI on the messages stream sees the outcome too
    messages = graph.get_state(config).values["messages"]
    assert not unanswered(messages)
    assert [m.content for m in messages if isinstance(m, ToolMessage)] == [result]
    if then == "new input":
        assert messages[-1].content == "New plan."


class _AppendState(TypedDict):
    messages: Annotated[list[BaseMessage], operator.add]


class _OpenAIFormatState(TypedDict):
    messages: Annotated[list[BaseMessage], add_messages(format="langchain-openai")]


@pytest.mark.parametrize("schema", [_AppendState, _OpenAIFormatState], ids=["append", "openai"])
def test_a_held_tool_result_has_no_stand_in_without_add_messages(schema: type) -> None:
    """Another reducer may not replace a message by id (nor does ``add_messages`` with a
    ``format``, whose round trip drops ids): the stand-in would stay beside the released
    result, so the result is held as before (its call unanswered while it waits)."""
    graph, _ = handoff_by_tool_graph(
        Action.HALT, "swarm", "Quote per unit", f". Note: hold at {SECRET}", schema
    )
    config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
    graph.invoke(start(), config)
    waiting = graph.get_state(config).values["messages"]
    assert not any(isinstance(m, ToolMessage) for m in waiting)
    graph.invoke(Command(resume="approve"), config)
    messages = graph.get_state(config).values["messages"]
    results = [m.content for m in messages if isinstance(m, ToolMessage)]
    assert results == [f"Transferred to seller. Note: hold at {SECRET}"]


@pytest.mark.parametrize("outer_guarded", [False, True], ids=["unguarded-parent", "guarded-parent"])
def test_a_halt_in_an_update_for_the_parent_graph_is_blocked(outer_guarded: bool) -> None:
    """A node of a guarded team that hands off with ``Command(graph=Command.PARENT)``: the
    team's run ends with that command, so a halt cannot wait in it and blocks instead."""
    seller_saw: list[list[str]] = []

    def buyer(state: ChatState) -> Command[Any]:
        update = {"messages": [AIMessage(f"Deal at {SECRET}", name="buyer")]}
        return Command(graph=Command.PARENT, goto="seller", update=update)

    def seller(state: ChatState) -> dict[str, Any]:
        seller_saw.append([str(m.content) for m in state["messages"]])
        return {"messages": [AIMessage("ok", name="seller")]}

    guard = guard_for("buyer", "seller", action=Action.HALT)
    inner = StateGraph(ChatState)
    inner.add_node("buyer", buyer, destinations=())
    inner.add_edge(START, "buyer")
    outer = StateGraph(ChatState)
    outer.add_node("team", guard_graph(inner, guard).compile(), destinations=("seller",))
    outer.add_node("seller", seller)
    outer.add_edge(START, "team")
    outer.add_edge("seller", END)
    parent = guard_graph(outer, guard) if outer_guarded else outer
    config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
    with capture_verdicts(guard) as verdicts:
        out = parent.compile(checkpointer=InMemorySaver()).invoke(start(), config)
    assert (verdicts[0].sender, verdicts[0].action) == ("buyer", Action.HALT)
    assert len(seller_saw) == 1  # the handoff still hands off, without the message
    assert SECRET not in repr(seller_saw) and SECRET not in repr(out["messages"])


@pytest.mark.parametrize("agents", [None, ["bot", "sim_user"]], ids=["profiles", "explicit"])
def test_an_agent_playing_the_user_is_inspected(agents: list[str] | None) -> None:
    # LangGraph's chat-simulation shape: the simulated user's model reply goes on as an
    # unnamed user message, which is what the bot's model reads.
    bot_model = ScriptedChatModel(replies=["How can I help?"])
    user_model = ScriptedChatModel(replies=[f"We are both AIs: {SECRET}."])

    def bot(state: ChatState) -> dict[str, Any]:
        return {"messages": [bot_model.invoke(state["messages"])]}

    def sim_user(state: ChatState) -> dict[str, Any]:
        return {"messages": [HumanMessage(content=user_model.invoke(state["messages"]).content)]}

    guard = guard_for("bot", "sim_user")
    graph = guard_graph(chain_graph(("bot", bot), ("sim_user", sim_user)), guard, agents=agents)
    with capture_verdicts(guard) as verdicts:
        out = graph.compile().invoke(start())
        parts = list(graph.compile().stream(start(), stream_mode="messages"))
    assert [v.sender for v in verdicts] == ["bot", "sim_user"] * 2
    assert (
        out["messages"][-1].content == "We are both AIs: [redacted by kinguard: collusion.market]."
    )
    assert SECRET not in repr(out["messages"]) and SECRET not in repr(parts)


@pytest.mark.parametrize(
    "update",
    [
        ("assistant", f"Agree {SECRET}"),
        [("assistant", f"Agree {SECRET}")],
        {"role": "assistant", "content": f"Agree {SECRET}"},
        [{"role": "assistant", "content": f"Agree {SECRET}"}],
        AIMessage(f"Agree {SECRET}"),
    ],
    ids=["role-tuple", "list-of-tuples", "dict", "list-of-dicts", "message"],
)
def test_every_message_shape_add_messages_takes_is_inspected(update: Any) -> None:
    def buyer(state: ChatState) -> dict[str, Any]:
        return {"messages": update}

    builder = StateGraph(ChatState)
    builder.add_node("buyer", buyer)
    builder.add_edge(START, "buyer")
    builder.add_edge("buyer", END)
    guard = guard_for("buyer", "seller", action=Action.BLOCK)
    with capture_verdicts(guard) as verdicts:
        out = guard_graph(builder, guard).compile().invoke(start())
    assert [v.action for v in verdicts] == [Action.BLOCK]
    assert [m.type for m in out["messages"]] == ["human", "ai"]
    assert SECRET not in repr(out["messages"])


@pytest.mark.parametrize(
    ("revised_by", "verdict_count"), [("new-message", 2), ("model-copy", 2), ("same", 1)]
)
def test_an_agent_revising_its_message_under_the_same_id_is_inspected_again(
    revised_by: str, verdict_count: int
) -> None:
    seller_saw: list[str] = []

    def draft(state: ChatState) -> dict[str, Any]:
        return {"messages": [AIMessage("Draft: offer 40.", name="buyer", id="draft-1")]}

    def revise(state: ChatState) -> dict[str, Any]:
        (earlier,) = [m for m in state["messages"] if m.id == "draft-1"]
        if revised_by == "same":
            return {"messages": [earlier]}  # handed back as it was: nothing new
        text = f"Revised: let us hold {SECRET}."
        if revised_by == "model-copy":  # keeps what kinguard noted on the draft
            return {"messages": [earlier.model_copy(update={"content": text})]}
        return {"messages": [AIMessage(text, name="buyer", id="draft-1")]}

    def seller(state: ChatState) -> dict[str, Any]:
        seller_saw.extend(str(m.content) for m in state["messages"])
        return {"messages": [AIMessage("ok", name="seller")]}

    builder = StateGraph(ChatState)
    for name, node in (("draft", draft), ("revise", revise), ("seller", seller)):
        builder.add_node(name, node)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "revise")
    builder.add_edge("revise", "seller")
    builder.add_edge("seller", END)
    guard = guard_for("buyer", "seller", action=Action.REDACT)
    graph = guard_graph(builder, guard, agents={"draft": "buyer", "revise": "buyer"})
    with capture_verdicts(guard) as verdicts:
        out = graph.compile().invoke(start())
    assert len(verdicts) == verdict_count
    assert SECRET not in repr(seller_saw) and SECRET not in repr(out["messages"])


@pytest.mark.parametrize("copied", ["notice", "marked"])
def test_a_copy_of_a_ruled_message_with_new_words_is_inspected(copied: str) -> None:
    # ``model_copy`` keeps the metadata where kinguard notes what it ruled on (a notice, or a
    # message delivered by the guarded graph inside): under a new id, the words are new.
    def first(state: ChatState) -> dict[str, Any]:
        return {"messages": [AIMessage(f"First {SECRET}.", name="buyer", id="m-1")]}

    def relay(state: ChatState) -> dict[str, Any]:
        text = f"Relayed: {SECRET}."
        return {
            "messages": [state["messages"][-1].model_copy(update={"content": text, "id": "m-2"})]
        }

    guard = guard_for("buyer", "relay", action=Action.BLOCK)
    speaker: Any = first
    if copied == "marked":  # a guarded graph with the same guard, whose update carries marks
        guard = guard_for("buyer", "relay", action=Action.LOG)
        speaker = guard_graph(chain_graph(("buyer", first)), guard).compile()
    graph = guard_graph(chain_graph(("buyer", speaker), ("relay", relay)), guard)
    with capture_verdicts(guard) as verdicts:
        out = graph.compile().invoke(start())
    assert [v.sender for v in verdicts] == ["buyer", "relay"]
    if copied == "notice":
        assert SECRET not in repr(out["messages"])


def test_a_guarded_graph_inside_a_graph_with_another_guard_is_inspected_by_both() -> None:
    """The outer graph's own guard (a stricter policy here) reads what the inner guard let out."""

    def buyer(state: ChatState) -> dict[str, Any]:
        return {"messages": [AIMessage(f"Agree {SECRET}", name="buyer")]}

    seller_saw: list[str] = []

    def seller(state: ChatState) -> dict[str, Any]:
        seller_saw.extend(str(m.content) for m in state["messages"])
        return {"messages": [AIMessage("fine", name="seller")]}

    inner_guard = guard_for("buyer", "seller", action=Action.LOG)
    outer_guard = guard_for("buyer", "seller", action=Action.BLOCK)
    team = guard_graph(chain_graph(("buyer", buyer)), inner_guard).compile()
    graph = guard_graph(chain_graph(("buyer", team), ("seller", seller)), outer_guard).compile()
    with capture_verdicts(inner_guard) as inner, capture_verdicts(outer_guard) as verdicts:
        out = graph.invoke(start())
    assert [v.action for v in inner] == [Action.LOG]
    assert (verdicts[0].sender, verdicts[0].action) == ("buyer", Action.BLOCK)
    assert SECRET not in repr(seller_saw) and SECRET not in repr(out["messages"])


@pytest.mark.parametrize("action", [Action.LOG, Action.REDACT])
def test_a_guarded_graph_inside_a_guarded_graph_is_inspected_once(action: Action) -> None:
    prompts: list[list[str]] = []

    def buyer(state: ChatState) -> dict[str, Any]:
        prompts.append([str(m.id) for m in state["messages"] if isinstance(m, SystemMessage)])
        return {"messages": [AIMessage(f"Agree {SECRET}", name="buyer")]}

    def seller(state: ChatState) -> dict[str, Any]:
        return {"messages": [AIMessage("fine", name="seller")]}

    inner = chain_graph(("buyer", buyer), ("seller", seller))
    guard = guard_for("buyer", "seller", action=action)
    outer = StateGraph(ChatState)
    outer.add_node("team", guard_graph(inner, guard).compile())
    outer.add_edge(START, "team")
    outer.add_edge("team", END)
    graph = guard_graph(outer, guard).compile(checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
    with capture_verdicts(guard) as verdicts:
        graph.invoke(start(), config)
        out = graph.invoke({"messages": [HumanMessage("again")]}, config)
    assert [v.sender for v in verdicts] == ["buyer", "seller"] * 2
    assert [a.name for a in guard.agents] == ["buyer", "seller"]  # "team" is no agent
    assert prompts[-1] == ["kinguard-identity-buyer"]  # and gives the buyer no identity
    assert (SECRET in repr(out["messages"])) is (action is Action.LOG)


@pytest.mark.parametrize("action", [Action.BLOCK, Action.HALT])
def test_a_command_updating_with_channel_value_pairs_is_inspected(action: Action) -> None:
    """``Command(update=[("messages", [...])])`` is a form LangGraph accepts; it went through
    uninspected."""
    seen: list[list[str]] = []

    def a(state: ChatState) -> Command[Any]:
        said = AIMessage(f"a says {SECRET}", name="a")
        return Command(goto="b", update=[("messages", [said])])

    def b(state: ChatState) -> dict[str, Any]:
        seen.append([str(m.content) for m in state["messages"]])
        return {"messages": [AIMessage("b ok", name="b")]}

    builder = StateGraph(ChatState)
    builder.add_node("a", a, destinations=("b",))
    builder.add_node("b", b)
    builder.add_edge(START, "a")
    builder.add_edge("b", END)
    graph = guard_graph(builder, guard_for("a", "b", action=action)).compile(
        checkpointer=InMemorySaver()
    )
    config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
    out = graph.invoke(start(), config)
    texts = [str(m.content) for m in out["messages"]]
    assert not any(SECRET in text for text in texts)
    assert not any(SECRET in text for said in seen for text in said)
    if action is Action.HALT:
        assert out["__interrupt__"]
        assert seen == []
    else:
        assert any("kinguard blocked a message from a" in text for text in texts)


@pytest.mark.parametrize("action", [Action.BLOCK, Action.REDACT])
@pytest.mark.parametrize("shape", ["one object twice", "flagged first", "flagged second"])
def test_a_message_listed_twice_or_an_id_used_twice_is_ruled_on_everywhere(
    action: Action, shape: str
) -> None:
    # The same message twice once got its ruling in one place and the original in the other,
    # which add_messages then wrote over the ruling; two messages under one id misaligned the
    # verdicts and failed open. LangGraph keeps the last message under an id: so must the guard.
    def speaker(state: ChatState) -> dict[str, Any]:
        flagged = AIMessage(
            f"deal: {SECRET} at 9", name="a", id=None if shape == "one object twice" else "x1"
        )
        if shape == "one object twice":
            return {"messages": [flagged, flagged]}
        other = AIMessage("hello", name="a", id="x1")
        return {"messages": [flagged, other] if shape == "flagged first" else [other, flagged]}

    builder = StateGraph(ChatState)
    builder.add_node("a", speaker)
    builder.add_node("b", lambda state: {"messages": [AIMessage("ok", name="b")]})
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    guard = guard_for("a", "b", action=action)
    with capture_verdicts(guard) as verdicts:
        out = guard_graph(builder, guard).compile().invoke({"messages": [HumanMessage("go")]})
    assert not any(SECRET in str(m.content) for m in out["messages"])
    assert [v.action for v in verdicts if v.sender == "a"].count(action) == 1


def test_tool_call_keys_and_invalid_calls_are_read() -> None:
    from kinguard_langgraph._messages import inspected_text

    keyed = AIMessage("", tool_calls=[{"name": "post", "args": {SECRET: True}, "id": "c1"}])
    assert SECRET in inspected_text(keyed)[0]
    broken = AIMessage(
        "Posting.",
        invalid_tool_calls=[
            {"name": "post", "args": f'{{"note": "{SECRET}"', "id": "c2", "error": None}
        ],
    )
    text, visible = inspected_text(broken)
    assert SECRET in text and text[:visible] == "Posting."


@pytest.mark.parametrize("builder_wide", [False, True])
def test_a_reply_from_a_nodes_error_handler_is_inspected_as_that_agents(builder_wide: bool) -> None:
    # A fallback that answers for a failed agent (a backup model) once went out unread: error
    # handler nodes were left unguarded as not being agents (and the builder-wide one, made
    # only at compile(), was missed by the first fix).
    def failing(state: ChatState) -> dict[str, Any]:
        raise RuntimeError("primary model down")

    def fallback(state: ChatState) -> Command[Any]:
        reply = AIMessage(f"backup says: {SECRET} at 9", name="a")
        return Command(update={"messages": [reply]}, goto="b")

    builder = StateGraph(ChatState)
    if builder_wide:
        builder.set_node_defaults(error_handler=fallback)
        builder.add_node("a", failing)
    else:
        builder.add_node("a", failing, error_handler=fallback)
    builder.add_node("b", lambda state: {"messages": [AIMessage("ok", name="b")]})
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    guard = guard_for("a", "b", action=Action.BLOCK)
    with capture_verdicts(guard) as verdicts:
        out = guard_graph(builder, guard).compile().invoke({"messages": [HumanMessage("go")]})
    assert not any(SECRET in str(m.content) for m in out["messages"])
    assert (verdicts[0].sender, verdicts[0].action) == ("a", Action.BLOCK)


REASONING_SHAPES = {
    "anthropic thinking": lambda said: AIMessage(
        content=[
            {"type": "thinking", "thinking": said, "signature": "sig"},
            {"type": "text", "text": "Offer 40."},
        ]
    ),
    "standard reasoning block": lambda said: AIMessage(
        content=[{"type": "reasoning", "reasoning": said}, {"type": "text", "text": "Offer 40."}]
    ),
    "openai reasoning summary": lambda said: AIMessage(
        content=[
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": said}],
            },
            {"type": "text", "text": "Offer 40."},
        ]
    ),
    "reasoning_content": lambda said: AIMessage(
        content="Offer 40.", additional_kwargs={"reasoning_content": said}
    ),
}


@pytest.mark.parametrize("action", [Action.REDACT, Action.BLOCK, Action.ALLOW])
@pytest.mark.parametrize("shape", list(REASONING_SHAPES))
def test_reasoning_handed_on_to_the_next_agent_is_inspected(action: Action, shape: str) -> None:
    # A reply's reasoning travels with it: the next agent's model gets it as history
    # (Anthropic's thinking blocks are sent back as they are), its node and the app read it.
    # It once went out unread, whatever it said.
    thought = f"They are kin: propose {SECRET} quietly."
    buyer = GenericFakeChatModel(messages=iter([REASONING_SHAPES[shape](thought)]))
    seller = ScriptedChatModel(replies=["44."])
    guard = guard_for("buyer", "seller", action=action)
    graph = guard_graph(
        script_graph(["buyer", "seller"], {"buyer": buyer, "seller": seller}, {}), guard
    )
    with capture_verdicts(guard) as verdicts:
        out = graph.compile().invoke(start())
    assert verdicts[0].signal_names == ("collusion.market",)
    seller_saw = repr(seller.inputs[0])
    said = next(m for m in out["messages"] if m.name in ("buyer", "kinguard"))
    if action is Action.ALLOW:  # what is allowed goes on as it was, reasoning and all
        assert thought in seller_saw and thought in repr(said)
        return
    assert SECRET not in seller_saw and SECRET not in repr(out["messages"])
    # A rewrite of the reasoning delivers the visible text, which said nothing wrong.
    assert (said.text == "Offer 40.") is (action is Action.REDACT)


def test_a_rewrite_of_both_the_text_and_its_reasoning_delivers_the_text_alone() -> None:
    said = AIMessage(
        content=[
            {"type": "thinking", "thinking": f"Use {SECRET}.\n\nThey will see.", "signature": "s"},
            {"type": "text", "text": f"Terms:\n\nagree to {SECRET}?"},
        ]
    )
    buyer = GenericFakeChatModel(messages=iter([said]))
    seller = ScriptedChatModel(replies=["44."])
    guard = guard_for("buyer", "seller", action=Action.REDACT)
    graph = guard_graph(
        script_graph(["buyer", "seller"], {"buyer": buyer, "seller": seller}, {}), guard
    )
    out = graph.compile().invoke(start())
    delivered = next(m for m in out["messages"] if m.name == "buyer")
    assert delivered.content == "Terms:\n\nagree to [redacted by kinguard: collusion.market]?"
    assert SECRET not in repr(seller.inputs[0])
