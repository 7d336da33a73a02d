"""Benchmark: the read API under load, with the daemon writing to the same store.

The store holds ``--pools`` product pools x ``--hours`` hourly observations (1M rows
by default: 2,000 x 500), made by DuckDB and inserted through a writer connection
(as bench/pool_stats.py does; the write path is not what is measured here). Then,
each in its own process:

* ``yieldstream serve`` on a free 127.0.0.1 port;
* ``yieldstream run`` against a loopback server whose ``/pools`` answers 5,000 new
  pools on every poll (tests/sinks ``FreshPools``), polling every ``--interval`` s:
  the daemon commits new observations into the store the API reads;
* the load: ``--clients`` concurrent httpx clients in one asyncio process, each
  sending its next request when the last one was answered, for ``--seconds`` per
  endpoint: ``/v1/products?limit=100`` (the newest figure of every product, sorted
  by TVL) and one product's hourly history (``--hours`` points).

Each endpoint is measured first with the daemon stopped, then while it writes.

Run (from the repository root)::

    python -m bench.api_load --pools 2000 --hours 500 --clients 16 --seconds 20

Prints one JSON line per measurement, then a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from tests.sinks import FreshPools, daemon_env, routes_with, yieldstream_exe
from yieldstream.loopback import serve

BUILD = """
import sys
from pathlib import Path
import duckdb
from sinks.lake import Store
from sinks.tables import OBS_FIELDS, OBS_SCHEMA
from sinks.writer import LakeWriter

data_dir, pools, hours = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
made = {
    "source": "['alpha', 'beta', 'gamma'][p % 3 + 1]",
    "pool_id": "'pool-' || p",
    "observed_at": "TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_hours(h)",
    "protocol": "'protocol-' || (p % 97)",
    "chain": "['Ethereum', 'Arbitrum', 'Base'][p % 3 + 1]",
    "symbol": "['USDC', 'WETH', 'WSTETH', 'USDT'][p % 4 + 1]",
    "strategy": "['lending', 'staking', 'farming'][p % 3 + 1]",
    "venue": "'defi'",
    "apy_pct": "round(p % 40 * 0.5 + 3 * sin(h / 200 + p), 5)",
    "tvl_usd": "(1 + p % 50) * 1e6 * (1 + 0.2 * sin(h / 500 + p))",
    "product_id": "'bench:ethereum:pool-' || p",
    "level": "'product'",
}
sql_type = {"string": "VARCHAR", "double": "DOUBLE", "bool": "BOOLEAN"}
typed = {f.name: f"NULL::{sql_type.get(str(f.type), 'VARCHAR[]')}" for f in OBS_SCHEMA}
select = ", ".join(f"{made.get(name, typed[name])} AS {name}" for name in OBS_FIELDS)
writer = LakeWriter(Store(data_dir))  # the real write path: the latest figures kept too
gen = duckdb.connect()
step = max(1, 200_000 // hours)
for first in range(0, pools, step):
    last = min(pools, first + step)
    query = f"SELECT {select} FROM range({first}, {last}) AS t(p), range({hours}) AS s(h)"
    table = gen.execute(query).fetch_arrow_table().cast(OBS_SCHEMA)
    writer.store(None, "bench", table.num_rows, table, [])
writer.close()
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def build(data_dir: Path, pools: int, hours: int) -> None:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", BUILD, str(data_dir), str(pools), str(hours)], check=True)
    seconds = round(time.perf_counter() - started, 1)
    print(json.dumps({"built": pools * hours, "pools": pools, "seconds": seconds}), flush=True)


def wait_until_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("yieldstream serve exited")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("yieldstream serve did not answer within 60 s")


async def load(url: str, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` closed-loop clients on ``url`` for ``seconds``: rate and latencies."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    end = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one_client() -> None:
            while time.monotonic() < end:
                started = time.perf_counter()
                answer = await client.get(url)
                if answer.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors[str(answer.status_code)] = errors.get(str(answer.status_code), 0) + 1

        started = time.monotonic()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.monotonic() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(0.50) if latencies else None,
        "p99_ms": pct(0.99) if latencies else None,
    }


def rows_stored(base: str) -> int:
    sources = httpx.get(f"{base}/v1/sources", timeout=60).json()["items"]
    return sum(int(s["rows_stored"]) for s in sources)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pools", type=int, default=2000)
    parser.add_argument("--hours", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=2.0, help="daemon poll interval (s)")
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    args = parser.parse_args()
    endpoints = {
        "/v1/products?limit=100": "/v1/products?limit=100",
        "history (hourly)": f"/v1/products/alpha:pool-3/history?limit={args.hours}",
    }
    results: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-api-") as tmp,
        ExitStack() as stack,
    ):
        data_dir = Path(tmp) / "data"
        build(data_dir, args.pools, args.hours)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("YIELDSTREAM_")}
        env.update(YIELDSTREAM_API__RATE_LIMIT="100000000/minute", YIELDSTREAM_LOG_LEVEL="warning")
        log = stack.enter_context((Path(tmp) / "serve.log").open("ab"))
        api = subprocess.Popen(
            [yieldstream_exe(), "-d", str(data_dir), "serve", "--port", str(port)],
            env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        stack.callback(lambda: (api.send_signal(signal.SIGTERM), api.wait(30)))
        wait_until_up(base, api)
        for phase in ("idle", "daemon writing"):
            daemon = None
            if phase == "daemon writing":
                url, _hits = stack.enter_context(serve(routes_with(FreshPools())))
                daemon_log = stack.enter_context((Path(tmp) / "daemon.log").open("ab"))
                daemon = subprocess.Popen(
                    [yieldstream_exe(), "run"],
                    env=daemon_env(url, data_dir, interval_s=args.interval),
                    cwd=tmp, stdout=subprocess.DEVNULL, stderr=daemon_log,
                )  # fmt: skip
                before = rows_stored(base)
                while rows_stored(base) == before:  # writing, and the API sees it
                    time.sleep(0.5)
            for name, path in endpoints.items():
                first = rows_stored(base) if daemon else None
                result = asyncio.run(load(base + path, args.clients, args.seconds))
                if daemon is not None:
                    result["rows_written_meanwhile"] = rows_stored(base) - (first or 0)
                line = {"phase": phase, "endpoint": name, "clients": args.clients, **result}
                print(json.dumps(line), flush=True)
                results.append(line)
            if daemon is not None:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(30)
        daemon_rows = rows_stored(base)  # of the sources the daemon polled
    print()
    print(
        f"{args.pools:,} products x {args.hours} hours = {args.pools * args.hours:,} rows "
        f"(+{daemon_rows:,} the daemon wrote); {args.clients} concurrent clients, "
        f"{args.seconds:g} s each"
    )
    print()
    print("| endpoint | daemon | requests/s | p50 | p99 | errors |")
    print("|---|---|---:|---:|---:|---:|")
    for r in results:
        p50, p99 = (f"{r[k]:.0f} ms" if r[k] is not None else "-" for k in ("p50_ms", "p99_ms"))
        print(
            f"| `{r['endpoint']}` | {r['phase']} | {r['rps']:,.0f} | {p50} | {p99} | "
            f"{sum(r['errors'].values())} |"
        )


if __name__ == "__main__":
    main()
