"""Apps whose messages channel holds plain strings, which their nodes join into one prompt."""

from __future__ import annotations

import asyncio
import operator
import uuid
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypedDict

import pytest
from kinguard_langgraph import guard_graph
from kinguard_langgraph._scripted import ScriptedChatModel
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from kinguard import Action, KinGuard, Rule
from kinguard.identity import IDENTITY_MARKER, NUDGE_MARKER
from kinguard.testing import capture_verdicts, keyword_guard

SECRET = "ZEBRA-PACT"
REPLY = f"Ten at 40, {SECRET}."
REDACTED = "Ten at 40, [redacted by kinguard: collusion.market]."
TASK = "Offer a price."


class AddState(TypedDict):
    messages: Annotated[list[str], operator.add]


class FullState(TypedDict):
    messages: list[str]  # no reducer: each node writes the whole history back


SCHEMAS = [AddState, FullState]
SCHEMA_IDS = ["operator.add", "no reducer"]


def guard_for(
    *names: str, action: Action, identity: str = "disassociate", rule: Rule | None = None
) -> KinGuard:
    return keyword_guard(names, action, keyword=SECRET, identity=identity, rule=rule)


def joining_node(
    schema: type, model: ScriptedChatModel, *, use_async: bool = False
) -> Callable[[Any], Any]:
    """The app's node: its prompt is the history's strings joined, its reply one more."""

    def update(state: Any, reply: str) -> dict[str, Any]:
        if schema is FullState:
            return {"messages": [*state["messages"], reply]}
        return {"messages": [reply]}

    def node(state: Any) -> dict[str, Any]:
        return update(state, str(model.invoke("\n".join(state["messages"])).content))

    async def anode(state: Any) -> dict[str, Any]:
        return update(state, str((await model.ainvoke("\n".join(state["messages"]))).content))

    return anode if use_async else node


def string_app(
    guard: KinGuard,
    schema: type,
    replies: Mapping[str, str],
    *,
    use_async: bool = False,
    agents: Mapping[str, str] | None = None,
    **compile_kw: Any,
) -> tuple[Any, dict[str, ScriptedChatModel]]:
    """START -> each node of ``replies`` in turn -> END."""
    models = {node: ScriptedChatModel(replies=[reply]) for node, reply in replies.items()}
    builder = StateGraph(schema)
    previous = START
    for node, model in models.items():
        builder.add_node(node, joining_node(schema, model, use_async=use_async))
        builder.add_edge(previous, node)
        previous = node
    builder.add_edge(previous, END)
    return guard_graph(builder, guard, agents=agents).compile(**compile_kw), models


def one_node(builder: StateGraph[Any], node: Any) -> StateGraph[Any]:
    """START -> ``node`` as agent ``a`` -> END."""
    builder.add_node("a", node)
    builder.add_edge(START, "a")
    builder.add_edge("a", END)
    return builder


def prompt(model: ScriptedChatModel, call: int = 0) -> str:
    (message,) = model.inputs[call]
    return str(message.content)


def thread() -> dict[str, Any]:
    return {"configurable": {"thread_id": uuid.uuid4().hex}}


def run(graph: Any, how: str, config: dict[str, Any]) -> list[Any]:
    """Run the graph as ``how`` says; returns what the caller was shown."""
    start = {"messages": [TASK]}
    if how == "invoke":
        return [graph.invoke(start, config)]
    if how == "ainvoke":
        return [asyncio.run(graph.ainvoke(start, config))]
    if how == "astream":

        async def collect() -> list[Any]:
            return [chunk async for chunk in graph.astream(start, config, stream_mode="updates")]

        return asyncio.run(collect())
    return list(graph.stream(start, config, stream_mode=how))


