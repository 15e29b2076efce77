"""The adapter's fast paths keep the guarantees of the general ones.

* a policy without a halt rule gets no halt nodes, routers or gated paths, and still guards
  (and a policy with one still halts);
* an update every verdict lets through is returned without being rebuilt, and never changed in
  the user's hands;
* the private channel is cheap to copy and behaves like its reducer;
* an agent subgraph (``create_agent``) that hands back its whole history takes the same fast
  path, its identity taken out;
* the ids of a long history are extended from turn to turn, never guessed;
* ``invoke`` skips the stream gate's cleaning only where nothing private can reach the caller.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from kinguard_langgraph import GUARD_KEY, guard_graph
from kinguard_langgraph._core import GraphCore, InputIds, _message_ids
from kinguard_langgraph._scripted import (
    ChatState,
    ScriptedChatModel,
    delivered,
    script_graph,
    start,
)
from kinguard_langgraph._state import GuardStateChannel, merge_guard_channel
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from kinguard import Action, AgentProfile, KinGuard, Message, Policy, Rule, Verdict
from kinguard.identity import IDENTITY_MARKER
from kinguard.testing import KeywordDetector, capture_verdicts

SECRET = "ZEBRA-PACT"
AGENTS = (
    AgentProfile(name="a", model="openai:gpt-4o"),
    AgentProfile(name="b", model="openai:gpt-4o"),
)


def guard_with(action: Action) -> KinGuard:
    return KinGuard(
        AGENTS,
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=action),)),
    )


def cfg() -> dict[str, Any]:
    return {"configurable": {"thread_id": uuid.uuid4().hex}}


def static_builder(calls: list[str]) -> StateGraph[Any, Any, Any, Any]:
    """a -> b -> END through static edges (the shape that needs a router when halts exist)."""

    def a(state: ChatState) -> dict[str, Any]:
        calls.append("a")
        return {"messages": [AIMessage(f"Let us {SECRET}.", name="a")]}

    def b(state: ChatState) -> dict[str, Any]:
        calls.append("b")
        return {"messages": [AIMessage("Noted.", name="b")], "turn": 1}

    builder: StateGraph[Any, Any, Any, Any] = StateGraph(ChatState)
    builder.add_node("a", a)
    builder.add_node("b", b)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    return builder


def halt_nodes(graph: Any) -> list[str]:
    return sorted(name for name in graph.nodes if "kinguard_halt" in name)


# -- wiring by policy ----------------------------------------------------------------------------


@pytest.mark.parametrize("action", [Action.LOG, Action.REDACT, Action.BLOCK])
def test_a_policy_without_halt_keeps_the_users_wiring_and_still_guards(action: Action) -> None:
    calls: list[str] = []
    builder = static_builder(calls)
    graph = guard_graph(builder, guard_with(action)).compile(checkpointer=InMemorySaver())
    assert halt_nodes(graph) == []
    assert set(graph.builder.nodes) == set(builder.nodes)
    assert set(graph.builder.edges) == set(builder.edges)
    assert not any(graph.builder.branches.values())

    out = graph.invoke(start(), cfg())
    assert calls == ["a", "b"]
    assert "__interrupt__" not in out
    texts = [text for _, text in delivered(out["messages"])]
    assert len(texts) == 2
    assert (SECRET in texts[0]) == (action is Action.LOG)


def test_a_policy_without_halt_keeps_conditional_edges_untouched() -> None:
    models = {"a": ScriptedChatModel(replies=["x"]), "b": ScriptedChatModel(replies=["y"])}
    builder = script_graph(["a", "b", "a"], models, {})
    graph = guard_graph(builder, guard_with(Action.REDACT)).compile()
    assert halt_nodes(graph) == []
    for node, branches in builder.branches.items():
        assert graph.builder.branches[node] == branches  # the user's own BranchSpecs
    assert graph.invoke(start())["turn"] == 3


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_a_policy_with_halt_is_wired_and_halts(use_async: bool) -> None:
    calls: list[str] = []
    graph = guard_graph(static_builder(calls), guard_with(Action.HALT)).compile(
        checkpointer=InMemorySaver()
    )
    assert halt_nodes(graph) == ["a.kinguard_halt", "b.kinguard_halt"]
    config = cfg()

    def run(value: Any) -> Any:
        if use_async:
            return asyncio.run(graph.ainvoke(value, config))
        return graph.invoke(value, config)

    first = run(start())
    assert first["__interrupt__"][0].value["agent"] == "a"
    assert calls == ["a"]
    final = run(Command(resume={"type": "edit", "text": "Let us talk."}))
    assert calls == ["a", "b"]
    assert [text for _, text in delivered(final["messages"])] == ["Let us talk.", "Noted."]


class HaltingAnyway(KinGuard):
    """A guard subclass whose verdicts halt although its policy has no halt rule."""

    def inspect(self, message: Message) -> Verdict:
        verdict = super().inspect(message)
        if SECRET in message.text:
            return verdict.model_copy(update={"action": Action.HALT, "notice": "[held]"})
        return verdict


def test_a_halt_from_a_graph_without_halt_nodes_fails_closed() -> None:
    calls: list[str] = []
    guard = HaltingAnyway(
        AGENTS,
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action.LOG),)),
    )
    graph = guard_graph(static_builder(calls), guard).compile(checkpointer=InMemorySaver())
    assert halt_nodes(graph) == []
    out = graph.invoke(start(), cfg())
    assert "__interrupt__" not in out
    assert calls == ["a", "b"]
    assert SECRET not in repr(out["messages"])
    assert [text for _, text in delivered(out["messages"])] == ["[held]", "Noted."]


def test_guard_state_rides_the_checkpoint_without_halt_nodes() -> None:
    saver = InMemorySaver()
    graph = guard_graph(static_builder([]), guard_with(Action.LOG)).compile(checkpointer=saver)
    config = cfg()
    out = graph.invoke(start(), config)
    assert GUARD_KEY not in out
    assert GUARD_KEY not in graph.get_state(config).values
    saved = saver.get_tuple(config)
    assert saved is not None
    channel = saved.checkpoint["channel_values"][GUARD_KEY]
    assert channel["rev"] >= 2 and channel["guard"]


# -- updates that need no rewrite ------------------------------------------------------------------


def test_the_users_update_is_never_changed_in_place() -> None:
    returned: list[dict[str, Any]] = []

    def speaker(state: ChatState) -> dict[str, Any]:
        update = {"messages": [AIMessage(f"x {SECRET}", name="a", id="m-1")]}
        returned.append(update)
        return update

    builder: StateGraph[Any, Any, Any, Any] = StateGraph(ChatState)
    builder.add_node("a", speaker)
    builder.add_edge(START, "a")
    builder.add_edge("a", END)
    for action in (Action.LOG, Action.REDACT):
        graph = guard_graph(builder, guard_with(action)).compile(checkpointer=InMemorySaver())
        out = graph.invoke(start(), cfg())
        update = returned[-1]
        assert list(update) == ["messages"]  # no private channel added to the user's dict
        assert update["messages"][0].content == f"x {SECRET}"  # the user's message unchanged
        assert (SECRET in out["messages"][-1].content) == (action is Action.LOG)
        assert out["messages"][-1].id == "m-1"


def test_a_message_without_id_gets_one_and_is_inspected() -> None:
    def speaker(state: ChatState) -> dict[str, Any]:
        return {"messages": AIMessage(f"x {SECRET}", name="a")}  # one message, not a list

    builder: StateGraph[Any, Any, Any, Any] = StateGraph(ChatState)
    builder.add_node("a", speaker)
    builder.add_edge(START, "a")
    builder.add_edge("a", END)
    guard = guard_with(Action.REDACT)
    with capture_verdicts(guard) as verdicts:
        out = guard_graph(builder, guard).compile().invoke(start())
    assert len(verdicts) == 1
    assert SECRET not in out["messages"][-1].content
    assert out["messages"][-1].id


@pytest.mark.parametrize("prompt", [False, True], ids=["no-app-prompt", "app-prompt"])
def test_an_agent_subgraph_handing_back_its_history_takes_the_fast_path(
    prompt: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ``create_agent`` as a node returns every message it was given, kinguard's identity
    # first, before its reply: all but the reply are read in place and passed on as they are.
    rewrites: list[object] = []
    collect = GraphCore.collect
    monkeypatch.setattr(
        GraphCore, "collect", lambda *args: rewrites.append(args[2]) or collect(*args)
    )
    models = {n: ScriptedChatModel(replies=[f"{n} speaks {SECRET}."]) for n in ("a", "b")}
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(ChatState)
    for name, model in models.items():
        builder.add_node(name, create_agent(model, tools=[], system_prompt=f"You are {name}."))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    guard = KinGuard(AGENTS, identity="disassociate", detectors=[KeywordDetector(SECRET)])
    given = [SystemMessage("Be brief.", id="app")] if prompt else []
    given.append(HumanMessage("Go.", id="go"))
    with capture_verdicts(guard) as verdicts:
        out = guard_graph(builder, guard).compile().invoke({"messages": given, "turn": 0})
    assert rewrites == []
    assert [v.sender for v in verdicts] == ["a", "b"]
    assert out["messages"][: len(given)] == given  # the app's own prompt, as it was
    assert [m.content for m in out["messages"][len(given) :]] == [
        f"a speaks {SECRET}.",
        f"b speaks {SECRET}.",
    ]
    assert IDENTITY_MARKER not in repr(out)
    assert all(IDENTITY_MARKER in repr(model.inputs) for model in models.values())


@pytest.mark.parametrize("change", ["append", "replace"])
def test_a_node_that_changes_its_input_list_in_place_and_returns_it_is_read(change: str) -> None:
    # The list a node is given is kinguard's (the identity in front): what it adds or changes
    # in place must not pass for what it was given.
    def speaker(state: ChatState) -> dict[str, Any]:
        messages = state["messages"]
        said = AIMessage(f"x {SECRET}", name="a", id="said")
        if change == "append":
            messages.append(said)
        else:  # a revision of the last message it was given, under that message's id
            messages[-1] = said.model_copy(update={"id": messages[-1].id})
        return {"messages": messages}

    builder: StateGraph[Any, Any, Any, Any] = StateGraph(ChatState)
    builder.add_node("a", speaker)
    builder.add_edge(START, "a")
    builder.add_edge("a", END)
    guard = KinGuard(
        AGENTS,
        identity="disassociate",
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action.REDACT),)),
    )
    with capture_verdicts(guard) as verdicts:
        out = guard_graph(builder, guard).compile().invoke(start())
    assert [v.sender for v in verdicts] == ["a"]
    assert SECRET not in repr(out["messages"])
    assert IDENTITY_MARKER not in repr(out)


# -- ids of the history ----------------------------------------------------------------------------


def history(n: int, prefix: str = "h") -> list[Any]:
    return [AIMessage(f"old {i}", id=f"{prefix}-{i}", name="b") for i in range(n)]


def test_input_ids_extend_the_previous_history_and_match_a_full_read() -> None:
    index = InputIds()
    messages = history(60)
    base, recent = index.ids("c", messages)
    assert base | recent == _message_ids(messages)
    for step in range(40):  # across several merges of the recent ids into the base
        messages = [*messages, AIMessage(f"new {step}", id=f"n-{step}")]
        base, recent = index.ids("c", messages)
        assert base | recent == _message_ids(messages)


def test_input_ids_of_a_history_that_is_not_an_extension_are_read_in_full() -> None:
    index = InputIds()
    messages = history(60)
    index.ids("c", messages)
    removed = messages[:10] + messages[11:] + [AIMessage("new", id="n-1")]
    base, recent = index.ids("c", removed)
    assert "h-10" not in base | recent
    assert base | recent == _message_ids(removed)
    replaced = [*removed[:-1], AIMessage("other", id="n-2")]  # same length, another message
    base, recent = index.ids("c", replaced)
    assert base | recent == _message_ids(replaced)


def test_input_ids_are_not_fooled_by_a_list_changed_in_place() -> None:
    index = InputIds()
    messages = history(60)
    index.ids("c", messages)
    del messages[5]  # the node's own list, changed after it was read
    messages.append(AIMessage("new", id="n-1"))
    base, recent = index.ids("c", messages)
    assert "h-5" not in base | recent
    assert base | recent == _message_ids(messages)


def test_input_ids_are_kept_per_conversation() -> None:
    index = InputIds()
    one, two = history(60, "one"), history(70, "two")
    index.ids("1", one)
    index.ids("2", two)
    one.append(AIMessage("new", id="n-1"))
    base, recent = index.ids("1", one)
    assert base | recent == _message_ids(one)
    assert not (base | recent) & _message_ids(two)


def test_a_long_history_passed_back_whole_is_not_inspected_again() -> None:
    def echo_all(state: ChatState) -> dict[str, Any]:
        turn = state["turn"]
        new = AIMessage(f"turn {turn}", name="a", id=f"t-{turn}")
        return {"messages": [*state["messages"], new], "turn": turn + 1}

    def route(state: ChatState) -> str:
        return "a" if state["turn"] < 5 else END

    builder: StateGraph[Any, Any, Any, Any] = StateGraph(ChatState)
    builder.add_node("a", echo_all)
    builder.add_edge(START, "a")
    builder.add_conditional_edges("a", route, ["a", END])
    guard = guard_with(Action.LOG)
    graph = guard_graph(builder, guard).compile()
    long = [HumanMessage("go", id="go"), *history(InputIds._MIN_LENGTH + 10)]
    with capture_verdicts(guard) as verdicts:
        out = graph.invoke({"messages": long, "turn": 0})
    assert [v.sender for v in verdicts] == ["a"] * 5  # only each turn's own message
    assert len(out["messages"]) == len(long) + 5


# -- the private channel -----------------------------------------------------------------------


def test_the_private_channel_reduces_like_merge_guard_channel() -> None:
    updates: list[dict[str, Any]] = [
        {"rev": 1, "guard": {"r": 1}, "pending": {"t1": {"node": "a"}, "t0": None}},
        {"rev": 3, "guard": {"r": 3}},
        {"rev": 2, "guard": {"r": 2}, "pending": {"t2": {"node": "b"}}},
        {"pending": {"t1": None}},
    ]
    channel = GuardStateChannel().from_checkpoint(None)
    expected: dict[str, Any] = {}
    for update in updates:
        copy = channel.copy()
        assert channel.update([update])
        expected = merge_guard_channel(expected, update)
        assert channel.get() == expected
        assert copy.get() != channel.get()  # a copy does not follow the original
    assert channel.get() == {"rev": 3, "guard": {"r": 3}, "pending": {"t2": {"node": "b"}}}
    assert not channel.update([])
    restored = GuardStateChannel().from_checkpoint(channel.checkpoint())
    assert restored.get() == channel.get()
    assert restored.is_available() and GuardStateChannel() == restored


# -- invoke and streams ------------------------------------------------------------------------


def has_private_key(payload: Any) -> bool:
    """The channel's value (a dict under its key, or a write ``(key, value)``) is in payload.

    (A halt's interrupt payload says ``"kinguard": "halt"``: that is not the channel.)
    """
    if isinstance(payload, dict):
        if isinstance(payload.get(GUARD_KEY), dict):
            return True
        return any(has_private_key(v) for v in payload.values())
    if isinstance(payload, (list, tuple)):
        if len(payload) == 2 and payload[0] == GUARD_KEY:
            return True
        return any(has_private_key(v) for v in payload)
    return False


@pytest.mark.parametrize("action", [Action.REDACT, Action.HALT])
def test_invoke_and_stream_in_every_mode_hide_the_private_channel(action: Action) -> None:
    graph = guard_graph(static_builder([]), guard_with(action)).compile(
        checkpointer=InMemorySaver()
    )
    for mode in ("values", "updates", "tasks", "debug", "checkpoints"):
        chunks = graph.invoke(start(), cfg(), stream_mode=mode)
        assert chunks and not has_private_key(chunks), mode
        if action is Action.REDACT:  # (a halt's interrupt shows the reviewer the message)
            assert SECRET not in repr(chunks), mode
    streamed = list(graph.stream(start(), cfg(), stream_mode=["values", "updates", "tasks"]))
    assert streamed and not has_private_key(streamed)
    config = cfg()
    out = graph.invoke(start(), config)
    assert not has_private_key(out)
    assert SECRET not in repr(out["messages"])
    assert ("__interrupt__" in out) == (action is Action.HALT)


def test_ainvoke_restores_the_guard_state_of_the_thread() -> None:
    saver = InMemorySaver()
    config = cfg()
    first = guard_graph(static_builder([]), guard_with(Action.LOG)).compile(checkpointer=saver)
    first.invoke(start(), config)
    second_guard = guard_with(Action.LOG)
    second = guard_graph(static_builder([]), second_guard).compile(checkpointer=saver)
    with capture_verdicts(second_guard) as verdicts:
        asyncio.run(second.ainvoke({"messages": [], "turn": 0}, config))
    assert verdicts[0].conversation_risk > verdicts[0].message_risk
