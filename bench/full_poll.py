"""Benchmark: one poll of every source at realistic response sizes, and steady memory.

A loopback server serves every source's recorded responses (the recorded shapes)
grown to realistic sizes: each list of items, and each collection keyed by id (Beefy's
``{vault: ...}``), is repeated with ids made unique until it holds ``--scale`` times
the base size (20,000 DefiLlama pools at scale 1; 1,000 items for the other lists);
GraphQL listings paged by ``skip`` are served page by page from the grown list.
Each run is a fresh process with a fresh store:

* **poll**: ``yieldstream run --once`` in-process (``run_pipeline``) with every
  source enabled: seconds, rows stored, peak RSS;
* **peer**: the same requests by a hand-written httpx + orjson loop that only fetches
  and parses (no validation, no archive, no store): the cost of the network and JSON
  alone, as the floor a poll is measured against;
* **steady**: the daemon polling every source every ``--interval`` seconds for
  ``--polls`` polls; RSS (process and children) after each poll.

Run (from the repository root, with the ``bench`` extra installed)::

    python -m bench.full_poll --scale 0.25,1 --repeat 3 --polls 8

Prints one JSON line per run, then medians, the poll/peer ratio, and how the poll
grows from the smallest to the largest scale.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import orjson

POOLS_AT_SCALE_1 = 20_000
ITEMS_AT_SCALE_1 = 1_000


# Fields that name a product (its id, address, market, token): renamed in each copy.
_NAMING = re.compile(
    r"(^id$|_id$|Id$|^address$|Address$|key$|Key$|^pool$|^symbol$|Symbol$|^name$|"
    r"^slug$|^ccy$|^currency$|^coin$|^comet$|^reserve$|^market$|^vault$|^token$|^mint$)"
)


def _renamed(node: Any, copy_no: int) -> tuple[Any, bool]:
    """A copy of ``node`` whose naming fields end ``-<copy_no>``, and whether any did."""
    if isinstance(node, dict):
        out, changed = {}, False
        for key, value in node.items():
            if isinstance(value, str) and value and _NAMING.search(key):
                out[key], changed = f"{value}-{copy_no}", True
            else:
                out[key], inner = _renamed(value, copy_no)
                changed = changed or inner
        return out, changed
    if isinstance(node, list):
        parts = [_renamed(v, copy_no) for v in node]
        return [p for p, _ in parts], any(c for _, c in parts)
    return node, False


def _grown_list(items: list[Any], copies: int, id_key: str | int) -> list[Any]:
    """``items`` and ``copies`` copies of each, the copies' naming fields made unique.

    An item with nothing naming it (a point of a time series) is not repeated: its
    copies would be the same point again.
    """
    grown = list(items)
    for copy_no in range(1, copies + 1):
        for item in items:
            if isinstance(item, list) and isinstance(id_key, int) and len(item) > id_key:
                if isinstance(item[id_key], str):
                    renamed = f"{item[id_key]}-{copy_no}"
                    grown.append([*item[:id_key], renamed, *item[id_key + 1 :]])
                continue
            copied, changed = _renamed(item, copy_no)
            if changed:
                grown.append(copied)
    return grown


def _grown_keyed(node: dict[str, Any], copies: int) -> dict[str, Any]:
    """A collection keyed by id (``{id: {...}}``) with ``copies`` copies of each, named alike."""
    out = dict(node)
    for copy_no in range(1, copies + 1):
        for key, value in node.items():
            out[f"{key}-{copy_no}"] = _renamed(value, copy_no)[0]
    return out


def _keyed(node: Any) -> bool:
    return (
        isinstance(node, dict)
        and len(node) > 0
        and all(
            isinstance(v, dict | int | float) and not isinstance(v, bool) for v in node.values()
        )
    )


def _items_at(body: Any, items_at: tuple[str, ...]) -> Any:
    for key in items_at:
        body = body.get(key) if isinstance(body, dict) else None
    return body


def size(body: Any, items_at: tuple[str, ...]) -> int:
    """How many items (or keyed entries) a recorded body holds."""
    node = _items_at(body, items_at)
    if isinstance(node, list):
        return len(node)
    if _keyed(node):
        values = list(node.values())
        return sum(len(v) for v in values) if all(_keyed(v) for v in values) else len(node)
    return 1


def grow(body: Any, items_at: tuple[str, ...], id_key: str | int, copies: int) -> Any:
    """The body with ``copies`` renamed copies of each of its items (at ``items_at``)."""
    if not items_at:
        if isinstance(body, list):
            return _grown_list(body, copies, id_key)
        if _keyed(body):
            if all(_keyed(v) for v in body.values()):  # {chain: {id: value}}
                return {k: _grown_keyed(v, copies) for k, v in body.items()}
            return _grown_keyed(body, copies)
        return body
    head, *rest = items_at
    if not isinstance(body, dict) or head not in body:
        return body
    return {**body, head: grow(body[head], tuple(rest), id_key, copies)}


class Served:
    """Per path: the grown body, or the grown items of a ``skip``-paged listing."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self.paged: dict[str, tuple[Any, tuple[str, ...], list[Any]]] = {}

    def reply(self, path: str, request_body: bytes) -> bytes | None:
        if path in self.paged:
            template, items_at, items = self.paged[path]
            variables = {}
            if request_body:
                variables = (orjson.loads(request_body) or {}).get("variables") or {}
            skip = int(variables.get("skip") or 0)
            first = int(variables.get("first") or 100)
            page = _put(template, items_at, items[skip : skip + first])
            return orjson.dumps(page)
        return self.bodies.get(path)


