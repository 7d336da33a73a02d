"""What a daemon tells its operators: ``/metrics``, ``/healthz`` and ``/readyz``.

Every role (``run``, ``collect``, ``transform``, ``sink``) serves them on its
``metrics_port`` from a small WSGI server in a thread of its own, so they answer
while the event loop is busy:

``/metrics``  the Prometheus exposition of :mod:`yieldstream.metrics`;
``/healthz``  200 while the process is up;
``/readyz``   200 once every part the role has is ready, else 503 with a JSON object
              naming each part that is not and why:

              * ``store`` (sink and run): opened and read, and the last write committed;
              * ``bus`` (Kafka roles): topics checked, producer started;
              * ``source:<name>`` (collect and run): each polled source is fresh. It is
                judged as the ``stale_source`` alert judges it (:mod:`sinks.alerts`):
                stale once it has gone ``alerts.stale_after_h`` without a successful
                fetch, counted from its first fetch when none succeeded yet. A source
                whose first fetch has not finished is not ready either.

:class:`Health` is written by the pipeline on the event loop and read by the
server's thread; a lock keeps each read whole.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import prometheus_client

from yieldstream import metrics

StartResponse = Callable[..., Any]
Environ = dict[str, Any]


@dataclass(slots=True)
class _Fetches:
    first_s: float | None = None  # when its first fetch finished (unix seconds)
    last_ok_s: float | None = None
    failures: int = 0  # in a row


class Health:
    """Whether each part of a daemon is ready, and why not (``/readyz``)."""

    def __init__(self, stale_after_s: float = 6 * 3600.0) -> None:
        self.stale_after_s = stale_after_s
        self._lock = threading.Lock()
        self._waiting: dict[str, str] = {}
        self._sources: dict[str, _Fetches] = {}

    def waiting(self, part: str, reason: str) -> None:
        """``part`` is not ready, for ``reason``."""
        with self._lock:
            self._waiting[part] = reason

    def ready(self, part: str) -> None:
        with self._lock:
            self._waiting.pop(part, None)

    def polls(self, sources: Iterable[str]) -> None:
        """These sources are polled here: each must be fresh for the role to be ready."""
        with self._lock:
            for name in sources:
                self._sources.setdefault(name, _Fetches())
                metrics.SOURCE_FAILURES.labels(name).set(0)

    def fetched(self, source: str, ok: bool, duration_s: float) -> None:
        """A fetch run of ``source`` finished (``ok``: it succeeded) after ``duration_s``."""
        now = time.time()
        with self._lock:
            state = self._sources.setdefault(source, _Fetches())
            if state.first_s is None:
                state.first_s = now
            if ok:
                state.last_ok_s = now
                state.failures = 0
            else:
                state.failures += 1
            failures = state.failures
        metrics.FETCH_DURATION.labels(source).observe(duration_s)
        metrics.SOURCE_FAILURES.labels(source).set(failures)
        if ok:
            metrics.SOURCE_LAST_SUCCESS.labels(source).set(now)

    def problems(self, now: float | None = None) -> dict[str, str]:
        """Each part that is not ready and why; empty when the role is ready."""
        now = time.time() if now is None else now
        with self._lock:
            found = dict(self._waiting)
            sources = {name: replace(state) for name, state in self._sources.items()}
        hours = self.stale_after_s / 3600
        for name, state in sorted(sources.items()):
            since = state.last_ok_s if state.last_ok_s is not None else state.first_s
            if since is None:
                found[f"source:{name}"] = "first fetch not finished yet"
            elif now - since > self.stale_after_s:
                found[f"source:{name}"] = (
                    f"stale: no successful fetch for {(now - since) / 3600:.1f} h "
                    f"(stale after {hours:g} h; {state.failures} failed in a row)"
                )
        return found


def app(health: Health) -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    """The WSGI application behind a daemon's metrics port."""
    exposition = prometheus_client.make_wsgi_app()

    def respond(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/metrics":
            scraped: Iterable[bytes] = exposition(environ, start_response)
            return scraped
        if path == "/healthz":
            return _json(start_response, "200 OK", {"status": "ok"})
        if path == "/readyz":
            problems = health.problems()
            if problems:
                body = {"status": "not ready", "waiting": problems}
                return _json(start_response, "503 Service Unavailable", body)
            return _json(start_response, "200 OK", {"status": "ready"})
        return _json(start_response, "404 Not Found", {"error": f"no page {path}"})

    return respond


def _json(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body, sort_keys=True).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [data]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def server_bind(self) -> None:
        # WSGIServer's would look the host's name up in DNS, which may hang.
        super(WSGIServer, self).server_bind()
        self.setup_environ()


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged: one a few seconds would drown the daemon's log."""


class Server:
    """``app(health)`` served on ``host:port`` from a thread, until :meth:`close`.

    Binding happens here: an ``OSError`` (the port in use...) is raised as it is.
    """

    def __init__(self, host: str, port: int, health: Health) -> None:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

        class Bound(_Server):
            address_family = family

        self._server = make_server(host, port, app(health), Bound, _Quiet)
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="metrics", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