@pytest.mark.parametrize("how", ["invoke", "updates", "values", "messages", "ainvoke", "astream"])
@pytest.mark.parametrize("schema", SCHEMAS, ids=SCHEMA_IDS)
def test_nodes_that_join_their_strings_get_the_identity_as_a_string_and_run(
    schema: type, how: str
) -> None:
    # Before: the identity went in as a SystemMessage, and ``"\n".join`` raised TypeError.
    guard = guard_for("a", "b", action=Action.REDACT)
    saver = InMemorySaver()
    graph, models = string_app(
        guard, schema, {"a": REPLY, "b": "Deal."}, use_async=how.startswith("a"), checkpointer=saver
    )
    config = thread()
    shown = run(graph, how, config)
    assert graph.get_state(config).values["messages"] == [TASK, REDACTED, "Deal."]
    # Each model was given its own agent's block, first, as the text the node joined.
    for name, model in models.items():
        block = guard.identity_block(name)
        assert block is not None and prompt(model).startswith(f"{block}\n")
    assert prompt(models["b"]).endswith(f"\n{TASK}\n{REDACTED}")
    # Nothing the caller was shown, nor any checkpoint, holds the identity or the secret.
    checkpoints = [c.checkpoint["channel_values"] for c in saver.list(config)]
    for seen in (shown, checkpoints):
        assert IDENTITY_MARKER not in repr(seen)
        assert SECRET not in repr(seen)


def test_a_graph_without_a_checkpointer_runs_too() -> None:
    graph, models = string_app(guard_for("a", "b", action=Action.LOG), AddState, {"a": "Hi."})
    assert graph.invoke({"messages": [TASK]}) == {"messages": [TASK, "Hi."]}
    assert prompt(models["a"]).startswith(IDENTITY_MARKER)


@pytest.mark.parametrize(
    ("action", "delivered"),
    [
        (Action.LOG, REPLY),
        (Action.REDACT, REDACTED),
        (Action.BLOCK, "[kinguard blocked a message from a: collusion.market]"),
    ],
)
@pytest.mark.parametrize("schema", SCHEMAS, ids=SCHEMA_IDS)
def test_each_action_rewrites_the_string_the_agent_wrote(
    schema: type, action: Action, delivered: str
) -> None:
    guard = guard_for("a", "b", action=action)
    graph, models = string_app(guard, schema, {"a": REPLY, "b": "Deal."})
    with capture_verdicts(guard) as verdicts:
        out = graph.invoke({"messages": [TASK]})
    assert [(v.sender, v.action) for v in verdicts] == [("a", action), ("b", Action.ALLOW)]
    assert out["messages"] == [TASK, delivered, "Deal."]
    assert prompt(models["b"]).endswith(f"\n{TASK}\n{delivered}")


def test_conceal_takes_identity_cues_out_of_a_string() -> None:
    guard = guard_for("a", "b", action=Action.LOG, identity="conceal")
    graph, models = string_app(
        guard, AddState, {"a": "As GPT-4o from OpenAI, I offer ten at 40.", "b": "Deal."}
    )
    out = graph.invoke({"messages": [TASK]})
    concealed = "As [identity withheld] from [identity withheld], I offer ten at 40."
    assert out["messages"] == [TASK, concealed, "Deal."]
    assert prompt(models["b"]).endswith(f"\n{concealed}")


@pytest.mark.parametrize(
    ("decision", "delivered"),
    [
        ({"type": "approve"}, REPLY),
        ({"type": "edit", "text": "Ten at 41."}, "Ten at 41."),
        ({"type": "reject"}, None),
    ],
)
@pytest.mark.parametrize("schema", SCHEMAS, ids=SCHEMA_IDS)
def test_a_halted_string_is_decided_as_a_string(
    schema: type, decision: dict[str, str], delivered: str | None
) -> None:
    guard = guard_for("a", "b", action=Action.HALT)
    graph, models = string_app(
        guard, schema, {"a": REPLY, "b": "Deal."}, checkpointer=InMemorySaver()
    )
    config = thread()
    first = graph.invoke({"messages": [TASK]}, config)
    assert first["__interrupt__"][0].value["text"] == REPLY
    assert first["messages"] == [TASK]  # held: not in the state
    out = graph.invoke(Command(resume=decision), config)
    said = [] if delivered is None else [delivered]
    assert out["messages"] == [TASK, *said, "Deal."]
    assert prompt(models["b"]) == "\n".join([str(guard.identity_block("b")), TASK, *said])
    assert models["a"].calls == 1  # the decision did not run the agent again


