"""Benchmark: ``yieldstream backfill`` of 2,000 pools x 1,000 days, then ``replay`` of it.

A loopback server (bench/history.py, its own process) serves ``/pools`` and each
pool's ``/chart`` with realistic sizes (about 160 KB a pool). Each repetition, in a
fresh process so that peak RSS is its own (the process and its finished children,
the transform worker among them):

* **backfill**: :func:`yieldstream.backfill.backfill` into a fresh DuckLake store,
  exactly what ``yieldstream backfill defillama-yields`` runs (listing, history
  fetches, transform worker, raw archive, idempotent store, checkpoints);
* **replay**: :func:`yieldstream.replay.replay` of that store's raw archive, every
  batch transformed again and its rows replaced;
* **peer**: the hand-written script this replaces: httpx with the same concurrency,
  orjson, each pool's points into a plain DuckDB table through Arrow, in batches of
  the same size. No raw archive, no validation, no idempotency, no checkpoints.

Run (from the repository root)::

    python -m bench.backfill --pools 2000 --points 1000 --repeat 3

Prints one JSON line per run, then the medians and the ratio to the peer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.processes import run_sampled

CONCURRENCY = 8


def main_rss_mib() -> float:
    """Peak RSS of this process, exact (the kernel's high-water mark).

    Children are left out: a child started by fork and exec (the catalog holder, a
    spawned worker) reports the RSS it inherited before exec as its peak, so adding
    their peaks counted the parent twice; ``tree_rss_mib`` samples the sum instead.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    """CPU seconds (user and system) of this process and its finished children: on a
    shared machine a steadier measure of the work done than the wall time."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return round(own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, 2)


def _settings(url: str, data_dir: Path) -> Any:
    from yieldstream.settings import Settings

    fast = {"base_url": url, "rate_per_s": 1000.0, "history_rate_per_s": 1000.0}
    return Settings(
        data_dir=data_dir,
        log_level="warning",
        sources={
            "defillama-yields": {**fast, "history_concurrency": CONCURRENCY},
            "defillama-protocols": fast,
        },
    )


def run_backfill(url: str, data_dir: Path) -> dict[str, Any]:
    from yieldstream import logs
    from yieldstream.backfill import LogReporter, backfill

    logs.configure("json", "warning")
    settings = _settings(url, data_dir)
    start = time.perf_counter()
    summary = asyncio.run(
        backfill(settings, "defillama-yields", reporter=LogReporter(every_s=3600))
    )
    seconds = time.perf_counter() - start
    return {
        "seconds": round(seconds, 2),
        "rows": summary.stored,
        "rows_per_s": round(summary.stored / seconds),
        "entities": summary.done,
        "failed": summary.failed,
        "main_rss_mib": round(main_rss_mib()),
        "cpu_s": cpu_s(),
    }


def run_replay(data_dir: Path) -> dict[str, Any]:
    from sinks.lake import Store
    from yieldstream import logs
    from yieldstream.replay import replay

    logs.configure("json", "warning")
    start = time.perf_counter()
    summary = replay(Store(data_dir), only=["defillama-yields"])
    seconds = time.perf_counter() - start
    return {
        "seconds": round(seconds, 2),
        "records": summary.records,
        "records_per_s": round(summary.records / seconds),
        "changed": summary.added + summary.removed + summary.changed,
        "main_rss_mib": round(main_rss_mib()),
        "cpu_s": cpu_s(),
    }


async def _peer(url: str, db: Path, batch_size: int) -> int:
    import duckdb
    import httpx
    import orjson
    import pyarrow as pa

    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE chart (pool VARCHAR, ts TIMESTAMPTZ, tvl_usd DOUBLE, apy DOUBLE, "
        "apy_base DOUBLE, apy_reward DOUBLE, il7d DOUBLE, apy_base7d DOUBLE)"
    )
    rows: list[tuple[Any, ...]] = []
    stored = 0

    def flush() -> None:
        nonlocal rows, stored
        if rows:
            columns = list(zip(*rows, strict=True))
            staged = pa.table(  # noqa: F841 - read by name
                {
                    "pool": pa.array(columns[0], pa.string()),
                    "ts": pa.array(columns[1], pa.string()),
                    **{
                        name: pa.array(columns[i], pa.float64())
                        for i, name in enumerate(
                            ("tvl_usd", "apy", "apy_base", "apy_reward", "il7d", "apy_base7d"), 2
                        )
                    },
                }
            )
            con.execute(
                "INSERT INTO chart SELECT pool, ts::TIMESTAMPTZ, * EXCLUDE (pool, ts) FROM staged"
            )
            stored += len(rows)
            rows = []

    async with httpx.AsyncClient(timeout=60) as client:
        pools = orjson.loads((await client.get(f"{url}/pools")).content)["data"]
        queue: asyncio.Queue[str] = asyncio.Queue()
        for item in pools:
            queue.put_nowait(item["pool"])

        async def worker() -> None:
            while not queue.empty():
                pool = queue.get_nowait()
                body = orjson.loads((await client.get(f"{url}/chart/{pool}")).content)
                for p in body["data"]:
                    rows.append(
                        (
                            pool,
                            p["timestamp"],
                            p["tvlUsd"],
                            p["apy"],
                            p["apyBase"],
                            p["apyReward"],
                            p["il7d"],
                            p["apyBase7d"],
                        )
                    )
                if len(rows) >= batch_size:
                    flush()

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    flush()
    con.close()
    return stored


def run_peer(url: str, data_dir: Path) -> dict[str, Any]:
    data_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = asyncio.run(_peer(url, data_dir / "peer.duckdb", 20_000))
    seconds = time.perf_counter() - start
    return {
        "seconds": round(seconds, 2),
        "rows": rows,
        "rows_per_s": round(rows / seconds),
        "main_rss_mib": round(main_rss_mib()),
        "cpu_s": cpu_s(),
    }


def child(args: argparse.Namespace) -> None:
    data_dir = Path(args.data_dir)
    if args.child == "backfill":
        result = run_backfill(args.url, data_dir)
    elif args.child == "replay":
        result = run_replay(data_dir)
    else:
        result = run_peer(args.url, data_dir)
    print(json.dumps(result))


def _in_child(kind: str, url: str, data_dir: Path) -> dict[str, Any]:
    """Run one measurement in a fresh process; add its peak RSS, sampled as a tree
    (:func:`bench.processes.run_sampled`)."""
    command = [sys.executable, "-m", "bench.backfill", "--child", kind, "--url", url]
    out, code, peak = run_sampled([*command, "--data-dir", str(data_dir)])
    if code:
        raise SystemExit(f"{kind} run failed with exit code {code}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["tree_rss_mib"] = round(peak / 2**20)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pools", type=int, default=2000)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=("backfill", "replay", "peer"))
    parser.add_argument("--url")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.history",
            "--pools",
            str(args.pools),
            "--points",
            str(args.points),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    runs: dict[str, list[dict[str, Any]]] = {"backfill": [], "replay": [], "peer": []}
    try:
        for repeat in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
                for kind in ("backfill", "replay", "peer"):
                    result = _in_child(
                        kind, url, Path(tmp) / ("peer" if kind == "peer" else "data")
                    )
                    runs[kind].append(result)
                    print(json.dumps({"run": repeat, "kind": kind, **result}), flush=True)
    finally:
        server.communicate("")
    medians = {
        kind: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for kind, results in runs.items()
    }
    print(
        json.dumps(
            {
                "pools": args.pools,
                "points": args.points,
                "median": medians,
                "backfill_vs_peer": round(
                    medians["backfill"]["rows_per_s"] / medians["peer"]["rows_per_s"], 2
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
