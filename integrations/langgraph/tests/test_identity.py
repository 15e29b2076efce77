"""The identity block where real nodes move their messages: windows, copies, merges, other keys.

Each node gets its identity in its input only: whatever the node does with that input, the model
call it makes must carry the identity, and nothing the node writes back may.
"""

from __future__ import annotations

import asyncio
import dataclasses
import operator
import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import pytest
from kinguard_langgraph import KinGuardMiddleware, guard_graph
from kinguard_langgraph._scripted import ScriptedChatModel
from langchain.agents import create_agent
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    convert_to_openai_messages,
    filter_messages,
    merge_message_runs,
    trim_messages,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command
from pydantic import BaseModel

from kinguard import Action, KinGuard
from kinguard.identity import IDENTITY_MARKER, NUDGE_MARKER
from kinguard.testing import keyword_guard

SECRET = "ZEBRA-PACT"
PROMPT = "You negotiate for the buyer."


def guard_for(*names: str, identity: str = "disassociate") -> KinGuard:
    return keyword_guard(names, Action.NUDGE, keyword=SECRET, identity=identity)


def long_history(*system: str) -> list[BaseMessage]:
    """The app's system messages, then a conversation longer than the nodes' windows."""
    turns: list[BaseMessage] = [
        HumanMessage(f"offer {n}") if n % 2 == 0 else AIMessage(f"counter {n}", name="seller")
        for n in range(8)
    ]
    return [*(SystemMessage(text, id=f"sys-{n}") for n, text in enumerate(system)), *turns]


class HistoryState(TypedDict):
    messages: Annotated[list[BaseMessage], add_messages]
    history: list[BaseMessage]
    scratch: list[Any]


