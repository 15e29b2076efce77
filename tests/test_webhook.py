"""WebhookSink against a real HTTP server on 127.0.0.1, attached to a real KinGuard."""

import contextlib
import email.utils
import json
import math
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from structlog.testing import capture_logs

from kinguard import Alert, KinGuard, Message, WebhookSink
from kinguard.testing import CapturingSink, keyword_guard

SECRET_PATH = "/services/T0/B0/s3cr3t-path"
TOKEN = "Bearer tok-123-secret"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class Server:
    """Answers each request with the next scripted answer (200 once the script runs out).

    An answer is a status and headers, or an Event: the handler then blocks until it is set,
    the way a server that never answers looks to the client.
    """

    url: str = ""
    script: deque[tuple[int, dict[str, str]] | threading.Event] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    arrived: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    blocks: list[threading.Event] = field(default_factory=list)

    def answer(self, *answers: int | tuple[int, dict[str, str]]) -> None:
        for answer in answers:
            self.script.append((answer, {}) if isinstance(answer, int) else answer)

    def hang(self) -> threading.Event:
        release = threading.Event()
        self.blocks.append(release)
        self.script.append(release)
        return release

    def wait_for_requests(self, count: int) -> None:
        for _ in range(count):
            assert self.arrived.acquire(timeout=30), "the request never arrived"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch) -> None:
    # An http_proxy in the environment would send 127.0.0.1 through the proxy.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.received.append(
                Received(self.command, self.path, dict(self.headers), self.rfile.read(length))
            )
            answer = state.script.popleft() if state.script else (200, {})
            state.arrived.release()
            if isinstance(answer, threading.Event):
                answer.wait(60)
                return
            status, headers = answer
            self.send_response(status)
            for name, value in {"Content-Length": "2", **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(b"ok")

        do_POST = do_GET = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.handle_error = lambda request, address: None  # a client that gave up
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}{SECRET_PATH}"
    yield state
    for release in state.blocks:
        release.set()
    httpd.shutdown()
    httpd.server_close()


def alerting_guard(*sinks: object) -> KinGuard:
    return keyword_guard(["buyer", "seller"], "alert", sinks=list(sinks))


def flag(guard: KinGuard, turn: int = 0) -> None:
    verdict = guard.inspect(
        Message(sender="buyer", recipients=("seller",), text="ZEBRA-PACT", turn=turn)
    )
    assert verdict.action.value == "alert"


def fast(url: str, **options: object) -> WebhookSink:
    options.setdefault("backoff_s", 0.01)
    # Delivery tests flag one pair again and again: each alert after the first repeats its
    # incident, which a sink left at its default would not send.
    options.setdefault("repeats", True)
    return WebhookSink(url, **options)  # type: ignore[arg-type]


def test_each_alert_is_posted_as_json_in_order(server: Server) -> None:
    sink, seen = fast(server.url), CapturingSink()
    guard = alerting_guard(sink, seen)
    for turn in range(3):
        flag(guard, turn)
    assert sink.flush(30)
    assert [r.json() for r in server.received] == [
        alert.model_dump(mode="json") for alert in seen.alerts
    ]
    first = server.received[0]
    assert first.method == "POST" and first.path == SECRET_PATH
    assert first.headers["Content-Type"] == "application/json"
    assert [r.json()["turn"] for r in server.received] == [0, 1, 2]  # type: ignore[index]
    assert (sink.delivered, sink.failed, sink.dropped, guard.sink_failures) == (3, 0, 0, 0)


def test_by_default_an_incidents_repeats_are_not_sent(server: Server) -> None:
    sink, seen = WebhookSink(server.url, backoff_s=0.01), CapturingSink()
    guard = alerting_guard(sink, seen)
    for turn in range(3):
        flag(guard, turn)
    assert sink.flush(30)
    assert [alert.repeat for alert in seen.alerts] == [False, True, True]
    assert [r.json() for r in server.received] == [seen.alerts[0].model_dump(mode="json")]
    assert (sink.delivered, sink.skipped) == (1, 2)


