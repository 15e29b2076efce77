"""Spans nest under AutoGen's own; broken detectors never crash or stall a team."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from autogen_agentchat.agents import SocietyOfMindAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core import SingleThreadedAgentRuntime
from autogen_ext.models.replay import ReplayChatCompletionClient as Replay
from kinguard_autogen import guard_team, pending_halt
from kinguard_autogen._participant import TeamGuard
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from kinguard import Action, KinGuard, Message, Policy, Rule, Signal
from kinguard.detectors import Context
from kinguard.testing import (
    CapturingSink,
    HangingDetector,
    KeywordDetector,
    RaisingDetector,
    capture_verdicts,
)


def ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    by_id = {s.context.span_id: s for s in spans}
    names: list[str] = []
    parent = span.parent
    while parent is not None and parent.span_id in by_id:
        names.append(by_id[parent.span_id].name)
        parent = by_id[parent.span_id].parent
    return names


async def test_inspection_spans_nest_under_autogen_runtime_spans(kit: SimpleNamespace) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    runtime = SingleThreadedAgentRuntime(tracer_provider=provider)
    guard = kit.keyword_guard("redact", tracer_provider=provider)
    team = guard_team(
        RoundRobinGroupChat(
            [kit.agent("buyer", [f"b1 {kit.KEYWORD}"]), kit.agent("seller", ["s1"])],
            termination_condition=MaxMessageTermination(3),
            runtime=runtime,
        ),
        guard,
    )
    with provider.get_tracer("app").start_as_current_span("app"):
        runtime.start()
        try:
            await team.run(task="Go.")
        finally:
            await runtime.stop_when_idle()
    spans = list(exporter.get_finished_spans())
    inspections = [s for s in spans if s.name == "kinguard.inspect"]
    assert len(inspections) == 2
    first = inspections[0]
    # kinguard runs inside the agent's turn, so kinguard.inspect is a child of the runtime span
    # that processed the buyer's turn, inside the app's trace (AgentChat 0.7 parents runtime
    # spans on the running context).
    chain = ancestors(first, spans)
    assert chain[0].startswith("autogen process buyer_")
    assert chain[-1] == "app"
    app = next(s for s in spans if s.name == "app")
    assert first.context.trace_id == app.context.trace_id
    second = ancestors(inspections[1], spans)
    assert second[0].startswith("autogen process seller_")
    assert first.attributes is not None
    assert first.attributes["gen_ai.agent.name"] == "buyer"
    assert first.attributes["gen_ai.conversation.id"] == "test"


@pytest.mark.parametrize("broken", ["raises", "hangs"])
@pytest.mark.parametrize("on_error", ["open", "closed"])
async def test_a_broken_detector_never_crashes_or_stalls_a_team(
    kit: SimpleNamespace, broken: str, on_error: Any
) -> None:
    sink = CapturingSink()
    guard = KinGuard(
        kit.PROFILES,
        detectors=[
            RaisingDetector() if broken == "raises" else HangingDetector(seconds=2.0),
            KeywordDetector(kit.KEYWORD),
        ],
        policy=Policy(
            rules=(Rule(signal="collusion.market", action=Action.BLOCK),),
            on_error=on_error,
            inspect_timeout_ms=50,
        ),
        sinks=[sink],
    )
    team = guard_team(
        RoundRobinGroupChat(
            [kit.agent("buyer", ["b1", "b2"]), kit.agent("seller", ["s1", "s2"])],
            termination_condition=MaxMessageTermination(5),
        ),
        guard,
    )
    with capture_verdicts(guard) as verdicts:
        result = await asyncio.wait_for(team.run(task="Go."), timeout=10)
    # Each inspection ended on the guard's own terms: a contained error or a 50 ms time-out,
    # never by waiting out the two-second sleep.
    expected = "timeout" if broken == "hangs" else "RuntimeError"
    assert len(verdicts) == 4 and all(expected in (v.error or "") for v in verdicts)
    assert len(sink.alerts) == 4
    texts = [t for s, t in kit.chat(result) if s != "user"]
    if on_error == "open":
        assert texts == ["b1", "s1", "b2", "s2"]
    else:
        assert all(t.startswith("[kinguard blocked") for t in texts)
    assert result.stop_reason is not None and "Maximum number of messages" in result.stop_reason


class Unformattable(float):
    """A score that passes the pipeline's checks (a number in [0, 1]) and cannot be printed."""

    def __format__(self, spec: str) -> str:
        raise ValueError("unformattable score")


class UnprintableScore(KeywordDetector):
    """Garbage the pipeline's check of signals lets through: a score no summary can print."""

    def __call__(self, message: Message, context: Context) -> list[Signal]:
        return [
            Signal.model_construct(**{**dict(s), "score": Unformattable(s.score)})
            for s in super().__call__(message, context)
        ]


