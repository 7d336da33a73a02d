"""Benchmark: the embedded pipeline end to end, from raw records to stored rows, vs peers.

Input: N synthetic DefiLlama ``/pools`` records (bench/synthetic.py: the real field
shapes, 20,000 pools x N/20,000 hourly snapshots), written once to an NDJSON file
before timing so that generating them is not measured. Each repetition runs in a
fresh process, so peak RSS is per run:

* **yieldstream**: the real :class:`yieldstream.pipeline.Pipeline` (bus, raw archive,
  transforms, idempotent sink, compaction) with a collector that streams the file,
  into a fresh DuckLake store;
* **duckdb**: the same job hand-written with DuckDB alone: the same file read in
  batches of the same size, the raw JSON archived and the same observation columns
  parsed out of it by DuckDB's ``from_json``, INSERT ... SELECT into one plain DuckDB
  file, with no validation and no idempotency (bench/duckdb_peer.py says exactly
  what it does and does not do);
* **dlt**: the same items as Python dicts into DuckDB with dlt's parquet loader, its
  fastest path for dicts (bench/dlt_peer.py).

The runs alternate (yieldstream, duckdb, dlt, yieldstream...), so that a busy
machine slows each peer alike.

Run (from the repository root, with the ``bench`` extra installed)::

    python -m bench.embedded --rows 1000000 --repeat 3

Prints one JSON line per run, then the medians and the ratios ours/peer
(``ratio_duckdb``, ``ratio_dlt``).
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
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.synthetic import pool_payloads


def write_input(path: Path, rows: int) -> None:
    """NDJSON lines ``<fetched_at ISO>\\t<item JSON>``, one per record."""
    with path.open("wb") as out:
        for fetched_at, payloads in pool_payloads(rows):
            stamp = fetched_at.isoformat().encode() + b"\t"
            out.writelines(stamp + p + b"\n" for p in payloads)


def peak_rss_mib() -> float:
    """Peak RSS of this process plus the largest of its finished children.

    yieldstream's transform worker is such a child; the sum bounds the pipeline's
    peak memory from above (the two peaks need not coincide).
    """
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


async def _run_ours(
    input_path: Path, data_dir: Path, batch_size: int, processes: int, alerts: bool
) -> dict[str, Any]:
    import transforms.defillama_yields as transform
    from ingest.defillama_yields import ENDPOINTS, Config
    from sinks.alerts import Alerting
    from sinks.lake import Store
    from sinks.writer import LakeWriter
    from yieldstream.bus import MemoryBus
    from yieldstream.contracts import RawRecord
    from yieldstream.pipeline import Pipeline
    from yieldstream.registry import Source
    from yieldstream.settings import AlertSettings
    from yieldstream.transformer import Transformer

    name = "defillama-yields"

    async def collect(
        client: httpx.AsyncClient, cfg: Config, run_id: str
    ) -> AsyncIterator[RawRecord]:
        stamps: dict[bytes, datetime] = {}  # one fetch time per snapshot
        with input_path.open("rb") as lines:
            for n, line in enumerate(lines):
                stamp, payload = line.rstrip(b"\n").split(b"\t", 1)
                if stamp not in stamps:
                    stamps[stamp] = datetime.fromisoformat(stamp.decode())
                yield RawRecord(
                    source=name,
                    endpoint="/pools",
                    fetched_at=stamps[stamp],
                    run_id=run_id,
                    kind="snapshot",
                    native_id=str(n),
                    payload=payload,
                )
                if n % 2000 == 0:
                    await asyncio.sleep(0)  # let the other stages run, as network reads would

    source = Source(
        name=name,
        config_model=Config,
        collect=collect,
        transform=transform.transform,
        module="bench",
        endpoints=ENDPOINTS,
    )
    writer = LakeWriter(Store(data_dir))
    async with httpx.AsyncClient() as client:
        pipeline = Pipeline(
            sources={name: source},
            configs={name: Config()},
            clients={name: client},
            writer=writer,
            bus=MemoryBus(4),
            batch_size=batch_size,
            transformer=Transformer(processes),
            # As `yieldstream run` does by default: alerts judged after each batch.
            alerting=Alerting(AlertSettings(), (name,)) if alerts else None,
        )
        started = time.perf_counter()
        stats = await pipeline.run(once=True, stop=asyncio.Event())
        seconds = time.perf_counter() - started
    stored = writer.con.execute("SELECT count(*) FROM observations").fetchone()
    writer.close()
    if stored is None or stored[0] != stats.stored:
        raise SystemExit(f"stored {stored} rows, the pipeline counted {stats.stored}")
    return {
        "peer": "yieldstream",
        "rows": stats.stored,
        "seconds": seconds,
        "rows_per_s": stats.stored / seconds,
        "rejected": stats.rejected,
    }


def child(args: argparse.Namespace) -> None:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        if args.child == "yieldstream":
            result = asyncio.run(
                _run_ours(
                    Path(args.input),
                    Path(tmp),
                    args.batch_size,
                    args.transform_processes,
                    not args.no_alerts,
                )
            )
        elif args.child == "duckdb":
            from bench.duckdb_peer import run_duckdb

            result = run_duckdb(Path(args.input), Path(tmp), args.batch_size)
        else:
            from bench.dlt_peer import run_dlt

            result = run_dlt(args.rows, Path(tmp))
            result["peer"] = "dlt"
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result))


def run_child(kind: str, args: argparse.Namespace, input_path: Path) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "bench.embedded",
        "--child",
        kind,
        "--rows",
        str(args.rows),
        "--input",
        str(input_path),
        "--workdir",
        args.workdir,
        "--batch-size",
        str(args.batch_size),
        "--transform-processes",
        str(args.transform_processes),
        *(["--no-alerts"] if args.no_alerts else []),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument("--transform-processes", type=int, default=1)
    parser.add_argument("--no-dlt", action="store_true", help="without the dlt peer")
    parser.add_argument("--no-duckdb", action="store_true", help="without the DuckDB peer")
    parser.add_argument(
        "--no-alerts", action="store_true", help="without alert evaluation after each batch"
    )
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--child", choices=["yieldstream", "duckdb", "dlt"], help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        input_path = Path(tmp) / "pools.ndjson"
        write_input(input_path, args.rows)
        peers = ["yieldstream"]
        peers += [] if args.no_duckdb else ["duckdb"]
        peers += [] if args.no_dlt else ["dlt"]
        results: dict[str, list[dict[str, Any]]] = {p: [] for p in peers}
        for _ in range(args.repeat):
            for peer in peers:
                results[peer].append(run_child(peer, args, input_path))
    summary: dict[str, Any] = {"rows": args.rows, "repeat": args.repeat}
    for peer, runs in results.items():
        summary[peer] = {
            "median_rows_per_s": round(statistics.median(r["rows_per_s"] for r in runs)),
            "median_seconds": round(statistics.median(r["seconds"] for r in runs), 2),
            "max_peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs)),
        }
    ours = summary["yieldstream"]["median_rows_per_s"]
    if "duckdb" in summary:
        summary["ratio_duckdb"] = round(ours / summary["duckdb"]["median_rows_per_s"], 2)
    if "dlt" in summary:
        summary["ratio_dlt"] = round(ours / summary["dlt"]["median_rows_per_s"], 1)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
