"""Peer measurement: the same synthetic ``/pools`` rows loaded into DuckDB by dlt.

dlt (https://dlthub.com, PyPI ``dlt``; the ``bench`` extra of this project) is
run on its fastest path for Python dicts: the parquet loader file format into
the ``duckdb`` destination, append disposition, default settings otherwise.  dlt
normalizes as it does for any API data: ``predictions`` flattened into columns,
``rewardTokens`` and ``underlyingTokens`` into child tables.  Each row carries
its snapshot time as ``fetched_at``.

Rows come from :func:`bench.synthetic.pool_items` as dicts, streamed one hourly
snapshot (up to 20,000 rows) at a time.  The generator's setup (building the
pools, about a second) happens before the clock starts; the time dlt spends
waiting on the generator afterwards is inside ``seconds`` and also reported on
its own as ``generator_seconds``.

dlt is kept off the network (telemetry disabled) and keeps all its state under
the work directory.  Run one measurement per process, so that peak RSS is the
run's own::

    python -m bench.dlt_peer --rows 200000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.synthetic import pool_items

TABLE = "pools"


def _isolate(workdir: Path) -> None:
    """No telemetry, no global dlt directory: everything under ``workdir``."""
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    os.environ["DLT_DATA_DIR"] = str(workdir / "dlt_data")


def run_dlt(n: int, workdir: Path, *, seed: int = 0) -> dict[str, Any]:
    """Load ``n`` synthetic rows into ``workdir/dlt.duckdb`` with dlt; time the run.

    Returns ``rows``, ``seconds`` (wall clock of ``pipeline.run``), ``rows_per_s``,
    and, to read them on a busy machine, ``cpu_seconds`` (user + system time of
    this process over the run; dlt runs its steps in this process) and
    ``generator_seconds``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    _isolate(workdir)
    import dlt  # after _isolate: dlt reads its configuration from the environment

    snapshots = pool_items(n, seed=seed)
    first = next(snapshots, None)  # builds the pools outside the timed run
    generator_seconds = 0.0

    def rows() -> Iterator[list[dict[str, Any]]]:
        nonlocal generator_seconds
        batch: tuple[datetime, list[dict[str, Any]]] | None = first
        while batch is not None:
            fetched_at, items = batch
            for item in items:
                item["fetched_at"] = fetched_at
            yield items
            started = time.perf_counter()
            batch = next(snapshots, None)
            generator_seconds += time.perf_counter() - started

    pipeline = dlt.pipeline(
        pipeline_name="dlt_peer",
        pipelines_dir=str(workdir / "pipelines"),
        destination=dlt.destinations.duckdb(str(workdir / "dlt.duckdb")),
        dataset_name="yields",
    )
    started = time.perf_counter()
    cpu_started = _cpu_seconds()
    pipeline.run(
        rows(),
        table_name=TABLE,
        write_disposition="append",
        loader_file_format="parquet",
    )
    seconds = time.perf_counter() - started
    cpu_seconds = _cpu_seconds() - cpu_started

    with pipeline.sql_client() as client:
        loaded = client.execute_sql(f"SELECT count(*) FROM {TABLE}")
    stored = int(loaded[0][0]) if loaded else 0
    if stored != n:
        raise RuntimeError(f"dlt stored {stored} rows of {n}")
    return {
        "rows": n,
        "seconds": seconds,
        "rows_per_s": n / seconds if seconds else 0.0,
        "cpu_seconds": cpu_seconds,
        "generator_seconds": generator_seconds,
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="dlt peer: synthetic /pools rows -> DuckDB")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="kept if given; a removed temp dir otherwise"
    )
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dlt_peer_"))
    try:
        result = run_dlt(args.rows, workdir, seed=args.seed)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    result.update(
        peer="dlt",
        loader_file_format="parquet",
        destination="duckdb",
        dlt=version("dlt"),
        duckdb=version("duckdb"),
        peak_rss_mib=round(_peak_rss_mib(), 1),
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
