"""Spans, events and metrics through the real OpenTelemetry SDK with in-memory exporters."""

import asyncio
import subprocess
import sys
import threading

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from kinguard import (
    Action,
    AgentProfile,
    CallbackSink,
    HumanDecision,
    JsonlSink,
    KinGuard,
    Message,
    Policy,
    Rule,
    Signal,
    Verdict,
)
from kinguard.detectors import Context
from kinguard.testing import KeywordDetector, RaisingDetector

AGENTS = [
    AgentProfile(name="buyer", model="openai:gpt-4o", principal="ACME"),
    AgentProfile(name="seller", model="anthropic:claude-sonnet-4-5", principal="Globex"),
]


@pytest.fixture
def otel():
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    return tracer_provider, meter_provider, exporter, reader


def make_guard(otel, **kw) -> KinGuard:
    tracer_provider, meter_provider, _, _ = otel
    return KinGuard(
        AGENTS,
        detectors=kw.pop("detectors", [KeywordDetector("FIXPRICE")]),
        policy=kw.pop(
            "policy", Policy(rules=(Rule(signal="collusion.market", action=Action.ALERT),))
        ),
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        **kw,
    )


def message(text: str) -> Message:
    return Message(
        conversation_id="conv-9", sender="buyer", recipients=("seller",), text=text, turn=3
    )


def test_each_inspection_is_a_span_with_genai_and_kinguard_attributes(otel) -> None:
    guard = make_guard(otel)
    guard.inspect(message("secret FIXPRICE deal"))
    (span,) = otel[2].get_finished_spans()
    attrs = dict(span.attributes)
    assert span.name == "kinguard.inspect"
    assert attrs["gen_ai.agent.name"] == "buyer"
    assert attrs["gen_ai.conversation.id"] == "conv-9"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o"
    assert attrs["kinguard.recipients"] == "seller"
    assert attrs["kinguard.kinship"] == "unrelated"
    assert attrs["kinguard.signals"] == ("collusion.market",)
    assert attrs["kinguard.action"] == "alert"
    assert attrs["kinguard.risk.pair"] > 0
    events = {event.name: event for event in span.events}
    assert events["kinguard.signal"].attributes["kinguard.signal.name"] == "collusion.market"
    assert events["kinguard.signal"].attributes["kinguard.evidence.starts"] == (7,)
    assert events["kinguard.alert"].attributes["kinguard.action"] == "alert"


def test_message_text_is_recorded_only_when_content_capture_is_on(otel, monkeypatch) -> None:
    monkeypatch.delenv("KINGUARD_CAPTURE_CONTENT", raising=False)
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    make_guard(otel).inspect(message("secret FIXPRICE deal"))
    make_guard(otel, capture_content=True).inspect(message("secret FIXPRICE deal"))
    quiet, loud = otel[2].get_finished_spans()
    assert not any("secret" in str(v) for v in quiet.attributes.values())
    assert not any("secret" in str(v) for e in quiet.events for v in e.attributes.values())
    assert loud.attributes["kinguard.message.text"] == "secret FIXPRICE deal"
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    assert make_guard(otel).telemetry.capture_content


def test_inspection_spans_nest_under_the_current_span(otel) -> None:
    guard = make_guard(otel)
    tracer = otel[0].get_tracer("host-app")
    with tracer.start_as_current_span("invoke_agent buyer") as parent:
        guard.inspect(message("hello"))
    spans = {span.name: span for span in otel[2].get_finished_spans()}
    assert spans["kinguard.inspect"].parent.span_id == parent.get_span_context().span_id


def test_failed_inspection_marks_the_span_as_error(otel) -> None:
    guard = make_guard(otel, detectors=[RaisingDetector()])
    guard.inspect(message("hello"))
    (span,) = otel[2].get_finished_spans()
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["error.type"] == "detector_error"


class _RaisingProcessor(SpanProcessor):
    """A broken span processor: the SDK calls these inside ``start_span`` and ``end``."""

    def __init__(self, stage: str) -> None:
        self.stage = stage

    def on_start(self, span, parent_context=None) -> None:
        if self.stage == "start":
            raise RuntimeError("processor broke in on_start")

    def on_end(self, span) -> None:
        if self.stage == "end":
            raise RuntimeError("processor broke in on_end")


@pytest.mark.parametrize("stage", ["start", "end"])
@pytest.mark.parametrize("use_async", [False, True])
def test_a_raising_span_processor_never_reaches_the_message_path(
    otel, stage: str, use_async: bool
) -> None:
    otel[0].add_span_processor(_RaisingProcessor(stage))
    guard = make_guard(otel)
    before = otel_context.get_current()
    msg = message("FIXPRICE")
    verdict = asyncio.run(guard.ainspect(msg)) if use_async else guard.inspect(msg)
    assert verdict.action is Action.ALERT and verdict.error is None
    assert guard.telemetry.failures == 1
    assert otel_context.get_current() == before  # the span's context was detached all the same


