"""A loopback HTTP server that serves recorded responses at the real URL paths.

Used by ``yieldstream demo`` and by the end-to-end tests: every source's base URL
points at it, so the real collectors run unchanged, offline. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar

import orjson


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0  # wait this long before answering (a hanging upstream)


Route = Reply | Callable[[], Reply]


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[Mapping[str, Route]]
    hits: ClassVar[dict[str, int]]

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.hits[path] = self.hits.get(path, 0) + 1
        route = self.routes.get(path)
        reply = (
            Reply(404, b'{"error":"not found"}')
            if route is None
            else (route() if callable(route) else route)
        )
        if reply.delay_s:
            time.sleep(reply.delay_s)
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its deadline passed); nothing to do

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(routes: Mapping[str, Route]) -> Iterator[tuple[str, dict[str, int]]]:
    """Serve ``routes`` on 127.0.0.1; yields the base URL and a per-path hit counter."""
    hits: dict[str, int] = {}
    handler = type("Handler", (_Handler,), {"routes": dict(routes), "hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="loopback", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def recorded_dir() -> Path:
    """The recorded real responses: bundled in a wheel, or the checkout's tests/fixtures."""
    bundled = Path(str(files("yieldstream"))) / "_recorded"
    if bundled.is_dir():
        return bundled
    return Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def recorded_routes(root: Path | None = None) -> dict[str, Route]:
    """The recorded responses of every source, at their real paths.

    ``/pools`` serves the items of both recorded ``/pools`` samples in the live
    envelope ``{"status": "success", "data": [...]}``.
    """
    root = root or recorded_dir()
    pools: list[Any] = []
    for name in ("pools-stablecoin_quant.json", "pools-2records-from-cn-doc.json"):
        pools.extend(orjson.loads((root / "defillama-yields" / name).read_bytes())["data"])
    lido = root / "lido"
    last, sma = "apr-last-from-mcp-test.json", "apr-sma-from-mcp-test.json"
    return {
        "/pools": Reply(body=orjson.dumps({"status": "success", "data": pools})),
        "/protocols": Reply(
            body=(
                root / "defillama-protocols" / "protocols-rows-onchain-analytics-first6.json"
            ).read_bytes()
        ),
        "/v1/protocol/steth/apr/last": Reply(body=(lido / last).read_bytes()),
        "/v1/protocol/steth/apr/sma": Reply(body=(lido / sma).read_bytes()),
    }
