"""Benchmark: ``SELECT * FROM pool_stats`` over a year of hourly history, 1M to 10M rows.

Each size is a store of ``pools`` product pools (three sources) observed every hour
for 365 days (8,760 rows a pool: 10M rows are 1,142 pools), with a few seconds of
jitter on each time, 2 % of APYs NULL and TVLs walking. The rows are made by DuckDB
(``range()``, ``hash()``) and inserted straight into the store's ``observations``
table through a writer connection: the pipeline's write path would spend minutes
validating 10M rows that this benchmark does not measure (bench/embedded.py does).

Each run is a fresh process (so no cache of an earlier run helps), timing the query
alone, all rows fetched; peak RSS is the process's high-water mark (``wait4``):

* **pool_stats**: the view through ``yieldstream.connect``, reading the DuckLake
  store's Parquet files, as an analyst does;
* **same SQL, plain table** (the peer, every size): the view's own query over the same
  rows copied first (not timed) into an in-memory DuckDB table. It separates what the
  SQL costs from what reading DuckLake costs: if pool_stats were slow, this says
  whether to rewrite the query or to look at the store's layout;
* **Python reference** (smallest size): the rows fetched into Python and the same
  statistics computed in plain Python (tests/sinks/test_pool_stats.py ``reference``,
  the test's independent implementation), the cost of not doing it in SQL. Its
  answer is compared with the view's, so the benchmark also checks the view on 1M
  rows.

Run (from the repository root)::

    python -m bench.pool_stats --sizes 1000000,3000000,10000000 --repeat 3

Prints one JSON line per run, then a markdown table of the medians, and how the
view's time grows from the smallest size to the largest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HOURS = 365 * 24

# Writes the store in a child, so the parent's RSS (inherited by each run) stays small.
BUILD = """
import sys
from pathlib import Path
from sinks.lake import Store, open_writer
from sinks.writer import LakeWriter

data_dir, pools, hours = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
store = Store(data_dir)
LakeWriter(store).close()  # the tables, the migrations and the views
con = open_writer(store)
con.execute(f'''
INSERT INTO observations BY NAME
SELECT ['alpha', 'beta', 'gamma'][p % 3 + 1] AS source,
       'pool-' || p AS pool_id,
       TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_hours(h)
           + to_seconds(CAST(hash(p, h) % 300 AS BIGINT)) AS observed_at,
       'protocol-' || (p % 97) AS protocol, 'Ethereum' AS chain, 'USDC' AS symbol,
       'lending' AS strategy, 'defi' AS venue,
       CASE WHEN hash(h, p) % 50 > 0
            THEN round(p % 40 * 0.5 + 3 * sin(h / 200 + p) + (hash(p, h, 1) % 1000) / 1000, 5)
       END AS apy_pct,
       (1 + p % 50) * 1e6 * (1 + 0.2 * sin(h / 500 + p)) AS tvl_usd,
       'bench:ethereum:pool-' || p AS product_id, 'product' AS level,
       'bench' AS batch_id, now() AS stored_at
FROM range({pools}) AS t(p), range({hours}) AS s(h)
''')
con.close()
"""

RUN = """
import json, resource, sys, time
from pathlib import Path
import yieldstream

data_dir, kind = Path(sys.argv[1]), sys.argv[2]
con = yieldstream.connect(data_dir)
query = "SELECT * FROM pool_stats"
if kind == "plain":
    from sinks.lake import SQL, Store, _attach, _duckdb
    view = (SQL / "views_stats.sql").read_text()
    query = view[view.index("CREATE OR REPLACE VIEW pool_stats AS") :].partition(" AS\\n")[2]
    con.close()
    con = _attach(_duckdb(Store(data_dir)), Store(data_dir), read_only=True)
    con.execute("CREATE TABLE memory.main.observations AS FROM observations")
    con.execute("USE memory")
started = time.perf_counter()
if kind == "python":
    from collections import namedtuple
    from tests.sinks.test_pool_stats import reference
    Row = namedtuple("Row", "level source pool_id observed_at apy_pct tvl_usd")
    rows = con.execute(
        "SELECT level, source, pool_id, observed_at, apy_pct, tvl_usd FROM observations"
    ).fetchall()
    answer = reference(Row(*r) for r in rows)
    seconds = time.perf_counter() - started
    view = con.execute("FROM pool_stats").fetchall()
    names = [d[0] for d in con.description]
    got = {(r[0], r[1]): dict(zip(names[2:], r[2:])) for r in view}
    from tests.sinks.test_pool_stats import assert_same
    for key in got:  # the bench's product ids are not the test's
        got[key]["product_id"] = "aave-v3:ethereum:" + key[1]
    assert_same(got, answer)
    out = len(answer)
else:
    out = len(con.execute(query).fetchall())
    seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "pools": out}))
"""

KINDS = {"pool_stats": "view", "same SQL, plain table": "plain", "Python reference": "python"}


def build(data_dir: Path, pools: int) -> int:
    """The store, in a child process; the rows stored."""
    started = time.perf_counter()
    command = [sys.executable, "-c", BUILD, str(data_dir), str(pools), str(HOURS)]
    subprocess.run(command, check=True)
    rows = pools * HOURS
    print(json.dumps({"built": rows, "seconds": round(time.perf_counter() - started, 1)}))
    return rows


def measure(kind: str, data_dir: Path) -> dict[str, Any]:
    """One run in a fresh process: the query's seconds, and the process's peak RSS."""
    command = [sys.executable, "-c", RUN, str(data_dir), KINDS[kind]]
    env = {**os.environ, "YIELDSTREAM_LOG_LEVEL": "warning"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    assert proc.stdout is not None
    assert proc.stderr is not None
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{kind} failed: {err[-2000:]}")
    return {**json.loads(out), "peak_rss_mib": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000000,3000000,10000000", help="rows, comma separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    medians: dict[tuple[str, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-pool-stats-") as tmp:
        for size in sizes:
            data_dir = Path(tmp) / f"store-{size}"
            rows = build(data_dir, round(size / HOURS))
            kinds = [k for k in KINDS if k != "Python reference" or size == min(sizes)]
            runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
            for repeat in range(args.repeat):
                for kind in kinds:
                    result = measure(kind, data_dir)
                    runs[kind].append(result)
                    print(json.dumps({"rows": rows, "run": repeat, "kind": kind, **result}))
            for kind, results in runs.items():
                seconds = statistics.median(r["seconds"] for r in results)
                medians[kind, rows] = {
                    "pools": results[0]["pools"],
                    "seconds": seconds,
                    "rows_per_s": rows / seconds,
                    "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in results),
                }
    print()
    print(f"`SELECT * FROM pool_stats`, medians of {args.repeat}, each run a fresh process")
    print()
    print("| | rows | pools | s | rows/s | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|")
    for (kind, rows), m in medians.items():
        print(
            f"| {kind} | {rows:,} | {m['pools']:,} | {m['seconds']:.2f} | "
            f"{m['rows_per_s']:,.0f} | {m['peak_rss_mib']:.0f} MiB |"
        )
    view = sorted(
        (rows, m["seconds"]) for (kind, rows), m in medians.items() if kind == "pool_stats"
    )
    if len(view) > 1:
        (r0, s0), (r1, s1) = view[0], view[-1]
        print()
        print(f"pool_stats: {r1 / r0:.1f}x the rows took {s1 / s0:.1f}x the time")


if __name__ == "__main__":
    main()
