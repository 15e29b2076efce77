"""An alert sink that POSTs each alert to a webhook, with retries, off the agent's path.

Standard library only (``urllib.request``), imported by the sink's own thread at its first
delivery: importing kinguard does not cost ``ssl`` and ``http.client`` (≈ 30 ms), nor does
building the sink in the app's start-up.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import math
import os
import re
import socket
import threading
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from kinguard.alerts import is_repeat
from kinguard.logs import describe_error, get_logger
from kinguard.types import Alert

if TYPE_CHECKING:
    import urllib.request
    from email.message import Message as HTTPMessage

__all__ = ["WebhookSink"]

_log = get_logger("kinguard.webhook")

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110's token
_UNSENDABLE = re.compile(r"[\x00-\x20\x7f]")  # what http.client refuses in a URL

_JSON_HEADERS = {
    "Content-Type": "application/json",
    # urllib's default, "Python-urllib/3.x", is refused by some hosts' bot filters (Discord's).
    "User-Agent": "kinguard",
}


class _Failure(NamedTuple):
    """Why one POST failed, and whether trying again can help. (Not a dataclass: that would
    cost every ``import kinguard`` ≈ 0.3 ms more.)"""

    reason: str
    retryable: bool
    retry_after_s: float | None = None
    """The server's ``Retry-After``, in seconds, when it sent a readable one."""