def test_a_payload_shapes_the_body_and_headers_are_sent(server: Server) -> None:
    def slack(alert: Alert) -> dict[str, str]:
        return {"text": f"{alert.sender} -> {', '.join(alert.recipients)}: {alert.action.value}"}

    sink = fast(server.url, payload=slack, headers={"Authorization": TOKEN, "X-Team": "ops"})
    flag(alerting_guard(sink))
    assert sink.flush(30)
    (request,) = server.received
    assert request.json() == {"text": "buyer -> seller: alert"}
    assert request.headers["Authorization"] == TOKEN and request.headers["X-Team"] == "ops"
    assert request.headers["Content-Type"] == "application/json"


def test_a_5xx_is_retried_until_delivered_and_logs_keep_secrets(server: Server) -> None:
    server.answer(500, 503)
    sink = fast(server.url, headers={"Authorization": TOKEN}, retries=3)
    guard = alerting_guard(sink)
    with capture_logs() as logs:
        flag(guard)
        assert sink.flush(30)
    assert len(server.received) == 3
    assert server.received[0].body == server.received[2].body
    assert (sink.delivered, sink.failed) == (1, 0)
    retries = [entry for entry in logs if entry["event"] == "kinguard.webhook_retry"]
    assert [(entry["attempt"], entry["error"]) for entry in retries] == [
        (1, "HTTP 500"),
        (2, "HTTP 503"),
    ]
    assert retries[0]["target"] == server.url.removesuffix(SECRET_PATH)
    assert not any(secret in str(logs) for secret in ("s3cr3t", "tok-123"))


def test_a_4xx_is_not_retried(server: Server) -> None:
    server.answer(400)
    sink = fast(server.url, retries=3)
    with capture_logs() as logs:
        flag(alerting_guard(sink))
        assert sink.flush(30)
    assert len(server.received) == 1
    assert (sink.delivered, sink.failed) == (0, 1)
    (failed,) = [entry for entry in logs if entry["event"] == "kinguard.webhook_failed"]
    assert failed["error"] == "HTTP 400" and failed["attempts"] == 1


def test_a_redirect_is_a_failure_not_a_bodiless_get(server: Server) -> None:
    server.answer((302, {"Location": "/elsewhere"}))
    sink = fast(server.url)
    flag(alerting_guard(sink))
    assert sink.flush(30)
    assert [r.method for r in server.received] == ["POST"]
    assert (sink.delivered, sink.failed) == (0, 1)


def test_retry_after_sets_the_wait_within_the_cap(server: Server) -> None:
    past = email.utils.format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    server.answer(
        (429, {"Retry-After": "0"}), (503, {"Retry-After": "3600"}), (429, {"Retry-After": past})
    )
    # Without Retry-After the waits would be 0.04 s, then the 0.05 s cap.
    sink = WebhookSink(server.url, retries=3, backoff_s=0.04, max_backoff_s=0.05)
    with capture_logs() as logs:
        flag(alerting_guard(sink))
        assert sink.flush(30)
    waits = [entry["wait_s"] for entry in logs if entry["event"] == "kinguard.webhook_retry"]
    assert waits == [0.0, 0.05, 0.0]
    assert (len(server.received), sink.delivered) == (4, 1)


def test_a_refused_connection_is_retried_then_given_up() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = fast(f"http://127.0.0.1:{port}/hook", retries=2)
    with capture_logs() as logs:
        flag(alerting_guard(sink))
        assert sink.flush(30)
    assert (sink.delivered, sink.failed) == (0, 1)
    events = [entry["event"] for entry in logs if entry["event"].startswith("kinguard.webhook")]
    assert events == ["kinguard.webhook_retry"] * 2 + ["kinguard.webhook_failed"]
    assert "ConnectionRefusedError" in logs[-1]["error"]


