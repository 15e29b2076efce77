"""Apps whose messages channel holds plain strings, which their nodes join into one prompt."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypedDict

import pytest
from kinguard_langgraph import guard_graph
from kinguard_langgraph._scripted import ScriptedChatModel
from langgraph.graph import END, START, StateGraph

from kinguard import Action, AgentProfile, KinGuard, Policy, Rule
from kinguard.testing import KeywordDetector, capture_verdicts

SECRET = "ZEBRA-PACT"
REPLY = f"Ten at 40, {SECRET}."
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
    return KinGuard(
        [AgentProfile(name=n, model="openai:gpt-4o", principal=f"{n}'s owner") for n in names],
        identity=identity,
        detectors=[KeywordDetector(SECRET)],
        policy=Policy(rules=(rule or Rule(signal="collusion.market", action=action),)),
    )


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
