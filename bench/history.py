"""A loopback DefiLlama yields API with long histories, for the backfill benchmark.

Serves, on 127.0.0.1, what ``yieldstream backfill defillama-yields`` reads:

* ``/pools``: ``pools`` synthetic pools (bench/synthetic.py: the real item shapes) in
  the live envelope ``{"status": "success", "data": [...]}``;
* ``/protocols``: one row per project of those pools, with a real category;
* ``/chart/{pool}``: ``points`` daily points per pool, shaped like the recorded
  ``/chart`` response (tests/fixtures/defillama-yields/chart-*.json): ISO-8601
  timestamps with milliseconds and ``Z`` a little after 23:00 UTC each day, the last
  point intraday; ``tvlUsd`` an integer; APYs with 5 decimals; ``apyReward`` null for
  most pools; ``il7d`` and ``apyBase7d`` null or set. 1,000 points are about 160 KB,
  the size of a real three-year chart.

Bodies are made before the server starts, so that serving them costs the benchmark
as little CPU as possible. Run on its own::

    python -m bench.history --pools 2000 --points 1000 --port 8765
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import orjson

from bench.synthetic import pool_items

LAST_DAY = datetime(2026, 11, 24, tzinfo=UTC)
CATEGORIES = ("Dexs", "Lending", "Liquid Staking", "Yield", "CDP", "Yield Aggregator")


def chart(seed: int, points: int, tvl_now: float = 1e6, apy_base_now: float = 4.0) -> bytes:
    """One pool's ``/chart`` body: ``points`` days ending on LAST_DAY (the last intraday).

    TVL and base APY walk back in time from the pool's current ``/pools`` figures, so
    the history meets the snapshot.
    """
    rng = random.Random(seed)
    rewarded = rng.random() < 0.3
    il = rng.random() < 0.4
    first = LAST_DAY - timedelta(days=points - 1)
    walk: list[tuple[float, float]] = []
    tvl, base = max(tvl_now, 1.0), max(apy_base_now, 0.01)
    for _ in range(points):
        walk.append((tvl, base))
        tvl *= rng.lognormvariate(0, 0.03)
        base *= rng.lognormvariate(0, 0.05)
    walk.reverse()
    data: list[dict[str, Any]] = []
    for day, (tvl, base) in enumerate(walk):
        last = day == points - 1
        moment = first + timedelta(
            days=day,
            hours=14 if last else 23,
            minutes=2 if last else rng.randint(0, 3),
            seconds=rng.randint(0, 59),
            milliseconds=rng.randint(0, 999),
        )
        reward = round(rng.uniform(0, 8), 5) if rewarded else None
        apy_base = round(base, 5)
        data.append(
            {
                "timestamp": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "tvlUsd": round(tvl),
                "apy": round(apy_base + (reward or 0.0), 5),
                "apyBase": apy_base,
                "apyReward": reward,
                "il7d": round(rng.uniform(-2, 0), 5) if il else None,
                "apyBase7d": round(base * rng.uniform(0.9, 1.1), 5) if day >= 7 else None,
            }
        )
    return orjson.dumps({"status": "success", "data": data})


def routes(pools: int, points: int) -> dict[str, bytes]:
    """Every path's body: /pools, /protocols and one /chart per pool."""
    _, items = next(pool_items(pools, batch=pools))
    projects = sorted({item["project"] for item in items})
    protocols = [
        {"slug": p, "name": p, "category": CATEGORIES[i % len(CATEGORIES)], "tvl": 1e6}
        for i, p in enumerate(projects)
    ]
    bodies = {
        "/pools": orjson.dumps({"status": "success", "data": items}),
        "/protocols": orjson.dumps(protocols),
    }
    for index, item in enumerate(items):
        bodies[f"/chart/{item['pool']}"] = chart(
            index, points, item["tvlUsd"] or 1e6, item["apyBase"] or item["apy"] or 4.0
        )
    return bodies


class _Handler(BaseHTTPRequestHandler):
    bodies: ClassVar[dict[str, bytes]]
    protocol_version = "HTTP/1.1"  # keep-alive, as a real API behind a CDN

    def do_GET(self) -> None:
        body = self.bodies.get(self.path.split("?", 1)[0])
        self.send_response(200 if body is not None else 404)
        body = body if body is not None else b'{"error":"not found"}'
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(pools: int, points: int, port: int = 0) -> ThreadingHTTPServer:
    """Start serving in a thread; the caller stops it with ``shutdown()``."""
    handler = type("Handler", (_Handler,), {"bodies": routes(pools, points)})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="history-api", daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pools", type=int, default=2000)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = serve(args.pools, args.points, args.port)
    # The parent reads the URL, then stops the server by closing stdin.
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