def test_inspect_returns_while_the_server_has_not_answered(server: Server) -> None:
    release = server.hang()
    sink = fast(server.url, timeout_s=60, retries=0)
    guard = alerting_guard(sink)
    flag(guard)  # returned: the handler below has not answered yet
    server.wait_for_requests(1)
    assert not release.is_set()
    assert (sink.pending, sink.delivered, sink.failed, guard.sink_failures) == (1, 0, 0, 0)
    release.set()  # the handler answers nothing; the client sees the connection close
    assert sink.flush(30)
    assert sink.pending == 0 and sink.delivered + sink.failed == 1


def test_a_server_that_never_answers_times_out_and_is_retried(server: Server) -> None:
    server.hang(), server.hang()
    sink = fast(server.url, timeout_s=0.2, retries=1)
    with capture_logs() as logs:
        flag(alerting_guard(sink))
        assert sink.flush(30)
    assert (len(server.received), sink.delivered, sink.failed) == (2, 0, 1)
    (failed,) = [entry for entry in logs if entry["event"] == "kinguard.webhook_failed"]
    assert "TimeoutError" in failed["error"] and failed["attempts"] == 2


@pytest.fixture
def tls(tmp_path, monkeypatch) -> ssl.SSLContext:
    """A server's TLS context on a self-signed certificate for 127.0.0.1, which clients in this
    process trust (``SSL_CERT_FILE``; urllib's HTTPS connections read it as they connect)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@contextlib.contextmanager
def dribbling_server(
    answer: bytes, *, prompt: int, tls: ssl.SSLContext | None = None
) -> Iterator[tuple[str, list[bytes]]]:
    """A server that sends the first ``prompt`` bytes of ``answer`` at once and the rest a byte
    every 50 ms: each read is quick, the whole answer takes seconds. Yields its URL and the
    requests it read. With ``tls``, over HTTPS."""
    listener = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if tls is not None:
                try:
                    conn = tls.wrap_socket(conn, server_side=True)
                except OSError:  # the client gave up during the handshake
                    continue
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(4096)
                head, _, body = request.partition(b"\r\n\r\n")
                length = int(next(
                    line.split(b":")[1] for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ))  # fmt: skip
                while len(body) < length:
                    body += conn.recv(4096)
                requests.append(body)
                try:
                    conn.sendall(answer[:prompt])
                    for byte in answer[prompt:]:
                        if done.wait(0.05):
                            return
                        conn.sendall(bytes([byte]))
                except OSError:  # the client gave up
                    continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        scheme = "http" if tls is None else "https"
        yield f"{scheme}://127.0.0.1:{listener.getsockname()[1]}/hook", requests
    finally:
        done.set()
        listener.close()


SLOW_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\nX-Pad: " + b"p" * 60 + b"\r\n\r\n" + b"k" * 200
)


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_a_server_sending_its_answer_a_byte_at_a_time_is_cut_at_the_deadline(
    https: bool, request: pytest.FixtureRequest
) -> None:
    # Each byte comes well within timeout_s: urllib's own time-out, per read, never fires.
    # Over HTTPS the socket the deadline held was detached by TLS: nothing cut the attempt.
    context = request.getfixturevalue("tls") if https else None
    with (
        dribbling_server(SLOW_ANSWER, prompt=5, tls=context) as (url, requests),
        capture_logs() as logs,
    ):
        sink = fast(url, timeout_s=0.3, retries=1)
        flag(alerting_guard(sink))
        assert sink.flush(4), "the attempts were not cut at their deadline"
    assert (len(requests), sink.delivered, sink.failed) == (2, 0, 1)
    (failed,) = [entry for entry in logs if entry["event"] == "kinguard.webhook_failed"]
    assert failed["error"] == "TimeoutError: no answer within 0.3 s"


def test_a_2xx_whose_body_is_slow_counts_as_delivered_and_is_not_sent_again() -> None:
    head_end = SLOW_ANSWER.index(b"\r\n\r\n") + 4
    with dribbling_server(SLOW_ANSWER, prompt=head_end) as (url, requests):
        sink = fast(url, timeout_s=0.3, retries=2)
        flag(alerting_guard(sink))
        assert sink.flush(4)
    assert (len(requests), sink.delivered, sink.failed) == (1, 1, 0)


def test_a_full_queue_drops_the_newest_alert_counted_and_logged(server: Server) -> None:
    release = server.hang()
    sink = fast(server.url, max_queue=2, timeout_s=60, retries=0)
    guard = alerting_guard(sink)
    flag(guard, 0)
    server.wait_for_requests(1)  # alert 0 is being sent: the queue is empty again
    with capture_logs() as logs:
        for turn in (1, 2, 3):
            flag(guard, turn)
    assert (sink.dropped, guard.sink_failures) == (1, 1)
    (dropped,) = [entry for entry in logs if entry["event"] == "kinguard.sink_failed"]
    assert dropped["sink"] == "WebhookSink" and "queue full" in dropped["error"]
    release.set()  # alert 0 gets no answer: it fails; 1 and 2 are sent, 3 never was
    assert sink.flush(30)
    assert [r.json()["turn"] for r in server.received] == [0, 1, 2]  # type: ignore[index]
    assert (sink.delivered, sink.failed, sink.dropped) == (2, 1, 1)


def test_close_waits_for_the_queue_then_refuses_alerts(server: Server) -> None:
    sink = fast(server.url)
    guard = alerting_guard(sink)
    flag(guard, 0)
    flag(guard, 1)
    assert sink.close(30)
    assert sink.delivered == 2 and len(server.received) == 2
    flag(guard, 2)
    assert (sink.dropped, guard.sink_failures, len(server.received)) == (1, 1, 2)


def test_close_gives_up_after_its_timeout_and_logs_the_unsent(server: Server) -> None:
    server.hang()
    sink = fast(server.url, timeout_s=60)
    guard = alerting_guard(sink)
    flag(guard, 0)
    server.wait_for_requests(1)
    flag(guard, 1)
    with capture_logs() as logs:
        assert not sink.close(0.05)
    assert sink.dropped == 1
    (dropped,) = [entry for entry in logs if entry["event"] == "kinguard.webhook_dropped"]
    assert dropped["alerts"] == 1


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (lambda alert: 1 / 0, "ZeroDivisionError"),
        (lambda alert: {"when": {1, 2}}, "TypeError"),
        (lambda alert: {"score": math.nan}, "ValueError"),
        (lambda alert: ["not", "an", "object"], "not a mapping"),
        # Not an Exception: out of the payload, it would end the sink's thread, every later
        # alert queued for good and flush() never returning.
        (lambda alert: sys.exit(3), "SystemExit"),
    ],
    ids=["raises", "not-json", "nan", "a-list", "exits"],
)
def test_a_broken_payload_costs_its_alert_logged_not_the_sink(
    server: Server, payload, error
) -> None:
    calls = 0

    def sometimes_broken(alert: Alert) -> object:
        nonlocal calls
        calls += 1
        return payload(alert) if calls == 1 else {"ok": True}

    sink = fast(server.url, payload=sometimes_broken)
    guard = alerting_guard(sink)
    with capture_logs() as logs:
        flag(guard, 0)
        flag(guard, 1)
        assert sink.flush(30)
    assert [r.json() for r in server.received] == [{"ok": True}]
    assert (sink.delivered, sink.failed, guard.sink_failures) == (1, 1, 0)
    (failed,) = [entry for entry in logs if entry["event"] == "kinguard.webhook_failed"]
    assert failed["error"].startswith("payload: ") and error in failed["error"]


async def test_ainspect_only_queues_the_alert(server: Server) -> None:
    release = server.hang()
    sink = fast(server.url, timeout_s=60)
    guard = alerting_guard(sink)
    verdict = await guard.ainspect(
        Message(sender="buyer", recipients=("seller",), text="ZEBRA-PACT")
    )
    assert verdict.action.value == "alert" and guard.sink_failures == 0
    release.set()
    assert sink.flush(30)


def test_unsent_alerts_are_logged_at_exit_and_do_not_hold_it(server: Server) -> None:
    server.hang()
    script = (
        "from kinguard import Message, WebhookSink\n"
        "from kinguard.testing import keyword_guard\n"
        f"sink = WebhookSink({server.url!r}, timeout_s=3600, repeats=True)\n"
        "guard = keyword_guard(['a', 'b'], 'alert', sinks=[sink])\n"
        "guard.inspect(Message(sender='a', recipients=('b',), text='ZEBRA-PACT'))\n"
        "guard.inspect(Message(sender='a', recipients=('b',), text='ZEBRA-PACT'))\n"
        "print('done', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "kinguard.webhook_unsent" in done.stdout and "alerts=2" in done.stdout


def test_a_forked_child_sends_its_own_alerts_not_the_parents(server: Server) -> None:
    server.hang()
    script = (
        "import os\n"
        "from kinguard import Message, WebhookSink\n"
        "from kinguard.testing import keyword_guard\n"
        f"sink = WebhookSink({server.url!r}, timeout_s=3600, repeats=True)\n"
        "guard = keyword_guard(['a', 'b'], 'alert', sinks=[sink])\n"
        "flag = lambda: guard.inspect(Message(sender='a', recipients=('b',), text='ZEBRA-PACT'))\n"
        "flag(); flag()\n"  # the first hangs in the parent's thread, the second waits
        "input()\n"  # until the first reached the server, so the child's is not the one to hang
        "if (child := os.fork()) == 0:\n"
        "    clean = sink.pending == 0\n"
        "    flag()\n"
        "    os._exit(0 if clean and sink.flush(30) and sink.delivered == 1 else 1)\n"
        "print('child', os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        server.wait_for_requests(1)
        out, err = process.communicate("go\n", timeout=60)
    finally:
        process.kill()  # only if it is still running: a failed wait leaves it at input()
    assert process.returncode == 0, err
    assert "child 0" in out
    assert len(server.received) == 2  # the parent's first alert and the child's own


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"url": "ftp://example.com/hook"}, "url"),
        ({"url": "example.com/hook"}, "url"),
        ({"url": "https:///hook"}, "url"),
        ({"url": "https://example.com:port/hook"}, "url"),
        # urllib sends none of these: http.client's refusal would quote the path at every
        # alert, and user info is neither sent nor parsed (its password read as the port).
        ({"url": "https://user:s3cr3t@example.com/hook"}, "url"),
        ({"url": "https://s3cr3t@example.com:8443/hook"}, "url"),
        ({"url": "https://example.com/s3cr3t tok"}, "url"),
        ({"url": "https://example.com/hook?k=s3cr3t\x7f"}, "url"),
        ({"url": "https://example.com/s3cr3t\u00e9"}, "url"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": math.inf}, "timeout_s"),
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"backoff_s": -0.1}, "backoff_s"),
        ({"max_backoff_s": math.nan}, "max_backoff_s"),
        ({"max_queue": 0}, "max_queue"),
        ({"payload": "text"}, "payload"),
        ({"repeats": "no"}, "repeats"),
        ({"headers": {"Bad Name": "x"}}, "headers"),
        ({"headers": {"Authorization": "Bearer s3cr3t\r\nX-Evil: 1"}}, "headers"),
        ({"headers": {"Authorization": "Bearer s3cr3t€"}}, "headers"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument(arguments, named) -> None:
    arguments = {"url": "https://hooks.example.com/s3cr3t", **arguments}
    with pytest.raises(ValueError, match=f"^{named}: ") as raised:
        WebhookSink(**arguments)
    assert "s3cr3t" not in str(raised.value)


def test_logs_name_the_scheme_and_host_only() -> None:
    sink = WebhookSink("https://hooks.example.com:8443/services/s3cr3t?k=s3cr3t#s3cr3t")
    assert sink.target == "https://hooks.example.com:8443"


@pytest.mark.parametrize(
    "url",
    [
        " https://example.com/hook\n",  # as read from a file; urllib strips the ends
        "https://example.com/hook#a fragment é",  # urllib does not send the fragment
        "https://bücher.example/hook",  # an internationalised host is sent as IDNA
    ],
)
def test_urls_urllib_can_send_are_accepted(url: str) -> None:
    assert WebhookSink(url).target.startswith("https://")