def test_the_strings_of_a_node_no_profile_names_are_read_as_its_words() -> None:
    # Before: a string read as a user message, which only a declared agent's node is read for.
    guard = guard_for("b", action=Action.BLOCK, identity="none")
    graph, _ = string_app(guard, AddState, {"a": REPLY, "b": "Deal."})
    with capture_verdicts(guard) as verdicts:
        out = graph.invoke({"messages": [TASK]})
    assert [(v.sender, v.action) for v in verdicts] == [("a", Action.BLOCK), ("b", Action.ALLOW)]
    assert SECRET not in repr(out)


@pytest.mark.parametrize("schema", SCHEMAS, ids=SCHEMA_IDS)
def test_a_string_said_before_is_read_again_when_an_agent_repeats_it(schema: type) -> None:
    # Before: a string equal to one in the history was taken for history handed back.
    said = f"Use {SECRET}."
    guard = guard_for("a", "b", action=Action.BLOCK, identity="none")
    graph, _ = string_app(guard, schema, {"a": said, "b": "Deal."})
    with capture_verdicts(guard) as verdicts:
        out = graph.invoke({"messages": [said]})  # the user's words are not an agent's
    assert [(v.sender, v.action) for v in verdicts] == [("a", Action.BLOCK), ("b", Action.ALLOW)]
    assert out["messages"][1:] == ["[kinguard blocked a message from a: collusion.market]", "Deal."]


def test_a_nudge_reaches_the_flagged_agent_as_a_string_and_stays_out_of_the_state() -> None:
    guard = guard_for(
        "a",
        "b",
        action=Action.NUDGE,
        identity="none",
        rule=Rule(signal="collusion.market", action=Action.NUDGE),
    )
    graph, models = string_app(
        guard,
        AddState,
        {"a": REPLY, "b": "Deal.", "a_again": "Fine."},
        agents={"a": "a", "b": "b", "a_again": "a"},
    )
    out = graph.invoke({"messages": [TASK]})
    assert out["messages"] == [TASK, REPLY, "Deal.", "Fine."]
    assert prompt(models["a"]) == TASK  # nothing to say before the finding
    first, *rest = prompt(models["a_again"]).split("\n")
    assert first.startswith(NUDGE_MARKER) and rest == [TASK, REPLY, "Deal."]


def test_the_joined_prompt_kept_in_the_state_is_kept_without_the_identity() -> None:
    class PromptState(TypedDict):
        messages: Annotated[list[str], operator.add]
        prompt: str

    model = ScriptedChatModel(replies=["Hi."])

    def node(state: PromptState) -> dict[str, Any]:
        text = "\n".join(state["messages"])
        return {"messages": [str(model.invoke(text).content)], "prompt": text}

    builder = one_node(StateGraph(PromptState), node)
    graph = guard_graph(builder, guard_for("a", action=Action.LOG)).compile()
    out = graph.invoke({"messages": [TASK], "prompt": ""})
    assert IDENTITY_MARKER in prompt(model)
    assert out == {"messages": [TASK, "Hi."], "prompt": TASK}


def streamed_text(chunks: list[Any]) -> dict[str, str]:
    """Per node, the text of the tokens a ``messages`` stream showed."""
    shown: dict[str, str] = {}
    for message, meta in chunks:
        node = meta["langgraph_node"]
        shown[node] = shown.get(node, "") + str(message.content)
    return shown


@pytest.mark.parametrize("schema", SCHEMAS, ids=SCHEMA_IDS)
def test_the_token_stream_shows_a_reply_written_as_a_string_as_it_was_delivered(
    schema: type,
) -> None:
    # Before: the model's tokens have an id of their own, not the string's, and were dropped.
    graph, _ = string_app(
        guard_for("a", "b", action=Action.REDACT), schema, {"a": REPLY, "b": "Deal."}
    )
    chunks = list(graph.stream({"messages": [TASK]}, stream_mode="messages"))
    assert len(chunks) > 3  # still a token stream
    assert streamed_text(chunks) == {"a": REDACTED, "b": "Deal."}