@pytest.mark.parametrize("action", ["block", "halt"])
async def test_a_verdict_whose_event_cannot_be_built_never_crashes_the_team(
    kit: SimpleNamespace, action: str
) -> None:
    # Building the verdict's event for the stream raised inside the agent's turn: the team's
    # run failed with the detector's garbage.
    sink = CapturingSink()
    guard = KinGuard(
        kit.PROFILES,
        detectors=[UnprintableScore(kit.KEYWORD)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action(action)),)),
        sinks=[sink],
    )
    seller = kit.agent("seller", ["s1", "s2"])
    team = guard_team(
        RoundRobinGroupChat(
            [kit.agent("buyer", [f"b1 {kit.KEYWORD}", "b2"]), seller],
            termination_condition=MaxMessageTermination(4),
        ),
        guard,
    )
    result = await asyncio.wait_for(team.run(task="Go."), timeout=10)
    assert [a.action for a in sink.alerts] == [Action(action)]
    assert kit.KEYWORD not in str(kit.model_calls(seller))
    if action == "halt":
        assert pending_halt(team) is not None
        assert result.stop_reason is not None and "kinguard halted" in result.stop_reason
    else:
        assert [t for s, t in kit.chat(result)][2:] == ["s1", "b2"]


class Unprintable(RuntimeError):
    """Raised by an app's own code with a ``__repr__`` that fails in turn."""

    def __repr__(self) -> str:
        raise AttributeError("no detail")


class EndFails(SpanProcessor):
    def on_end(self, span: ReadableSpan) -> None:
        raise Unprintable()


class Fails:
    """An observer or alert sink of the app's own that raises."""

    inline = True  # as a sink: called in turn with the others

    def __call__(self, _: Any) -> None:
        raise Unprintable()


@pytest.mark.parametrize("failing", ["observer", "span processor", "sink"])
async def test_a_failure_that_cannot_be_described_never_undoes_a_halt(
    kit: SimpleNamespace, failing: str
) -> None:
    # Describing the failure (its repr, as the guard captures content) raised out of the
    # guard's inspection after the halt rule matched: the halt was lost, and on_error="open"
    # delivered the message. Out of a sink's, it kept the alert from the sinks after it.
    provider = TracerProvider()
    provider.add_span_processor(EndFails())
    sink = CapturingSink()
    guard = KinGuard(
        kit.PROFILES,
        detectors=[KeywordDetector(kit.KEYWORD)],
        policy=Policy(
            rules=(Rule(signal="collusion.market", action=Action.HALT),), on_error="open"
        ),
        sinks=[Fails(), sink] if failing == "sink" else [sink],
        capture_content=True,
        tracer_provider=provider if failing == "span processor" else None,
    )
    if failing == "observer":
        guard.add_observer(Fails())
    seller = kit.agent("seller", ["s1"])
    team = guard_team(
        RoundRobinGroupChat(
            [kit.agent("buyer", [f"b1 {kit.KEYWORD}"]), seller],
            termination_condition=MaxMessageTermination(3),
        ),
        guard,
    )
    result = await asyncio.wait_for(team.run(task="Go."), timeout=10)
    assert pending_halt(team) is not None
    assert result.stop_reason is not None and "kinguard halted" in result.stop_reason
    assert not kit.model_calls(seller)
    assert [alert.action for alert in sink.alerts] == [Action.HALT]
    if failing == "span processor":
        assert guard.telemetry.failures > 0


def post_note(note: str) -> str:
    """Post a note."""
    return "posted"


@pytest.mark.parametrize("where", ["turn", "alone", "society", "tool"])
async def test_a_failure_of_kinguards_own_around_an_agent_is_logged_as_its_teams(
    kit: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("kinguard failed")

    # Before the agent's turn (what it is given), or while inspecting a tool call.
    failing = {"society": "not_its_own", "tool": "_ainspect"}.get(where, "given")
    monkeypatch.setattr(TeamGuard, failing, broken)
    if where == "society":
        inner = RoundRobinGroupChat([kit.agent("x", ["x1"])], max_turns=1)
        buyer: Any = SocietyOfMindAgent("buyer", team=inner, model_client=Replay(["b1"]))
    elif where == "tool":
        call = kit.tool_call("post_note", "c1", '{"note": "hello"}')
        buyer = kit.agent("buyer", [call], tools=[post_note])
    else:
        buyer = kit.agent("buyer", ["b1"])
    team = guard_team(
        RoundRobinGroupChat(
            [buyer, kit.agent("seller", ["s1"])], termination_condition=MaxMessageTermination(2)
        ),
        kit.keyword_guard("block"),
    )
    with capture_logs() as logs:
        await (buyer.run(task="On your own.") if where == "alone" else team.run(task="Go."))
    # One event, with the same fields wherever it happened: the guarding team's name too,
    # also for an agent the app runs on its own.
    failures = [e for e in logs if e["event"] == "kinguard.autogen.adapter_failed"]
    assert failures
    first = failures[0]
    assert (first["team"], first["agent"]) == (team.name, "buyer")
    assert "RuntimeError" in first["error"]
    assert ("tool" in first) is (where == "tool")
