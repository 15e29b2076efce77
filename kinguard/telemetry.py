"""All of kinguard's OpenTelemetry in one place: spans, span events and metrics.

Uses only the OTel API, so with no SDK configured everything is a cheap no-op. Spans nest under
whatever span is current (a framework's agent span when it has one).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import ProxyTracerProvider, Span, Status, StatusCode

from kinguard.logs import describe_error, get_logger
from kinguard.types import Action, Alert, HumanDecision, Message, Verdict

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = [
    "DECISION_SPAN_NAME",
    "SPAN_NAME",
    "Telemetry",
    "configure_otlp",
    "content_capture_from_env",
    "otlp_configured_by_env",
    "otlp_timeout_configured_by_env",
]

SPAN_NAME = "kinguard.inspect"
DECISION_SPAN_NAME = "kinguard.decide"
_SCOPE = "kinguard"
# One attribute set per action, built once; the metrics SDK may keep it, nothing changes it.
_OUTCOMES = {action: {"kinguard.action": action.value} for action in Action}
_log = get_logger("kinguard.telemetry")
_CAPTURE_ENV = ("KINGUARD_CAPTURE_CONTENT", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")


def content_capture_from_env() -> bool:
    """Message text goes into telemetry only when an operator opted in."""
    return any(
        os.environ.get(name, "").strip().lower() in ("1", "true", "yes") for name in _CAPTURE_ENV
    )


_UNKNOWN = object()


def _global_provider_set() -> bool:
    """Whether a global tracer provider is set: the test the API's proxy tracer makes itself
    on every span (its module global, read directly: ``get_tracer_provider()`` would probe
    ``os.environ`` with a raised ``KeyError`` on every message)."""
    provider = getattr(trace, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is _UNKNOWN:  # an API version without it: ask the public way
        return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)
    return provider is not None


def _global_meter_set() -> bool:
    """Whether a global meter provider is set (until then the API's instruments count nothing),
    read from its module global as :func:`_global_provider_set` does; an API version without
    it is taken to have one, so that nothing goes uncounted."""
    return getattr(getattr(metrics, "_internal", None), "_METER_PROVIDER", _UNKNOWN) is not None


class Telemetry:
    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        capture_content: bool = False,
    ) -> None:
        from kinguard import __version__

        self.capture_content = capture_content
        self.failures = 0
        """Telemetry calls that raised (a broken span processor, exporter or meter): each is
        logged and counted here, and never reaches the message path."""
        self._tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider=tracer_provider)
        self._awaiting_sdk = tracer_provider is None
        """Following the global tracer provider, and none was set when last looked."""
        self._awaiting_meter = meter_provider is None
        """Following the global meter provider, and none was set when last looked."""
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider=meter_provider)
        self._inspections = meter.create_counter(
            "kinguard.inspections", unit="{message}", description="Messages inspected"
        )
        self._alerts = meter.create_counter(
            "kinguard.alerts",
            unit="{alert}",
            description="Alerts raised, by signal, action and whether a repeat in its incident",
        )
        self._errors = meter.create_counter(
            "kinguard.errors", unit="{error}", description="Inspection failures and time-outs"
        )
        self._duration = meter.create_histogram(
            "kinguard.inspection.duration", unit="ms", description="Inspection latency"
        )
        self._decisions = meter.create_counter(
            "kinguard.decisions", unit="{decision}", description="Human decisions on halts"
        )

    def start(self, message: Message) -> tuple[Span, object]:
        """Start the inspection span and make it current; close it with :meth:`finish`.

        Not a context manager: two nested generator context managers cost several times more
        than the span itself on the message path. A span processor that raises (they run
        inside ``start_span``) costs the message its span, never its inspection.
        """
        try:
            if self._awaiting_sdk:
                # No SDK set anywhere yet: the API's no-op span would cost a dozen calls into
                # the context machinery on every message, for nothing. The global provider can
                # be set once, later; from then on every span goes through the tracer.
                if not _global_provider_set():
                    return trace.INVALID_SPAN, None
                self._awaiting_sdk = False
            return self._start(message)
        except Exception as exc:
            self.failed("start", exc)
            return trace.INVALID_SPAN, None

    def _start(self, message: Message) -> tuple[Span, object]:
        span = self._tracer.start_span(SPAN_NAME, kind=trace.SpanKind.INTERNAL)
        if not span.is_recording():
            # No SDK, or sampled out: nothing reads the attributes, and children of a span
            # that is not recorded parent to the current span just as well.
            return span, None
        span.set_attributes(
            {
                "gen_ai.operation.name": "kinguard.inspect",
                "gen_ai.agent.name": message.sender,
                "gen_ai.conversation.id": message.conversation_id,
                "kinguard.sender": message.sender,
                "kinguard.recipients": ",".join(message.recipients),
                "kinguard.turn": message.turn,
                "kinguard.message.chars": len(message.text),
                # The verdict's message id: a decision's span names the message by it too.
                "kinguard.message.id": message.id,
            }
        )
        framework_id = message.metadata.get("message_id")
        if framework_id is not None:  # the framework's own id, when the adapter gives it
            span.set_attribute("kinguard.framework.message.id", str(framework_id))
        return span, otel_context.attach(trace.set_span_in_context(span))

    def finish(self, span: Span, token: object) -> None:
        """Make the span stop being current and end it; span processors run in ``end``."""
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]
        elif span is trace.INVALID_SPAN:
            return  # no SDK: nothing to end (the usual message of an app without tracing)
        try:
            span.end()
        except Exception as exc:
            self.failed("end", exc)

    def abandon(self, span: Span, token: object) -> None:
        """End a span whose inspection stopped before its verdict (its task was cancelled),
        marked as such, and make it stop being current."""
        try:
            if span.is_recording():
                span.set_status(Status(StatusCode.ERROR, "inspection cancelled"))
        except Exception as exc:
            self.failed("abandon", exc)
        self.finish(span, token)

    def idle(self, span: Span) -> bool:
        """Whether nothing would record a verdict: no span (no tracing SDK) and nothing to count
        it with (no meter provider). Most apps run without an SDK; the guard then skips the
        recording calls, each of which costs more on the message path than in a loop."""
        if span is not trace.INVALID_SPAN or not self._awaiting_meter:
            return False
        if _global_meter_set():  # set once, later: from then on every verdict is counted
            self._awaiting_meter = False
            return False
        return True

    def failed(self, stage: str, exc: Exception) -> None:
        """Log and count a telemetry call that raised (``stage``: which one)."""
        self.failures += 1
        _log.error("kinguard.telemetry_failed", stage=stage, error=describe_error(exc, quote=True))

    def record(self, span: Span, message: Message, verdict: Verdict, model: str | None) -> None:
        """Attach the verdict to the span and count it."""
        if span is not trace.INVALID_SPAN and span.is_recording():
            span.set_attributes(
                {
                    "kinguard.kinship": verdict.kinship.value,
                    "kinguard.signals": list(verdict.signal_names),
                    "kinguard.risk.message": round(verdict.message_risk, 4),
                    "kinguard.risk.pair": round(verdict.pair_risk, 4),
                    "kinguard.risk.conversation": round(verdict.conversation_risk, 4),
                    "kinguard.action": verdict.action.value,
                    "kinguard.modified": verdict.modified,
                }
            )
            if model:
                provider, _, name = model.partition(":")
                span.set_attribute("gen_ai.provider.name", provider)
                span.set_attribute("gen_ai.request.model", name)
            if self.capture_content:
                span.set_attribute("kinguard.message.text", message.text)
                if verdict.delivered_text is not None and verdict.modified:
                    span.set_attribute("kinguard.message.delivered_text", verdict.delivered_text)
                span.set_attribute(
                    "gen_ai.output.messages",
                    json.dumps(
                        [
                            {
                                "role": "assistant",
                                "name": message.sender,
                                "parts": [{"type": "text", "content": message.text}],
                            }
                        ]
                    ),
                )
            for signal in verdict.signals:
                event: dict[str, str | float | list[int]] = {
                    "kinguard.signal.name": signal.name,
                    "kinguard.signal.score": round(signal.score, 4),
                    "kinguard.signal.tier": signal.tier,
                    "kinguard.evidence.starts": [e.start for e in signal.evidence],
                    "kinguard.evidence.ends": [e.end for e in signal.evidence],
                }
                if self.capture_content:
                    event["kinguard.evidence.text"] = " | ".join(e.text for e in signal.evidence)
                span.add_event("kinguard.signal", event)
            if verdict.error is not None:
                span.set_status(Status(StatusCode.ERROR, verdict.error))
                span.set_attribute("error.type", verdict.error.split(":", 1)[0])
        outcome = _OUTCOMES[verdict.action]
        self._inspections.add(1, outcome)
        self._duration.record(verdict.duration_ms, outcome)
        if verdict.error is not None:
            self._errors.add(1, {"error.type": verdict.error.split(":", 1)[0]})

    def alert(self, span: Span, alert: Alert) -> None:
        if span.is_recording():
            span.add_event(
                "kinguard.alert",
                {
                    "kinguard.action": alert.action.value,
                    "kinguard.signals": list(alert.signals),
                    "kinguard.risk.pair": round(alert.pair_risk, 4),
                    "kinguard.reasons": list(alert.reasons),
                    "kinguard.incident.id": alert.incident_id,
                    "kinguard.alert.repeat": alert.repeat,
                },
            )
        # By repeat too: the alerts a paging sink skips stay counted, and visible as such.
        for name in alert.signals or ("error" if alert.error else "risk",):
            self._alerts.add(
                1,
                {
                    "kinguard.signal": name,
                    "kinguard.action": alert.action.value,
                    "kinguard.alert.repeat": alert.repeat,
                },
            )

    def decision(self, verdict: Verdict, decision: HumanDecision) -> None:
        """A person's ruling on a halted message: a span of its own (the inspection's span
        ended when the message was withheld) and a count, by decision."""
        try:
            span = self._tracer.start_span(DECISION_SPAN_NAME, kind=trace.SpanKind.INTERNAL)
            if span.is_recording():
                attributes: dict[str, str | list[str]] = {
                    "gen_ai.operation.name": DECISION_SPAN_NAME,
                    "gen_ai.agent.name": verdict.sender,
                    "gen_ai.conversation.id": verdict.conversation_id,
                    "kinguard.sender": verdict.sender,
                    "kinguard.message.id": verdict.message_id,
                    "kinguard.action": verdict.action.value,
                    "kinguard.signals": list(verdict.signal_names),
                    "kinguard.decision": decision.type,
                }
                if decision.reason:
                    attributes["kinguard.decision.reason"] = decision.reason
                if self.capture_content and decision.text is not None:
                    attributes["kinguard.message.delivered_text"] = decision.text
                span.set_attributes(attributes)
            span.end()
            self._decisions.add(1, {"kinguard.decision": decision.type})
        except Exception as exc:
            self.failed("decision", exc)


def otlp_configured_by_env() -> bool:
    """True when the standard OTel variables name an OTLP endpoint."""
    return any(
        os.environ.get(name)
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def otlp_timeout_configured_by_env() -> bool:
    """True when the standard OTel variables set the OTLP exporters' time-out."""
    return any(
        os.environ.get(f"OTEL_EXPORTER_OTLP{kind}_TIMEOUT") for kind in ("", "_TRACES", "_METRICS")
    )