class WebhookSink:
    """POSTs each alert as JSON to ``url``, in order, from a daemon thread of its own.

    The dispatcher calls it ``inline``, in the agent's thread, where it only queues the alert.
    Delivery, retries and back-off happen on the sink's thread: a sink that retried inside its
    call would overrun the dispatcher's ``sink_timeout_ms``, and the dispatcher skips such a
    sink until the call ends, so an outage would lose every alert raised during it.

    - ``payload``: shapes an alert into the JSON object sent (default: every field of the
      :class:`Alert`); e.g. ``lambda alert: {"text": ...}`` for a Slack incoming webhook.
      One that raises or returns what is not a JSON object costs that alert, logged.
    - ``timeout_s``: for one attempt, from connecting until the answer's status is in (its
      sockets are shut at the deadline: a server sending a byte at a time cannot hold the
      thread). ``retries``: attempts after the
      first, on connection errors, time-outs, 429 and 5xx answers, never on another status
      (redirects are not followed: urllib would re-send the POST as a bodiless GET). The
      waits double from ``backoff_s``; a ``Retry-After`` answer sets the wait instead; either
      is capped at ``max_backoff_s``.
    - ``repeats``: also send the alerts that repeat their incident (``alert.repeat``). By
      default they are skipped, as a chat channel or pager wants: each incident's first
      alert, its escalations and its new signals are sent; ``skipped`` counts the rest.
    - ``max_queue``: alerts waiting to be sent. When it is full, the *newest* alert is dropped
      (the first alerts of an incident are kept): the call raises, so the guard logs and
      counts it as a failed sink (``guard.sink_failures``).

    Every failure is logged (``kinguard.webhook_retry``, ``kinguard.webhook_failed``,
    ``kinguard.webhook_dropped``) with the URL's scheme and host only, never its path, query
    or user info, nor the headers: they carry tokens. ``delivered``, ``failed`` (given up)
    and ``dropped`` (never attempted) count alerts. The thread never keeps the process from
    exiting; :meth:`flush` and :meth:`close` wait for it, and alerts still unsent when the
    interpreter exits are logged (``kinguard.webhook_unsent``).
    """

    inline = True

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        payload: Callable[[Alert], Mapping[str, Any]] | None = None,
        max_queue: int = 1000,
        repeats: bool = False,
    ) -> None:
        self._url = url  # not public: its path is often the webhook's secret
        self.target = _target(url)
        self.timeout_s = _number("timeout_s", timeout_s, positive=True)
        self.retries = _count("retries", retries, minimum=0)
        self.backoff_s = _number("backoff_s", backoff_s)
        self.max_backoff_s = _number("max_backoff_s", max_backoff_s)
        self.max_queue = _count("max_queue", max_queue, minimum=1)
        if payload is not None and not callable(payload):
            raise ValueError(f"payload: must be callable, not {type(payload).__name__}")
        self.payload = payload
        if not isinstance(repeats, bool):
            raise ValueError(f"repeats: must be True or False, not {repeats!r}")
        self.repeats = repeats
        self._headers = {**_JSON_HEADERS, **_checked_headers(headers or {})}
        self._opener: urllib.request.OpenerDirector | None = None  # built on the sink's thread
        self._attempt = _Attempt()  # the POST under way, or the last one
        self._cond = threading.Condition()
        self._queue: deque[Alert] = deque()
        self._busy = False  # the thread holds an alert it took off the queue
        self._closed = False
        # Set once close() stops waiting: ends the thread, and cuts a back-off short.
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._delivered = 0
        self._failed = 0
        self._dropped = 0
        self._skipped = 0
        _live.add(self)

    # -- the agent's side ------------------------------------------------------------------

    def __call__(self, alert: Alert) -> None:
        with self._cond:
            if not self.repeats and is_repeat(alert):
                self._skipped += 1
                return
            if self._closed:
                self._dropped += 1
                raise RuntimeError("closed: alert not sent")
            if len(self._queue) >= self.max_queue:
                self._dropped += 1
                raise RuntimeError(f"queue full ({self.max_queue} alerts unsent): alert dropped")
            self._queue.append(alert)
            # Started at the first alert, not at construction: a guard built before a fork
            # (gunicorn's preload) has no thread in the child (see _after_fork).
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="kinguard-webhook", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    @property
    def delivered(self) -> int:
        return self._delivered

    @property
    def failed(self) -> int:
        """Alerts given up on: rejected, out of retries, or a ``payload`` that failed."""
        return self._failed

    @property
    def dropped(self) -> int:
        """Alerts never attempted: the queue was full, or the sink closed."""
        return self._dropped

    @property
    def skipped(self) -> int:
        """Repeats of an incident not sent (``repeats=False``)."""
        return self._skipped

    @property
    def pending(self) -> int:
        """Alerts queued or being sent."""
        with self._cond:
            return len(self._queue) + self._busy

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every alert queued so far is delivered or given up; False on time-out."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout_s)

    def close(self, timeout_s: float | None = 10.0) -> bool:
        """Refuse new alerts, wait up to ``timeout_s`` for the queued ones, then stop.

        Returns whether every alert was settled in time. Alerts still queued then are dropped
        (logged, counted); one being sent ends with its current attempt.
        """
        with self._cond:
            self._closed = True
        settled = self.flush(timeout_s)
        with self._cond:
            self._stop.set()
            unsent = len(self._queue)
            self._queue.clear()
            self._dropped += unsent
            self._cond.notify_all()
        if unsent:
            _log.error("kinguard.webhook_dropped", target=self.target, alerts=unsent)
        return settled

    # -- the sink's thread -----------------------------------------------------------------

    def _run(self) -> None:
        while (alert := self._next()) is not None:
            try:
                self._deliver(alert)
            except Exception as exc:  # a bug, or an error urllib was not expected to raise
                # Its type only: what it quotes is unknown, and the request holds tokens.
                self._give_up(alert, describe_error(exc, quote=False), attempts=1)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _next(self) -> Alert | None:
        with self._cond:
            while not self._queue and not self._stop.is_set():
                self._cond.wait()
            if self._stop.is_set():
                return None
            self._busy = True
            return self._queue.popleft()

    def _deliver(self, alert: Alert) -> None:
        try:
            body = self._encode(alert)
        # The app's code on the sink's thread: a SystemExit out of it would end the thread,
        # leaving every later alert queued for good and flush() waiting forever.
        except BaseException as exc:
            self._give_up(alert, f"payload: {describe_error(exc, quote=True)}", attempts=0)
            return
        backoff = self.backoff_s
        attempt = 1
        while (failure := self._post(body)) is not None:
            if not failure.retryable or attempt > self.retries:
                self._give_up(alert, failure.reason, attempts=attempt)
                return
            wait = backoff if failure.retry_after_s is None else failure.retry_after_s
            wait = min(wait, self.max_backoff_s)
            _log.warning(
                "kinguard.webhook_retry",
                target=self.target,
                message_id=alert.message_id,
                attempt=attempt,
                wait_s=round(wait, 3),
                error=failure.reason,
            )
            if self._stop.wait(wait):
                self._give_up(alert, f"{failure.reason}; closed before a retry", attempts=attempt)
                return
            backoff = min(backoff * 2, self.max_backoff_s)
            attempt += 1
        with self._cond:
            self._delivered += 1

    def _encode(self, alert: Alert) -> bytes:
        data = alert.model_dump(mode="json") if self.payload is None else self.payload(alert)
        if not isinstance(data, Mapping):
            raise TypeError(f"returned {type(data).__name__}, not a mapping")
        # Strict JSON: a NaN would be sent as a bare word most servers refuse.
        return json.dumps(dict(data), allow_nan=False).encode()

    def _post(self, body: bytes) -> _Failure | None:
        """One attempt: None if the server took it (2xx)."""
        import http.client
        import urllib.error
        import urllib.request

        attempt = self._attempt = _Attempt()
        if self._opener is None:
            watch = self._watch
            self._opener = urllib.request.build_opener(
                _no_redirects(), _watched(urllib.request.HTTPHandler, watch),
                _watched(urllib.request.HTTPSHandler, watch),
            )  # fmt: skip
        request = urllib.request.Request(self._url, data=body, headers=self._headers, method="POST")
        # urllib's time-out bounds each socket operation: a server sending a byte at a time
        # would hold the sink's thread (and every alert queued behind it) for as long as it
        # liked. The attempt's sockets are shut at its deadline instead.
        deadline = threading.Timer(self.timeout_s, attempt.expire)
        deadline.daemon = True
        deadline.start()
        try:
            # Past ``open``, a 2xx status is in: the server took the alert. The rest of the
            # answer is read so the connection ends cleanly; cut short, it is no reason to
            # send the alert again.
            with (
                self._opener.open(request, timeout=self.timeout_s) as response,
                contextlib.suppress(OSError, http.client.HTTPException),
            ):
                response.read()
        except urllib.error.HTTPError as exc:
            with exc:  # it holds the answer's stream open
                if exc.code == 429 or exc.code >= 500:
                    return _Failure(f"HTTP {exc.code}", True, _retry_after(exc.headers))
                return _Failure(f"HTTP {exc.code}", False)
        except (OSError, http.client.HTTPException) as exc:
            if attempt.expired:
                return _Failure(f"TimeoutError: no answer within {self.timeout_s:g} s", True)
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            if isinstance(reason, BaseException):  # could not connect, time-out, reset
                return _Failure(describe_error(reason, quote=True), True)
            return _Failure(str(reason), True)
        finally:
            deadline.cancel()
            attempt.end()
        return None

    def _watch(self, sock: socket.socket) -> socket.socket:
        """Called with each socket the current attempt opens (on the sink's thread)."""
        self._attempt.watch(sock)
        return sock

    def _give_up(self, alert: Alert, reason: str, *, attempts: int) -> None:
        with self._cond:
            self._failed += 1
        _log.error(
            "kinguard.webhook_failed",
            target=self.target,
            conversation_id=alert.conversation_id,
            message_id=alert.message_id,
            attempts=attempts,
            error=reason,
        )