def _put(body: Any, items_at: tuple[str, ...], items: list[Any]) -> Any:
    if not items_at:
        return items
    head, *rest = items_at
    return {**body, head: _put(body[head], tuple(rest), items)}


def served_at(scale: float) -> Served:
    """Every source's recorded responses, grown to ``scale``, under ``/<source>``."""
    from ingest._records import recorded_path
    from yieldstream.loopback import recorded_dir
    from yieldstream.registry import sources

    served = Served()
    root = recorded_dir()
    for name, src in sources().items():
        target = (POOLS_AT_SCALE_1 if name == "defillama-yields" else ITEMS_AT_SCALE_1) * scale
        recorded: dict[str, tuple[Any, str, Any]] = {}  # served path -> endpoint, body
        for path_of in sorted((root / name).glob("*.json")):
            named = recorded_path(src.endpoints, path_of)
            key = f"/{name}{named[1]}" if named else ""
            if named is not None and key not in recorded:  # the first file stands for it
                recorded[key] = (named[0], named[1], orjson.loads(path_of.read_bytes()))
        if not recorded:
            continue
        # One number of copies for all of a source's endpoints, so that a product
        # named in several responses (Beefy's APY, TVL and vault) is named alike.
        largest = max(size(body, e.items_at) for e, _, body in recorded.values())
        copies = max(0, round(target / max(largest, 1)) - 1)
        for key, (endpoint, path, body) in recorded.items():
            grown = (
                body if endpoint.single else grow(body, endpoint.items_at, endpoint.id_key, copies)
            )
            if endpoint.next_page is not None:
                served.paged[key] = (grown, endpoint.items_at, endpoint.items(grown, path))
            else:
                served.bodies[key] = orjson.dumps(grown)
    return served


class _Handler(BaseHTTPRequestHandler):
    served: ClassVar[Served]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._answer(self.rfile.read(length))

    def do_GET(self) -> None:
        self._answer(b"")

    def _answer(self, request_body: bytes) -> None:
        body = self.served.reply(self.path.split("?", 1)[0], request_body)
        status = 200 if body is not None else 404
        body = body if body is not None else b'{"error":"not found"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serving(served: Served) -> Iterator[str]:
    handler = type("Handler", (_Handler,), {"served": served})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def settings_for(url: str, data_dir: Path, interval_s: float = 3600.0) -> Any:
    from yieldstream.loopback import recorded_settings, source_url
    from yieldstream.registry import sources
    from yieldstream.settings import Settings

    entities = recorded_settings()
    cfg = {
        name: {
            **entities.get(name, {}),
            "base_url": source_url(url, name),
            "rate_per_s": 1000.0,
            "interval_s": interval_s,
        }
        for name in sources()
    }
    return Settings(data_dir=data_dir, sources=cfg, log_level="warning")


