"""A broken detector or a broken guard never breaks or stalls the app; errors follow on_error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kinguard_langgraph import guard_graph
from kinguard_langgraph._scripted import ScriptedChatModel, delivered, script_graph, start

from kinguard import Action, AgentProfile, KinGuard, Message, Policy, Rule, Verdict
from kinguard.testing import (
    CapturingSink,
    HangingDetector,
    KeywordDetector,
    RaisingDetector,
    capture_verdicts,
)

AGENTS = (
    AgentProfile(name="a", model="openai:gpt-4o"),
    AgentProfile(name="b", model="openai:gpt-4o"),
)


def graph_with(guard: KinGuard, use_async: bool = False) -> Any:
    models = {
        "a": ScriptedChatModel(replies=["One.", "Three."]),
        "b": ScriptedChatModel(replies=["Two."]),
    }
    return guard_graph(
        script_graph(["a", "b", "a"], models, {}, use_async=use_async), guard
    ).compile()


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("on_error", ["open", "closed"])
@pytest.mark.parametrize("broken", ["raises", "hangs"])
def test_broken_detector_while_streaming_tokens(
    broken: str, on_error: str, use_async: bool
) -> None:
    bad = RaisingDetector() if broken == "raises" else HangingDetector(seconds=2.0)
    sink = CapturingSink()
    guard = KinGuard(
        AGENTS,
        detectors=[bad, KeywordDetector("nothing")],
        policy=Policy(
            rules=(Rule(signal="collusion.market", action=Action.LOG),),
            on_error=on_error,  # type: ignore[arg-type]
            inspect_timeout_ms=50,
        ),
        sinks=[sink],
    )
    graph = graph_with(guard, use_async)
    with capture_verdicts(guard) as verdicts:
        if use_async:

            async def run() -> list[Any]:
                return [p async for p in graph.astream(start(), stream_mode=["messages", "values"])]

            parts = asyncio.run(run())
        else:
            parts = list(graph.stream(start(), stream_mode=["messages", "values"]))
    # Each inspection ended on the guard's own terms: a contained error or a 50 ms time-out,
    # never by waiting out the two-second hang.
    expected = "timeout" if broken == "hangs" else "RuntimeError"
    assert len(verdicts) == 3 and all(expected in (v.error or "") for v in verdicts)
    final = [p for mode, p in parts if mode == "values"][-1]
    texts = [t for _, t in delivered(final["messages"])]
    streamed = "".join(
        str(m.content) for mode, (m, _) in ((md, p) for md, p in parts if md == "messages")
    )
    assert len(sink.alerts) == 3
    if on_error == "open":
        assert texts == ["One.", "Two.", "Three."]
        assert "Two." in streamed
    else:
        assert all(t.startswith("[kinguard blocked") for t in texts)
        assert "Two." not in streamed


class ExplodingGuard(KinGuard):
    """A guard subclass that breaks the rule that inspect never raises."""

    def inspect(self, message: Message) -> Verdict:
        raise RuntimeError("boom")

    async def ainspect(self, message: Message) -> Verdict:
        raise RuntimeError("boom")


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("on_error", ["open", "closed"])
def test_adapter_failures_are_contained(on_error: str, use_async: bool) -> None:
    guard = ExplodingGuard(
        AGENTS,
        identity="disclose",
        policy=Policy(
            rules=(Rule(signal="collusion.market", action=Action.LOG),), on_error=on_error
        ),  # type: ignore[arg-type]
    )
    graph = graph_with(guard, use_async)
    out = asyncio.run(graph.ainvoke(start())) if use_async else graph.invoke(start())
    texts = [t for _, t in delivered(out["messages"])]
    assert len(texts) == 3
    assert all(m.type != "system" for m in out["messages"])
    if on_error == "open":
        assert texts == ["One.", "Two.", "Three."]
    else:
        assert all(t.startswith("[kinguard blocked") for t in texts)


def test_a_failing_token_hold_still_inspects_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from kinguard_langgraph import KinGuardMiddleware
    from kinguard_langgraph._scripted import ChatState
    from kinguard_langgraph._stream import TokenHold
    from langchain.agents import create_agent
    from langchain_core.messages import HumanMessage
    from langgraph.graph import END, START, StateGraph

    def broken(config: Any) -> Any:
        raise RuntimeError("hold failed")

    monkeypatch.setattr(TokenHold, "install", staticmethod(broken))
    guard = KinGuard(
        AGENTS,
        detectors=[KeywordDetector("ZEBRA")],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action.REDACT),)),
    )
    agent = create_agent(
        ScriptedChatModel(replies=["Price is ZEBRA."]),
        tools=[],
        middleware=[KinGuardMiddleware(guard, agent_name="a")],
    )
    parts = list(agent.stream({"messages": [HumanMessage("hi")]}, stream_mode="values"))
    assert "[redacted by kinguard" in parts[-1]["messages"][-1].content
    # The same inside a guarded graph run as a subgraph of an unguarded one.
    parent = StateGraph(ChatState)
    parent.add_node("team", graph_with(guard))
    parent.add_edge(START, "team")
    parent.add_edge("team", END)
    parts = list(
        parent.compile().stream(start(), stream_mode=["messages", "values"], subgraphs=True)
    )
    final = [p for ns, mode, p in parts if mode == "values" and not ns][-1]
    assert [text for _, text in delivered(final["messages"][1:])] == ["One.", "Two.", "Three."]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("on_error", ["open", "closed"])
def test_a_node_kinguard_cannot_prepare_for_follows_the_error_mode(
    monkeypatch: pytest.MonkeyPatch, on_error: str, use_async: bool
) -> None:
    from kinguard_langgraph._core import GraphCore

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("prepare failed")

    monkeypatch.setattr(GraphCore, "prepare", broken)
    guard = KinGuard(
        AGENTS,
        detectors=[KeywordDetector("ZEBRA")],
        policy=Policy(
            rules=(Rule(signal="collusion.market", action=Action.LOG),), on_error=on_error
        ),  # type: ignore[arg-type]
    )
    graph = graph_with(guard, use_async)
    out = asyncio.run(graph.ainvoke(start())) if use_async else graph.invoke(start())
    said = [text for _, text in delivered(out["messages"][1:])]
    if on_error == "open":
        assert said == ["One.", "Two.", "Three."]
    else:  # never let through unseen what kinguard could not inspect
        assert len(said) == 3
        assert all(text.startswith("[kinguard blocked a message from") for text in said)