class _Attempt:
    """The sockets of one POST, shut down together when its time is up.

    Shutting a socket down from another thread wakes the sink's thread at once from a
    blocked TLS handshake or read, which then fails; nothing else in the standard library
    bounds a whole request. It holds a duplicate of each: TLS wraps the socket in a new
    object on its descriptor and detaches the one it was given, which can then shut nothing
    (an HTTPS server answering a byte at a time held the thread for as long as it liked),
    while a shutdown through a duplicate reaches the connection whatever wraps it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._ended = False
        self.expired = False

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self._ended:
                return
            try:
                dup = sock.dup()
            except OSError:  # out of descriptors: urllib's time-out per operation is left
                return
            self._sockets.append(dup)
            if self.expired:
                _shut(dup)

    def expire(self) -> None:
        with self._lock:
            if self._ended:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def end(self) -> None:
        """Close the duplicates: a connection stays open while one of its descriptors is."""
        with self._lock:
            self._ended = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed, or never connected
        sock.shutdown(socket.SHUT_RDWR)


def _watched(
    handler: type[urllib.request.AbstractHTTPHandler],
    watch: Callable[[socket.socket], socket.socket],
) -> urllib.request.AbstractHTTPHandler:
    """``handler`` whose connections hand each socket they open to ``watch`` first.

    The socket is caught as it is created, before any TLS handshake on it, through the
    connection's ``_create_connection`` (set by ``HTTPConnection.__init__``); a
    proxy's tunnel goes through it too.
    """

    class Watched(handler):  # type: ignore[valid-type,misc]
        def do_open(self, http_class: Any, req: urllib.request.Request, **kwargs: Any) -> Any:
            def connection(*args: Any, **kw: Any) -> Any:
                conn = http_class(*args, **kw)
                create = conn._create_connection
                conn._create_connection = lambda *a, **k: watch(create(*a, **k))
                return conn

            return super().do_open(connection, req, **kwargs)

    return Watched()


@functools.cache
def _no_redirects() -> type[urllib.request.HTTPRedirectHandler]:
    """A redirect handler that turns every redirect into an error. Defined at first use, as
    its base class is in ``urllib.request``."""
    import urllib.request

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        # urllib re-sends a POST answered with 301-303 as a GET without its body: the alert
        # would count as delivered though nobody got it.
        def redirect_request(
            self,
            req: urllib.request.Request,
            fp: IO[bytes],
            code: int,
            msg: str,
            headers: HTTPMessage,
            newurl: str,
        ) -> urllib.request.Request | None:
            return None

    return NoRedirects


def _target(url: object) -> str:
    """The URL's scheme and host, for logs; raises ``ValueError`` naming ``url`` if unusable.
    Neither the URL nor its parts are quoted: a webhook's path is often its secret."""
    if not isinstance(url, str):
        raise ValueError(f"url: must be a string, not {type(url).__name__}")
    # What urllib sends: the text without the whitespace around it, nor its fragment. A URL
    # it cannot send is refused here, once: at send, http.client's error quotes the path in
    # the log of every alert.
    sent = url.strip().partition("#")[0]
    if _UNSENDABLE.search(sent):
        raise ValueError("url: spaces and control characters must be percent-encoded")
    try:
        parts = urlsplit(sent)
        parts.port  # noqa: B018  (raises on a port that is not a number in range)
    except ValueError as exc:
        raise ValueError("url: not a valid URL (its host or port)") from exc
    if parts.scheme not in ("http", "https"):
        raise ValueError("url: the scheme must be http or https")
    if not parts.hostname:
        raise ValueError("url: no host")
    if "@" in parts.netloc:
        # urllib sends no credentials from a URL, and reads "user:password@host" as a host
        # whose port is "password@host".
        raise ValueError("url: user info is not sent; pass credentials in headers=")
    if not (parts.path + parts.query).isascii():  # a host may be: it is sent as IDNA
        raise ValueError("url: a non-ASCII path or query must be percent-encoded")
    return f"{parts.scheme}://{parts.netloc}"


