"""A loopback HTTP server that serves recorded responses at the real URL paths.

Used by ``yieldstream demo`` and by the end-to-end tests: every source's base URL
points at it, so the real collectors run unchanged, offline. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

if TYPE_CHECKING:
    from ingest._records import Endpoint


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

    def do_POST(self) -> None:
        """A POST (a GraphQL query) is answered like a GET of its path; a JSON-RPC
        call by the route of its method, ``<path>#<method>``, where there is one."""
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = orjson.loads(self.rfile.read(length))
        except orjson.JSONDecodeError:
            body = None
        method = body.get("method") if isinstance(body, dict) else None
        self.do_GET(method if isinstance(method, str) else None)

    def do_GET(self, method: str | None = None) -> None:
        path = self.path.split("?", 1)[0]
        self.hits[path] = self.hits.get(path, 0) + 1
        route = self.routes.get(f"{path}#{method}") if method else None
        route = route or self.routes.get(path)
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
    """The recorded responses of every registered source, at their real paths.

    Each recorded file is served at the snapshot endpoint its name names (see
    :func:`ingest._records.recorded_path`; an entity endpoint's file names its
    entity). Where several files name one list path, the first by name is the
    response and the items of the others are added to it, each native id once
    (``/pools`` serves both recorded ``/pools`` samples in the live envelope); a
    single-item endpoint serves its first file. A recording its name marks
    ``TRUNCATED`` (a docs sample cut short) is read by the tests, never served.

    Every route is served under ``/<source>`` too: a source whose base URL is
    :func:`source_url` gets its own responses where two sources share a path
    (``/graphql``). The bare paths are the ones no two sources share.

    JSON-RPC calls share one path: a recording named after a method
    (``getInflationGovernor-*.json``) that names no endpoint answers that method's
    POSTs to its source's POST endpoint (route ``<path>#<method>``).
    """
    served = [
        (name, path, Reply(body=_merged(endpoint, recordings)))
        for name, endpoint, path, recordings in _recorded_by_source(root)
    ]
    served += [(name, key, Reply(body=body)) for name, key, body in _recorded_calls(root)]
    routes: dict[str, Route] = {}
    shared: set[str] = set()
    for name, path, reply in served:
        routes[f"/{name}{path}"] = reply
        if path in routes or path in shared:
            shared.add(path)
            routes.pop(path, None)
        else:
            routes[path] = reply
    return routes


_METHOD = re.compile(r"[a-z]+[A-Z][A-Za-z]*")


def _recorded_calls(root: Path | None) -> Iterator[tuple[str, str, bytes]]:
    """JSON-RPC recordings named after their method: ``(source, path#method, body)``."""
    from ingest._records import recorded_path
    from yieldstream.registry import sources

    root = root or recorded_dir()
    for src in sources().values():
        posts = {e.path for e in src.endpoints if e.method == "POST"}
        for recorded in sorted((root / src.name).glob("*.json")):
            method = recorded.name.split("-", 1)[0]
            if posts and _METHOD.fullmatch(method) and not recorded_path(src.endpoints, recorded):
                for path in sorted(posts):
                    yield src.name, f"{path}#{method}", recorded.read_bytes()


def source_url(url: str, source: str) -> str:
    """The base URL that serves ``source`` its own recorded responses (see above)."""
    return f"{url}/{source}"


def recorded_settings(root: Path | None = None) -> dict[str, dict[str, list[str]]]:
    """Per source, the entity settings (``chains``) naming only the recorded entities.

    A source that requests one path per entity is pointed at the loopback server
    with these, so it asks only for what :func:`recorded_routes` serves.
    """
    settings: dict[str, dict[str, list[str]]] = {}
    for name, endpoint, path, _ in _recorded_by_source(root):
        entity = endpoint.entity_of(path)
        if endpoint.entities is not None and entity is not None:
            listed = settings.setdefault(name, {}).setdefault(endpoint.entities, [])
            if entity not in listed:  # two endpoints may share one setting (chains)
                listed.append(entity)
    return settings


def _recorded_by_source(
    root: Path | None,
) -> Iterator[tuple[str, Endpoint, str, list[Path]]]:
    from ingest._records import recorded_path
    from yieldstream.registry import sources

    root = root or recorded_dir()
    for src in sources().values():
        by_path: dict[str, tuple[Endpoint, list[Path]]] = {}
        for recorded in sorted((root / src.name).glob("*.json")):
            if "TRUNCATED" in recorded.name:  # a cut recording is no whole response
                continue
            named = recorded_path(src.endpoints, recorded)
            if named is not None:
                by_path.setdefault(named[1], (named[0], []))[1].append(recorded)
        for path, (endpoint, recordings) in by_path.items():
            yield src.name, endpoint, path, recordings


def _merged(endpoint: Endpoint, recordings: list[Path]) -> bytes:
    first = recordings[0].read_bytes()
    if endpoint.single or len(recordings) == 1:
        return first
    body = orjson.loads(first)
    items = endpoint.items(body, str(recordings[0]))
    seen = {orjson.dumps(endpoint.native_id(item, i)) for i, item in enumerate(items)}
    for recorded in recordings[1:]:
        for index, item in enumerate(endpoint.items(orjson.loads(recorded.read_bytes()), "")):
            key = orjson.dumps(endpoint.native_id(item, index))
            if key not in seen:
                seen.add(key)
                items.append(item)
    return orjson.dumps(body)