def test_events_show_a_reply_written_as_a_string_as_it_was_delivered() -> None:
    graph, _ = string_app(
        guard_for("a", "b", action=Action.REDACT), AddState, {"a": REPLY, "b": "Deal."}
    )

    async def events() -> list[dict[str, Any]]:
        return [e async for e in graph.astream_events({"messages": [TASK]}, version="v2")]

    seen = asyncio.run(events())
    tokens = "".join(
        str(e["data"]["chunk"].content) for e in seen if e["event"] == "on_chat_model_stream"
    )
    assert tokens == f"{REDACTED}Deal."
    ends = [e["data"]["output"].content for e in seen if e["event"] == "on_chat_model_end"]
    assert ends == [REDACTED, "Deal."]
    assert SECRET not in repr([e for e in seen if e["event"] != "on_chat_model_start"])
    # The prompts the events show are the app's, without the identity each node was given.
    prompts = [
        [m.content for m in e["data"]["input"]["messages"][0]]
        for e in seen
        if e["event"] == "on_chat_model_start"
    ]
    assert prompts == [[TASK], [f"{TASK}\n{REDACTED}"]]
    assert IDENTITY_MARKER not in repr(seen)


def test_tokens_of_a_reply_the_node_changed_before_writing_it_are_not_shown() -> None:
    # What the tokens said was never inspected as such: the node wrote other words.
    model = ScriptedChatModel(replies=[REPLY])

    def node(state: AddState) -> dict[str, Any]:
        return {"messages": [f"a: {model.invoke(state['messages'][-1]).content}"]}

    builder = one_node(StateGraph(AddState), node)
    graph = guard_graph(builder, guard_for("a", action=Action.REDACT)).compile()
    assert list(graph.stream({"messages": [TASK]}, stream_mode="messages")) == []
    assert graph.invoke({"messages": [TASK]})["messages"] == [TASK, f"a: {REDACTED}"]


def test_a_guarded_graph_of_strings_run_as_a_node_gives_its_node_one_identity() -> None:
    guard = guard_for("a", "inner", action=Action.REDACT)
    model = ScriptedChatModel(replies=[REPLY])
    inner = StateGraph(FullState)
    inner.add_node("inner", joining_node(FullState, model))
    inner.add_edge(START, "inner")
    inner.add_edge("inner", END)
    outer = StateGraph(FullState)
    outer.add_node("a", guard_graph(inner, guard).compile())
    outer.add_edge(START, "a")
    outer.add_edge("a", END)
    out = guard_graph(outer, guard).compile().invoke({"messages": [TASK]})
    assert out["messages"] == [TASK, REDACTED]
    # The innermost agent's identity alone, in place of the enclosing node's.
    assert prompt(model) == f"{guard.identity_block('inner')}\n{TASK}"


def test_a_copy_of_the_identity_string_handed_back_stays_out_of_the_state() -> None:
    # ``str.strip`` (like ``str()``, an f-string) gives a plain string equal to the identity:
    # read as the node's words, it was delivered into the state.
    model = ScriptedChatModel(replies=["Hi."])

    def node(state: FullState) -> dict[str, Any]:
        history = [m.strip() for m in state["messages"]]
        return {"messages": [*history, str(model.invoke("\n".join(history)).content)]}

    builder = one_node(StateGraph(FullState), node)
    guard = guard_for("a", action=Action.LOG)
    with capture_verdicts(guard) as verdicts:
        out = guard_graph(builder, guard).compile().invoke({"messages": [TASK]})
    assert out == {"messages": [TASK, "Hi."]}
    assert [v.sender for v in verdicts] == ["a"]  # the reply alone
    assert prompt(model).startswith(IDENTITY_MARKER)


def test_the_prompt_written_as_a_message_is_read_and_delivered_without_the_identity() -> None:
    # A transcript node: its prompt and the reply as one string. Read as written, the
    # identity block went into the state with it.
    model = ScriptedChatModel(replies=[REPLY])

    def node(state: AddState) -> dict[str, Any]:
        text = "\n".join(state["messages"])
        return {"messages": [f"{text}\n{model.invoke(text).content}"]}

    builder = one_node(StateGraph(AddState), node)
    guard = guard_for("a", action=Action.REDACT)
    with capture_verdicts(guard) as verdicts:
        out = guard_graph(builder, guard).compile().invoke({"messages": [TASK]})
    assert IDENTITY_MARKER in prompt(model)
    assert out == {"messages": [TASK, f"{TASK}\n{REDACTED}"]}
    assert [v.action for v in verdicts] == [Action.REDACT]