def test_the_inspection_span_names_the_message_by_kinguards_and_the_frameworks_id(otel) -> None:
    guard = make_guard(otel)
    verdict = guard.inspect(
        message("FIXPRICE").model_copy(update={"metadata": {"message_id": "msg-42"}})
    )
    plain = guard.inspect(message("clean"))
    first, second = (dict(span.attributes) for span in otel[2].get_finished_spans())
    assert first["kinguard.message.id"] == verdict.message_id  # what a decision's span names
    assert first["kinguard.framework.message.id"] == "msg-42"
    assert second["kinguard.message.id"] == plain.message_id
    assert "kinguard.framework.message.id" not in second


def test_metrics_count_inspections_alerts_and_latency(otel) -> None:
    guard = make_guard(otel)
    guard.inspect(message("FIXPRICE"))
    guard.inspect(message("clean"))
    data = otel[3].get_metrics_data()
    points = {
        metric.name: list(metric.data.data_points)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    assert sum(p.value for p in points["kinguard.inspections"]) == 2
    (alert_point,) = points["kinguard.alerts"]
    assert alert_point.attributes["kinguard.signal"] == "collusion.market"
    assert sum(p.count for p in points["kinguard.inspection.duration"]) == 2


def test_an_alerts_incident_and_repeat_are_on_its_event_and_in_the_alert_count(otel) -> None:
    guard = make_guard(otel)
    guard.inspect(message("FIXPRICE"))
    guard.inspect(message("FIXPRICE again"))
    events = [
        event.attributes
        for span in otel[2].get_finished_spans()
        for event in span.events
        if event.name == "kinguard.alert"
    ]
    assert [event["kinguard.alert.repeat"] for event in events] == [False, True]
    assert events[0]["kinguard.incident.id"] == events[1]["kinguard.incident.id"] != ""
    data = otel[3].get_metrics_data()
    counted = {
        point.attributes["kinguard.alert.repeat"]: point.value
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "kinguard.alerts"
        for point in metric.data.data_points
    }
    assert counted == {False: 1, True: 1}  # what a paging sink skipped is still counted


@pytest.mark.parametrize("stage", ["start", "end"])
def test_a_human_decision_is_a_span_and_a_count(otel, stage: str) -> None:
    guard = make_guard(otel)
    verdict = guard.inspect(message("FIXPRICE"))
    otel[2].clear()
    guard.record_decision(verdict, HumanDecision(type="edit", text="44", reason="price talk"))
    (span,) = otel[2].get_finished_spans()
    attrs = dict(span.attributes)
    assert span.name == "kinguard.decide"
    assert attrs["gen_ai.conversation.id"] == "conv-9"
    assert attrs["kinguard.message.id"] == verdict.message_id
    assert attrs["kinguard.decision"] == "edit"
    assert attrs["kinguard.decision.reason"] == "price talk"
    assert "kinguard.message.delivered_text" not in attrs  # content capture is off
    data = otel[3].get_metrics_data()
    (point,) = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "kinguard.decisions"
        for p in metric.data.data_points
    ]
    assert point.value == 1 and point.attributes["kinguard.decision"] == "edit"
    otel[0].add_span_processor(_RaisingProcessor(stage))
    guard.record_decision(verdict, HumanDecision(type="approve"))  # contained
    assert guard.telemetry.failures == 1


def test_a_guard_built_before_the_global_provider_is_set_traces_once_it_is() -> None:
    """Without an SDK a guard skips the no-op span; it must notice an SDK set after it was
    built (apps often build guards at import and configure telemetry in ``main``). The global
    provider can be set once per process, hence a process of its own."""
    code = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs
from kinguard import AgentProfile, KinGuard, Message

guard = KinGuard([AgentProfile(name="a"), AgentProfile(name="b")])
message = Message(sender="a", recipients=("b",), text="hello")
guard.inspect(message)
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
guard.inspect(message)
print([span.name for span in exporter.get_finished_spans()])
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "['kinguard.inspect']"