def rss_mib() -> float:
    import psutil

    me = psutil.Process()
    return sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]) / 2**20


def peak_rss_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


async def _poll(url: str, data_dir: Path) -> dict[str, Any]:
    from yieldstream.app import run_pipeline

    started = time.perf_counter()
    stats = await run_pipeline(settings_for(url, data_dir), once=True, handle_signals=False)
    seconds = time.perf_counter() - started
    if stats.fetch_failures:
        raise SystemExit(f"{stats.fetch_failures} fetches failed")
    return {"seconds": seconds, "stored": stats.stored, "rejected": stats.rejected}


async def _peer(url: str, served: Served) -> dict[str, Any]:
    """Fetch and parse what the poll fetches, nothing else."""
    import httpx

    started = time.perf_counter()
    items = 0
    async with httpx.AsyncClient(timeout=120) as client:
        for path in served.bodies:
            body = orjson.loads((await client.get(url + path)).content)
            items += len(body) if isinstance(body, list | dict) else 1
        for path, (_, _, listing) in served.paged.items():
            for skip in range(0, len(listing) + 1, 100):
                query = {"variables": {"skip": skip, "first": 100}}
                orjson.loads((await client.post(url + path, json=query)).content)
            items += len(listing)
    return {"seconds": time.perf_counter() - started, "items": items}


async def _steady(url: str, data_dir: Path, polls: int, interval_s: float) -> dict[str, Any]:
    from yieldstream.app import run_pipeline

    stop = asyncio.Event()
    samples: list[float] = []

    async def sample() -> None:
        await asyncio.sleep(interval_s / 2)
        for _ in range(polls):
            samples.append(round(rss_mib(), 1))
            await asyncio.sleep(interval_s)
        stop.set()

    settings = settings_for(url, data_dir, interval_s)
    await asyncio.gather(
        run_pipeline(settings, once=False, stop=stop, handle_signals=False), sample()
    )
    return {"rss_mib_after_each_poll": samples}


def child(args: argparse.Namespace) -> None:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    served = served_at(args.child_scale)
    with serving(served) as url, tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        if args.child == "poll":
            result = asyncio.run(_poll(url, Path(tmp)))
        elif args.child == "peer":
            result = asyncio.run(_peer(url, served))
        else:
            result = asyncio.run(_steady(url, Path(tmp), args.polls, args.interval))
    result.update(kind=args.child, scale=args.child_scale, peak_rss_mib=round(peak_rss_mib(), 1))
    print(json.dumps(result))


def run_child(kind: str, scale: float, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.full_poll", "--child", kind, "--child-scale", str(scale)]
    cmd += ["--workdir", args.workdir, "--polls", str(args.polls), "--interval", str(args.interval)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scale", default="0.25,1", help="comma-separated response scales")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--polls", type=int, default=8, help="polls of the steady-state run")
    parser.add_argument("--interval", type=float, default=20.0, help="seconds between polls")
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--child", choices=["poll", "peer", "steady"], help=argparse.SUPPRESS)
    parser.add_argument("--child-scale", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    scales = [float(s) for s in args.scale.split(",")]
    summary: dict[str, Any] = {"repeat": args.repeat, "scales": {}}
    for scale in scales:
        runs: dict[str, list[dict[str, Any]]] = {"poll": [], "peer": []}
        for _ in range(args.repeat):
            for kind in runs:  # interleaved: both see the same machine load
                runs[kind].append(run_child(kind, scale, args))
        poll_s = statistics.median(r["seconds"] for r in runs["poll"])
        peer_s = statistics.median(r["seconds"] for r in runs["peer"])
        summary["scales"][scale] = {
            "stored": runs["poll"][0]["stored"],
            "rejected": runs["poll"][0]["rejected"],
            "poll_s": round(poll_s, 2),
            "poll_peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in runs["poll"]),
            "peer_s": round(peer_s, 2),
            "poll_over_peer": round(poll_s / peer_s, 2),
        }
    largest, smallest = max(scales), min(scales)
    if largest != smallest:
        grown = summary["scales"][largest]["poll_s"] / summary["scales"][smallest]["poll_s"]
        summary["poll_growth"] = f"x{grown:.2f} time for x{largest / smallest:g} data"
    summary["steady"] = run_child("steady", largest, args)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