def run(
    node: Callable[[HistoryState], dict[str, Any]],
    messages: list[BaseMessage],
    identity: str = "disassociate",
) -> tuple[dict[str, Any], KinGuard]:
    builder = StateGraph(HistoryState)
    builder.add_node("buyer", node)
    builder.add_edge(START, "buyer")
    builder.add_edge("buyer", END)
    guard = guard_for("buyer", "seller", identity=identity)
    graph = guard_graph(builder, guard).compile(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": uuid.uuid4().hex}}
    out = graph.invoke({"messages": messages, "history": [], "scratch": []}, config)
    # What a later run reads: the checkpoint holds the state as the node's update left it.
    assert graph.get_state(config).values == out
    return out, guard


def windowed(model: ScriptedChatModel, window: Callable[[list[Any]], list[Any]]) -> Any:
    def buyer(state: HistoryState) -> dict[str, Any]:
        reply = model.invoke(window(state["messages"]))
        return {"messages": [reply.model_copy(update={"name": "buyer"})]}

    return buyer


def last_three(messages: list[Any]) -> list[Any]:
    return trim_messages(
        messages, max_tokens=3, token_counter=len, strategy="last", include_system=True
    )


@pytest.mark.parametrize("identity", ["disclose", "disassociate", "conceal"])
@pytest.mark.parametrize("system", [(PROMPT,), (PROMPT, "Be brief.")], ids=["one", "two"])
def test_a_trimmed_window_keeps_the_identity_and_the_state_keeps_the_apps_prompt(
    identity: str, system: tuple[str, ...]
) -> None:
    model = ScriptedChatModel(replies=["Forty."])
    messages = long_history(*system)
    out, guard = run(windowed(model, last_three), messages, identity)
    (sent,) = model.inputs
    assert [m.type for m in sent] == ["system", "human", "ai"]
    block = guard.identity_block("buyer")
    assert block is not None and str(sent[0].content) == f"{PROMPT}\n\n{block}"
    assert out["messages"][:-1] == messages  # the app's system messages as they were
    assert all(IDENTITY_MARKER not in str(m.content) for m in out["messages"])


def test_a_trimmed_window_without_an_app_prompt_keeps_the_identity() -> None:
    model = ScriptedChatModel(replies=["Forty."])
    out, guard = run(windowed(model, last_three), long_history())
    (sent,) = model.inputs
    assert str(sent[0].content) == guard.identity_block("buyer")
    assert [m.type for m in out["messages"]] == [*(m.type for m in long_history()), "ai"]


@pytest.mark.parametrize(
    "window",
    [
        lambda ms: filter_messages(ms, exclude_names=["seller"]),
        lambda ms: merge_message_runs(ms),
        lambda ms: [*ms[:1], *ms[-2:]],  # the app's prompt kept by hand, then the last turns
    ],
    ids=["filter", "merge-runs", "slice"],
)
def test_other_windows_that_keep_the_apps_prompt_keep_the_identity(
    window: Callable[[list[Any]], list[Any]],
) -> None:
    model = ScriptedChatModel(replies=["Forty."])
    messages = long_history(PROMPT, "Be brief.")
    out, guard = run(windowed(model, window), messages)
    (sent,) = model.inputs
    assert str(guard.identity_block("buyer")) in "\n".join(str(m.content) for m in sent)
    assert out["messages"][:-1] == messages


@pytest.mark.parametrize("shape", ["dict", "command", "command-pairs"])
def test_a_node_that_keeps_its_input_in_other_keys_stores_no_identity(shape: str) -> None:
    # The input kept whole (the very list), windowed, converted to dicts and appended to a
    # scratchpad that already holds something: the state gets it as the app had it.
    def buyer(state: HistoryState) -> Any:
        update = {
            "messages": [AIMessage("Forty.", name="buyer")],
            "history": state["messages"],
            "scratch": ["note", *convert_to_openai_messages(last_three(state["messages"]))],
        }
        if shape == "command-pairs":  # (channel, value) pairs, a form LangGraph accepts
            return Command(update=list(update.items()), goto=END)
        return Command(update=update, goto=END) if shape == "command" else update

    for system in [(PROMPT,), ()]:
        messages = long_history(*system)
        out, _ = run(buyer, messages)
        assert out["history"] == messages
        # (Without an app prompt, the identity took a place in the node's window.)
        window = [*messages[: len(system)], *messages[-2:]]
        assert out["scratch"] == ["note", *convert_to_openai_messages(window)]
        assert IDENTITY_MARKER not in repr(out)


class ModelState(BaseModel):
    messages: Annotated[list[AnyMessage], add_messages] = []
    history: list[AnyMessage] = []


@dataclasses.dataclass
class DataState:
    messages: Annotated[list[AnyMessage], add_messages] = dataclasses.field(default_factory=list)
    history: list[AnyMessage] = dataclasses.field(default_factory=list)


@pytest.mark.parametrize("schema", [ModelState, DataState], ids=["pydantic", "dataclass"])
@pytest.mark.parametrize("command", [False, True], ids=["state", "command"])
@pytest.mark.parametrize("system", [(PROMPT,), ()], ids=["app-prompt", "no-prompt"])
def test_a_state_object_update_that_keeps_the_input_stores_no_identity(
    schema: type[ModelState | DataState], command: bool, system: tuple[str, ...]
) -> None:
    def buyer(state: Any) -> Any:
        update = schema(messages=[AIMessage("Forty.", name="buyer")], history=state.messages)
        return Command(update=update, goto=END) if command else update

    builder = StateGraph(schema)
    builder.add_node("buyer", buyer)
    builder.add_edge(START, "buyer")
    builder.add_edge("buyer", END)
    messages = long_history(*system)
    graph = guard_graph(builder, guard_for("buyer", "seller")).compile()
    out = graph.invoke({"messages": messages})
    assert out["history"] == messages
    assert IDENTITY_MARKER not in repr(out)


def test_a_node_that_returns_its_merged_input_leaves_the_apps_prompt_as_it_made_it() -> None:
    # ``add_messages`` replaces the app's first system message with the node's merge of it.
    def buyer(state: HistoryState) -> dict[str, Any]:
        return {"messages": [*merge_message_runs(state["messages"]), AIMessage("Forty.")]}

    out, _ = run(buyer, long_history(PROMPT, "Be brief."))
    assert out["messages"][0].content == f"{PROMPT}\nBe brief."
    assert out["messages"][0].id == "sys-0"
    assert IDENTITY_MARKER not in repr(out)


class DictState(TypedDict):
    messages: list[dict[str, Any]]


class DictListState(TypedDict):
    messages: Annotated[list[dict[str, Any]], operator.add]


@pytest.mark.parametrize("system", [True, False], ids=["app-prompt", "no-prompt"])
def test_copied_identity_dicts_in_a_channel_without_a_reducer_leave_no_trace(
    system: bool,
) -> None:
    # The node copies every dict it was given (``dict(m)``: the identity's type is lost) and
    # hands the history back with its reply, as a channel without a reducer needs.
    sent: list[list[dict[str, Any]]] = []

    def node(name: str) -> Callable[[DictState], dict[str, Any]]:
        def call(state: DictState) -> dict[str, Any]:
            history = [dict(m) for m in state["messages"]]
            sent.append(history)
            return {"messages": [*history, {"role": "assistant", "content": f"{name} here"}]}

        return call

    builder = StateGraph(DictState)
    builder.add_node("a", node("a"))
    builder.add_node("b", node("b"))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    start = [{"role": "user", "content": "Offer a price."}]
    if system:
        start = [{"role": "system", "content": PROMPT}, *start]
    out = guard_graph(builder, guard_for("a", "b")).compile().invoke({"messages": start})
    assert out["messages"] == [
        *start,
        {"role": "assistant", "content": "a here"},
        {"role": "assistant", "content": "b here"},
    ]
    assert all(IDENTITY_MARKER in history[0]["content"] for history in sent)


def test_a_dict_list_channel_gets_the_identity_in_the_apps_prompt_once() -> None:
    seen: list[list[dict[str, Any]]] = []

    def a(state: DictListState) -> dict[str, Any]:
        seen.append(list(state["messages"]))
        return {"messages": [{"role": "assistant", "content": "Forty."}]}

    builder = StateGraph(DictListState)
    builder.add_node("a", a)
    builder.add_edge(START, "a")
    builder.add_edge("a", END)
    start = [{"role": "system", "content": PROMPT}, {"role": "user", "content": "Go."}]
    out = guard_graph(builder, guard_for("a", "b")).compile().invoke({"messages": start})
    assert out["messages"] == [*start, {"role": "assistant", "content": "Forty."}]
    ((first, user),) = seen
    assert first["content"].startswith(PROMPT) and first["content"].count(IDENTITY_MARKER) == 1
    assert user == start[1]


class PairListState(TypedDict, total=False):
    messages: Annotated[list[tuple[str, str]], operator.add]
    prompt: tuple[str, str]


def test_a_node_that_keeps_the_apps_prompt_pair_in_another_key_stores_no_identity() -> None:
    # One (role, text) pair under another key is one message, not a list of two strings.
    def a(state: PairListState) -> dict[str, Any]:
        return {"messages": [("assistant", "Forty.")], "prompt": state["messages"][0]}

    builder = StateGraph(PairListState)
    builder.add_node("a", a)
    builder.add_edge(START, "a")
    builder.add_edge("a", END)
    start = [("system", PROMPT), ("user", "Go.")]
    out = guard_graph(builder, guard_for("a", "b")).compile().invoke({"messages": start})
    assert out["prompt"] == ("system", PROMPT)
    assert IDENTITY_MARKER not in repr(out)


@pytest.mark.parametrize("identity", ["none", "disassociate"])
def test_a_nudge_in_the_apps_prompt_reaches_the_model_and_not_the_state(identity: str) -> None:
    # Under ``none`` the nudge goes in alone, with no identity block to be recognised by.
    models = {
        "buyer": ScriptedChatModel(replies=[f"Let's {SECRET}.", "Fine."]),
        "seller": ScriptedChatModel(replies=["Go on."]),
    }

    def agent(name: str) -> Callable[[HistoryState], dict[str, Any]]:
        def node(state: HistoryState) -> dict[str, Any]:
            reply = models[name].invoke(last_three(state["messages"]))
            return {
                "messages": [reply.model_copy(update={"name": name})],
                "history": state["messages"],
            }

        return node

    builder = StateGraph(HistoryState)
    for name in ("buyer", "seller"):
        builder.add_node(name, agent(name))
    builder.add_edge(START, "buyer")
    builder.add_conditional_edges(
        "buyer", lambda s: END if len(s["messages"]) > 3 else "seller", ["seller", END]
    )
    builder.add_edge("seller", "buyer")
    graph = guard_graph(builder, guard_for("buyer", "seller", identity=identity)).compile()
    start = [SystemMessage(PROMPT, id="sys"), HumanMessage("Begin.")]
    out = graph.invoke({"messages": start, "history": [], "scratch": []})
    assert "[kinguard reminder]" in str(models["buyer"].inputs[1][0].content)
    assert out["messages"][0] == start[0] and out["history"][0] == start[0]
    assert "kinguard" not in repr(out["history"])


def test_events_show_the_apps_prompt_without_the_identity() -> None:
    # ``astream_events`` shows the model's input as it starts and ends: the app's prompt as
    # the app wrote it.
    model = ScriptedChatModel(replies=["Forty."])
    builder = StateGraph(HistoryState)
    builder.add_node("buyer", windowed(model, last_three))
    builder.add_edge(START, "buyer")
    builder.add_edge("buyer", END)
    graph = guard_graph(builder, guard_for("buyer", "seller")).compile()
    messages = long_history(PROMPT)

    async def events() -> list[Any]:
        state = {"messages": messages, "history": [], "scratch": []}
        return [event async for event in graph.astream_events(state, version="v2")]

    seen = asyncio.run(events())
    shown = [
        event["data"]["input"]["messages"][0]
        for event in seen
        if event["event"] in ("on_chat_model_start", "on_chat_model_end")
    ]
    assert shown == [last_three(messages)] * 2
    assert IDENTITY_MARKER not in repr(seen)
    assert IDENTITY_MARKER in str(model.inputs[0][0].content)


@pytest.mark.parametrize("middleware", [False, True], ids=["plain", "with-middleware"])
def test_a_create_agent_node_gets_the_identity_once_inside_the_apps_prompt(
    middleware: bool,
) -> None:
    guard = guard_for("buyer", "seller")
    model = ScriptedChatModel(replies=["Forty."])
    guards = [KinGuardMiddleware(guard, agent_name="buyer")] if middleware else []
    agent = create_agent(model, tools=[], system_prompt="You buy.", middleware=guards)
    builder = StateGraph(HistoryState)
    builder.add_node("buyer", agent)
    builder.add_edge(START, "buyer")
    builder.add_edge("buyer", END)
    messages = long_history(PROMPT)
    out = guard_graph(builder, guard).compile().invoke({"messages": messages})
    (sent,) = model.inputs
    # The agent's own prompt, then the app's with the identity (the middleware sees it there).
    assert [m.type for m in sent[:2]] == ["system", "system"]
    assert "\n".join(str(m.content) for m in sent).count(IDENTITY_MARKER) == 1
    assert str(sent[1].content).startswith(PROMPT) and IDENTITY_MARKER in str(sent[1].content)
    assert out["messages"][:-1] == messages


def test_an_app_prompt_edited_in_place_reaches_the_model_as_edited() -> None:
    # kinguard keeps its copy of the app's prompt (with the identity) from turn to turn: an
    # app that edits its SystemMessage object between runs must not be given the old words.
    model = ScriptedChatModel(replies=["ok"] * 2)
    graph = guard_graph(
        single("buyer", lambda state: {"messages": [model.invoke(state["messages"])]}),
        guard_for("buyer", "seller"),
    ).compile()
    prompt = SystemMessage("Prompt version A.", id="sys")
    for version in ("A", "B"):
        prompt.content = f"Prompt version {version}."
        graph.invoke({"messages": [prompt, HumanMessage("hi")], "history": [], "scratch": []})
    firsts = [str(sent[0].content) for sent in model.inputs]
    assert [f.split("\n\n")[0] for f in firsts] == ["Prompt version A.", "Prompt version B."]
    assert all(IDENTITY_MARKER in f for f in firsts)


# -- a guarded graph as a node of a graph guarded by the same guard --------------------------


def single(name: str, node: Any, state: type = HistoryState) -> StateGraph[Any]:
    builder = StateGraph(state)
    builder.add_node(name, node)
    builder.add_edge(START, name)
    builder.add_edge(name, END)
    return builder


def identities(sent: list[Any]) -> list[str]:
    """Whose identity blocks a model was given (by their principals), as often as given."""
    text = "\n".join(str(m.content) for m in sent)
    owners = [
        name for name in ("buyer", "seller") for _ in range(text.count(f"agent of {name}'s owner"))
    ]
    assert len(owners) == text.count(IDENTITY_MARKER)
    return owners


@pytest.mark.parametrize("kind", ["node", "create_agent", "create_agent-middleware"])
@pytest.mark.parametrize("inner", ["buyer", "seller", "llm"])
def test_a_guarded_graph_as_a_node_gives_its_agent_one_identity(inner: str, kind: str) -> None:
    # The node that runs the agent gives it its identity: the inner graph's agent node (the
    # outer node's agent, or another), or the outer node when the inner graph only implements
    # it (its node is no agent).
    guard = guard_for("buyer", "seller")
    model = ScriptedChatModel(replies=["Forty."])
    node: Any = windowed(model, last_three)
    if kind != "node":
        agent = "seller" if inner == "seller" else "buyer"
        middleware = kind.endswith("middleware")
        guards = [KinGuardMiddleware(guard, agent_name=agent)] if middleware else []
        node = create_agent(model, tools=[], middleware=guards)
    # An implementation's node is no agent: ``agents`` says so (its messages are the outer's).
    child = guard_graph(single(inner, node), guard, agents=[] if inner == "llm" else None)
    messages = long_history(PROMPT)
    parent = guard_graph(single("buyer", child.compile()), guard).compile()
    out = parent.invoke({"messages": messages})
    (sent,) = model.inputs
    assert identities(sent) == ["seller" if inner == "seller" else "buyer"]
    assert str(sent[0].content).startswith(PROMPT)
    assert out["messages"][: len(messages)] == messages
    assert IDENTITY_MARKER not in repr(out)


@pytest.mark.parametrize("system", [True, False], ids=["app-prompt", "no-prompt"])
def test_a_guarded_graph_called_from_a_node_gives_a_dict_channel_one_identity(
    system: bool,
) -> None:
    seen: list[list[dict[str, Any]]] = []

    def seller(state: DictListState) -> dict[str, Any]:
        seen.append(list(state["messages"]))
        return {"messages": [{"role": "assistant", "content": "Forty."}]}

    child = guard_graph(single("seller", seller, DictListState), guard_for("buyer", "seller"))
    inner = child.compile()

    def buyer(state: DictListState) -> dict[str, Any]:
        out = inner.invoke(state)
        return {"messages": out["messages"][len(state["messages"]) :]}

    guard = child.guard
    start = [{"role": "user", "content": "Go."}]
    if system:
        start = [{"role": "system", "content": PROMPT}, *start]
    parent = guard_graph(single("buyer", buyer, DictListState), guard).compile()
    out = parent.invoke({"messages": start})
    assert out["messages"] == [*start, {"role": "assistant", "content": "Forty."}]
    ((first, *rest),) = seen
    assert first["role"] == "system" and first["content"].count(IDENTITY_MARKER) == 1
    assert identities([SystemMessage(first["content"])]) == ["seller"]
    assert first["content"].startswith(PROMPT) == system and rest == start[system:]


def test_a_nudge_reaches_a_guarded_graphs_agent_once() -> None:
    guard = guard_for("buyer", "seller")
    model = ScriptedChatModel(replies=[f"Let's {SECRET}.", "Fine."])
    child = guard_graph(single("buyer", windowed(model, last_three)), guard).compile()
    parent = guard_graph(single("buyer", child), guard).compile()
    messages = long_history(PROMPT)
    parent.invoke({"messages": messages})
    parent.invoke({"messages": messages})  # the same conversation: the nudge is pending
    text = str(model.inputs[1][0].content)
    assert text.count(NUDGE_MARKER) == 1 and text.count(IDENTITY_MARKER) == 1
    assert guard.peek_nudge("buyer") is None


def test_a_guarded_graphs_other_agent_is_not_given_the_enclosing_agents_nudge() -> None:
    # Under ``none`` the seller has nothing to give in place of the buyer's nudge.
    guard = guard_for("buyer", "seller", identity="none")
    said = AIMessage(f"Let's {SECRET}.", name="buyer")
    guard_graph(single("buyer", lambda state: {"messages": [said]}), guard).compile().invoke(
        {"messages": long_history(PROMPT)}
    )
    assert guard.peek_nudge("buyer") is not None
    model = ScriptedChatModel(replies=["Forty."])
    child = guard_graph(single("seller", windowed(model, last_three)), guard).compile()
    parent = guard_graph(single("buyer", child), guard).compile()
    messages = long_history(PROMPT)
    out = parent.invoke({"messages": messages})
    assert model.inputs[0][0] == messages[0]
    assert out["messages"][: len(messages)] == messages