def _number(name: str, value: object, *, positive: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
    ):
        raise ValueError(
            f"{name}: must be a finite number {'>' if positive else '>='} 0, not {value!r}"
        )
    return float(value)


def _count(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: must be a whole number >= {minimum}, not {value!r}")
    return value


def _checked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers, refused here rather than at every send; values are never quoted (tokens)."""
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"headers: {name!r} is not a header name")
        # http.client sends values as Latin-1 and refuses line breaks: found here, an error
        # names the header; found at send, it would quote the value.
        if not isinstance(value, str) or "\r" in value or "\n" in value or not _latin1(value):
            raise ValueError(f"headers: the value of {name!r} must be Latin-1 text on one line")
        checked[name] = value
    return checked


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _retry_after(headers: HTTPMessage) -> float | None:
    """A ``Retry-After`` header in seconds (it is a number of seconds or an HTTP date)."""
    import email.utils

    value = (headers.get("Retry-After") or "").strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


_live: weakref.WeakSet[WebhookSink] = weakref.WeakSet()


def _after_fork() -> None:
    """A forked child has none of the parent's threads but a copy of its sinks: their lock
    may be held (by a thread that is gone) and their queue is the parent's to send, twice if
    the child sent it too. Each child starts with a fresh, empty sink."""
    for sink in list(_live):
        sink._cond = threading.Condition()
        stopped, sink._stop = sink._stop.is_set(), threading.Event()
        if stopped:
            sink._stop.set()
        sink._queue.clear()
        sink._busy = False
        sink._thread = None


os.register_at_fork(after_in_child=_after_fork)


@atexit.register
def _report_unsent() -> None:
    """At exit the sinks' daemon threads die with what they hold: say so, not silently."""
    for sink in list(_live):
        if unsent := sink.pending:
            _log.error("kinguard.webhook_unsent", target=sink.target, alerts=unsent)