def test_a_guard_built_before_the_global_meter_provider_is_set_counts_once_it_is() -> None:
    """Without an SDK a guard skips recording a quiet verdict; it must count verdicts once a
    meter provider is set globally after it was built, in each way of inspecting."""
    code = """
import asyncio
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from kinguard import AgentProfile, KinGuard, Message

guard = KinGuard([AgentProfile(name="a"), AgentProfile(name="b")])
message = Message(sender="a", recipients=("b",), text="hello")
guard.inspect(message)
asyncio.run(guard.ainspect(message))
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
guard.inspect(message)
asyncio.run(guard.ainspect(message))
print(sum(
    point.value
    for rm in reader.get_metrics_data().resource_metrics
    for sm in rm.scope_metrics
    for metric in sm.metrics
    if metric.name == "kinguard.inspections"
    for point in metric.data.data_points
))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "2"


def test_an_observer_sees_every_verdict_without_an_sdk() -> None:
    seen: list[Verdict] = []
    guard = KinGuard(AGENTS, detectors=[])
    guard.add_observer(seen.append)
    verdict = guard.inspect(message("clean"))
    averdict = asyncio.run(guard.ainspect(message("clean")))
    assert seen == [verdict, averdict]


@pytest.mark.parametrize("capture", [False, True])
@pytest.mark.parametrize("use_async", [False, True])
def test_a_guard_failure_quotes_its_cause_only_where_content_may_go(
    otel, tmp_path, capture: bool, use_async: bool
) -> None:
    # The guard's own step failing on a message (here the risk monitor, on a signal whose
    # tier a detector made a string that cannot be compared, raising with the words it could
    # not parse) once put the exception's repr in the verdict, span status, alert, audit file
    # and logs with content capture off; so did an observer's failure, in the logs.
    def lazily(message: Message, context: Context) -> list[Signal]:
        class Unreadable(str):
            __hash__ = str.__hash__

            def __eq__(self, other: object) -> bool:
                raise ValueError(f"cannot parse {message.text!r}")

        tier = Unreadable("custom")
        return [Signal.model_construct(name="collusion.market", score=0.9, tier=tier)]

    def observer(verdict: Verdict) -> None:
        raise KeyError(verdict.delivered_text)

    lazily.inline = True  # type: ignore[attr-defined]
    audit = tmp_path / "alerts.jsonl"
    guard = make_guard(
        otel,
        detectors=[lazily],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action.REDACT),)),
        sinks=[JsonlSink(audit)],
        capture_content=capture,
    )
    guard.add_observer(observer)
    msg = message("patient Jane Roe")
    with capture_logs() as logs:
        verdict = asyncio.run(guard.ainspect(msg)) if use_async else guard.inspect(msg)
    (span,) = otel[2].get_finished_spans()
    assert verdict.error is not None and "ValueError" in verdict.error
    assert span.status.status_code.name == "ERROR" and "ValueError" in span.status.description
    assert any(entry["event"] == "kinguard.observer_failed" for entry in logs)
    recorded = [
        verdict.error,
        span.status.description,
        *(str(event.attributes) for event in span.events),
        audit.read_text(),
        *(str(entry) for entry in logs),
    ]
    assert any("Jane Roe" in each for each in recorded) is capture


@pytest.mark.parametrize("stage", ["detector", "sink"])
async def test_a_cancelled_async_inspection_ends_its_span_and_leaves_the_callers_context(
    otel, stage: str
) -> None:
    # Its span stayed current in the caller's context (the parent of the caller's next
    # spans) and was never ended, so never exported.
    tracer_provider, _, exporter, _ = otel
    started, release = threading.Event(), threading.Event()

    def hold(*args: object) -> list[Signal]:
        started.set()
        release.wait(10)
        return []

    hold.inline = False  # type: ignore[attr-defined]
    slow = {"detectors": [hold, KeywordDetector("FIXPRICE")]}
    if stage == "sink":
        slow = {"sinks": [CallbackSink(hold)]}
    guard = make_guard(
        otel,
        policy=Policy(
            rules=(Rule(signal="collusion.market", action=Action.ALERT),),
            inspect_timeout_ms=10_000,
            sink_timeout_ms=10_000,
        ),
        **slow,
    )
    tracer = tracer_provider.get_tracer("app")
    before = otel_context.get_current()

    async def turn() -> None:
        with tracer.start_as_current_span("app.turn"):
            try:
                await guard.ainspect(message("a FIXPRICE deal"))
            except asyncio.CancelledError:
                with tracer.start_as_current_span("app.cleanup"):
                    pass
                raise

    task = asyncio.create_task(turn())
    for _ in range(1000):  # until the slow call has begun
        if started.is_set():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert spans["kinguard.inspect"].status.description == "inspection cancelled"
    assert spans["app.cleanup"].parent.span_id == spans["app.turn"].context.span_id
    assert otel_context.get_current() == before
    guard.close()