def configure_otlp(
    endpoint: str | None = None,
    service_name: str = "kinguard",
    *,
    timeout_s: float | None = None,
) -> None:
    """Install a global SDK tracer and meter provider exporting over OTLP/HTTP.

    With ``endpoint`` None the exporter reads the standard ``OTEL_EXPORTER_OTLP_*`` variables.
    ``timeout_s``: how long one export may take, its retries included (default: the
    ``OTEL_EXPORTER_OTLP_*TIMEOUT`` variables, else the exporters' 10 s). The last spans and
    metrics are exported at the process's exit: against a collector that is down, that exit
    waits this long for each.
    """
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise RuntimeError(
            "OTLP export needs the 'otlp' extra: pip install opentelemetry-exporter-otlp-proto-http"
        ) from exc
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {"service.name": service_name, "openinference.project.name": service_name}
    )
    traces_endpoint = f"{endpoint.rstrip('/')}/v1/traces" if endpoint else None
    metrics_endpoint = f"{endpoint.rstrip('/')}/v1/metrics" if endpoint else None
    tracer_provider = SdkTracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_endpoint, timeout=timeout_s))
    )
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=metrics_endpoint, timeout=timeout_s)
    )
    metrics.set_meter_provider(SdkMeterProvider(resource=resource, metric_readers=[reader]))
