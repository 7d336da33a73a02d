"""Benchmark: ``yieldstream sql "FROM observations"`` as CSV, JSON lines and a table.

Builds an observations store per size with the embedded pipeline (bench/embedded.py:
synthetic ``/pools`` records, bench/synthetic.py, through the real transforms and
store), then, each run in a fresh process with stdout to /dev/null:

* **yieldstream csv / json / table**: ``yieldstream -d DIR sql "FROM observations"
  --format ...`` (the table shows its first 1,000 rows and counts the rest);
* **duckdb COPY csv / json** (the peer): a plain DuckDB Python connection with the
  lake attached read-only, ``COPY (FROM observations) TO '/dev/stdout' (FORMAT ...)``:
  DuckDB's own writer, no Python per row;
* **fetchall + csv.writer**: what ``yieldstream sql --format csv`` did before: every
  row fetched into Python, then written by the csv module.

rows/s counts the whole process (start, store attach, query, output). Peak RSS is
the process's own high-water mark (``wait4``'s ``ru_maxrss``; the stores are built
in another child, so the benchmark's own small RSS, inherited before exec, stays
below it). Two sizes show whether memory grows with the rows.

Run (from the repository root, with the ``bench`` extra installed)::

    python -m bench.sql_export --sizes 250000,1000000 --repeat 3

Prints one JSON line per run, then a markdown table of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

QUERY = "FROM observations"

PEER = """
import sys
import duckdb
from sinks.lake import _extension_directory

data, fmt = sys.argv[1], sys.argv[2]
con = duckdb.connect(config={"extension_directory": _extension_directory() or ""})
con.load_extension("ducklake")
con.load_extension("sqlite")
con.execute(
    f"ATTACH 'ducklake:sqlite:{data}/catalog.sqlite' AS lake "
    f"(READ_ONLY, DATA_PATH '{data}/lake/', OVERRIDE_DATA_PATH true)"
)
con.execute("USE lake")
con.execute("SET enable_progress_bar = false")
if fmt == "fetchall":
    import csv
    result = con.execute("FROM observations")
    columns = [d[0] for d in result.description]
    rows = result.fetchall()
    writer = csv.writer(sys.stdout)
    writer.writerow(columns)
    writer.writerows(rows)
else:
    con.execute(f"COPY (FROM observations) TO '/dev/stdout' (FORMAT {fmt})")
"""

KINDS: dict[str, tuple[str, ...]] = {
    "yieldstream csv": ("ys", "csv"),
    "duckdb COPY csv": ("peer", "csv"),
    "fetchall + csv.writer": ("peer", "fetchall"),
    "yieldstream json": ("ys", "json"),
    "duckdb COPY json": ("peer", "json"),
    "yieldstream table": ("ys", "table"),
}


def build_store(rows: int, data_dir: Path) -> None:
    """``rows`` observations, stored by the embedded pipeline from synthetic records."""
    import structlog

    from bench.embedded import _run_ours, write_input

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    with tempfile.TemporaryDirectory() as tmp:
        input_path = Path(tmp) / "pools.ndjson"
        write_input(input_path, rows)
        result = asyncio.run(_run_ours(input_path, data_dir, 20_000, 1))
    if result["rows"] != rows:
        raise SystemExit(f"stored {result['rows']} rows, not {rows}")


def measure(kind: str, data_dir: Path) -> dict[str, Any]:
    """One run in a fresh process, stdout to /dev/null: seconds and peak RSS."""
    who, fmt = KINDS[kind]
    if who == "ys":
        exe = str(Path(sys.executable).with_name("yieldstream"))
        command = [exe, "-d", str(data_dir), "sql", QUERY, "--format", fmt]
    else:
        command = [sys.executable, "-c", PEER, str(data_dir), fmt]
    env = {**os.environ, "YIELDSTREAM_LOG_LEVEL": "warning"}
    with open(os.devnull, "wb") as sink:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode(errors="replace")
    if proc.returncode:
        raise SystemExit(f"{kind} failed ({proc.returncode}): {stderr[-2000:]}")
    return {"seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024, "stderr": stderr.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="250000,1000000", help="rows, comma separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:  # in a child: the parent stays small, its children's peaks their own
        build_store(args.build, Path(args.data_dir))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    medians: dict[tuple[str, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-sql-") as tmp:
        for rows in sizes:
            data_dir = Path(tmp) / f"store-{rows}"
            started = time.perf_counter()
            build = [sys.executable, "-m", "bench.sql_export", "--build", str(rows)]
            subprocess.run([*build, "--data-dir", str(data_dir)], check=True)
            built = {"built": rows, "seconds": round(time.perf_counter() - started, 1)}
            print(json.dumps(built), flush=True)
            runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
            for repeat in range(args.repeat):
                for kind in KINDS:
                    result = measure(kind, data_dir)
                    runs[kind].append(result)
                    line = {"rows": rows, "run": repeat, "kind": kind, **result}
                    line["stderr"] = line["stderr"][-200:]
                    print(json.dumps(line), flush=True)
            for kind, results in runs.items():
                seconds = statistics.median(r["seconds"] for r in results)
                medians[kind, rows] = {
                    "seconds": seconds,
                    "rows_per_s": rows / seconds,
                    "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in results),
                }
    print()
    print(f"`{QUERY}`, medians of {args.repeat}, each run a fresh process, stdout to /dev/null")
    print()
    header = " | ".join(f"{rows:,} rows: s, rows/s, peak RSS" for rows in sizes)
    print(f"| | {header} |")
    print("|---|" + "---|" * len(sizes))
    for kind in KINDS:
        cells = []
        for rows in sizes:
            m = medians[kind, rows]
            cells.append(
                f"{m['seconds']:.2f} s, {m['rows_per_s']:,.0f}/s, {m['peak_rss_mib']:.0f} MiB"
            )
        print(f"| {kind} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
