"""`kinguard demo --otlp` really exports: spans reach an OTLP/HTTP endpoint on loopback."""

import http.server
import os
import subprocess
import sys
import threading
from typing import ClassVar

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class _Collector(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args) -> None:
        return


@pytest.fixture
def collector():
    _Collector.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Collector.received
    server.shutdown()


def _spans(received):
    spans = []
    for path, body in received:
        if path == "/v1/traces":
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    spans.extend((resource, span) for span in scope_spans.spans)
    return spans


def _demo(env_extra: dict[str, str], *args: str) -> None:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env = {**inherited, "COLUMNS": "200", **env_extra}
    subprocess.run(
        [sys.executable, "-m", "kinguard.cli", "demo", "--scenario", "dilemma", *args],
        check=True,
        capture_output=True,
        env=env,
        timeout=120,
    )


def test_demo_exports_inspection_spans_over_otlp(collector) -> None:
    url, received = collector
    _demo({}, "--otlp", url)
    spans = _spans(received)
    inspections = [span for _, span in spans if span.name == "kinguard.inspect"]
    assert len(inspections) == 6  # the guarded run's six messages
    resource = spans[0][0]
    assert resource["service.name"] == "kinguard-demo"
    assert resource["openinference.project.name"] == "kinguard-demo"
    actions = {
        a.value.string_value
        for span in inspections
        for a in span.attributes
        if a.key == "kinguard.action"
    }
    assert "redact" in actions
    assert any(event.name == "kinguard.signal" for span in inspections for event in span.events)


def test_standard_otel_variables_configure_the_exporter(collector) -> None:
    url, received = collector
    _demo({"OTEL_EXPORTER_OTLP_ENDPOINT": url})
    assert any(span.name == "kinguard.inspect" for _, span in _spans(received))


def test_a_missing_exporter_says_which_package_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Once "pip install 'kinguard[otlp]'", which pip cannot resolve from a checkout.
    from kinguard.telemetry import configure_otlp

    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(RuntimeError, match="pip install opentelemetry-exporter-otlp-proto-http"):
        configure_otlp("http://127.0.0.1:1")
