"""Benchmark: how the store's costs grow with its history, up to 20M+ observations.

One store grows through the sizes asked (default 1M, 5M, 20M observations: 20,000
pools x 50, 250 and 1,000 hourly snapshots), then takes 2,000 pools x 1,000 days of
backfilled history through the real ``backfill`` (bench/history.py serves it on
loopback). At each size, in a fresh process (so its peak RSS is its own):

* **poll**: one hourly snapshot of the 20,000 pools stored, raw archive included
  (:meth:`LakeWriter.archive` then :meth:`LakeWriter.store`: the two transactions of
  every batch), and the time of the idempotency check inside it;
* **commit**: a backfill commit of 100 new pools x 1,000 days (100,000 rows,
  :meth:`LakeWriter.store_history`), then the same commit again (every row a
  duplicate: the case where the check must read the history);
* **reads**, through :func:`yieldstream.connect` (query time, the connection open)
  and through ``yieldstream sql`` (the whole command, as an analyst types it):
  ``latest_yields`` of one chain, one product's history, a monthly aggregate over
  everything, ``count(*)``;
* **files**: active data files, Parquet files on disk, bytes on disk.

Building 20M rows one poll at a time would take hours, so the hourly snapshots are
bulk-built in the store's own layout: the 20,000 pools are real transform output
(bench/synthetic.py items through the DefiLlama transform), and DuckDB writes their
snapshots, time-ordered as polls append them, into ``year=`` Parquet files,
registered with ``ducklake_add_data_files`` in one transaction with their
``latest_observations`` rows, as the writer does (one file per million rows and
year, about a compacted file's size). They have no raw archive (the
polls measured do). The history goes through the real backfill.

At 5M rows a backfill of 1,000 pools is killed (``kill -9``) once its first commit
is in, and resumed, on a copy of the store; the copy must hold no duplicate key.
Peak RSS is sampled (process and children, every 20 ms) for the writer's part
(``measure_rss_mib``: a writing daemon's), the reads (``reads_rss_mib``) and the
backfill (``tree_rss_mib``).

Run (from the repository root; checks free disk space first)::

    python -m bench.scale --sizes 1000000,5000000,20000000 --repeat 3

Prints one JSON line per size and a table of medians; the year (175M rows) is
extrapolated from the measured curve (least squares on the sizes measured).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.processes import run_sampled

POOLS = 20_000
# The hourly snapshots start the day after the served history's last day
# (bench/history.py): history backfilled up to when polling began, then polls.
T0 = datetime(2026, 11, 25, tzinfo=UTC)
YEAR_ROWS = 175_000_000
SOURCE = "defillama-yields"
# Bytes on disk per stored observation, generously, with the history and the polls'
# raw archive: the free space checked before building.
BYTES_PER_ROW = 200


def _template() -> Any:
    """20,000 pools as the DefiLlama transform makes them (one synthetic snapshot)."""
    import orjson

    from bench.synthetic import pool_items
    from sinks.tables import observations_table
    from transforms import Context, apply, defillama_yields
    from yieldstream.contracts import RawRecord

    fetched_at, items = next(pool_items(POOLS, batch=POOLS))
    observations = []
    for item in items:
        record = RawRecord(
            source=SOURCE,
            endpoint="/pools",
            fetched_at=fetched_at,
            run_id="bench",
            kind="snapshot",
            native_id=str(item["pool"]),
            payload=orjson.dumps(item),
        )
        result = apply(defillama_yields.transform, record, Context())
        if isinstance(result, list):
            observations.extend(result)
    return observations_table(observations)


# Snapshot k of every pool: the template's row at T0 + k hours, APY and TVL varied.
SNAPSHOTS = """
    SELECT t.* REPLACE (
               $t0::TIMESTAMPTZ + to_hours(r.k) AS observed_at,
               t.apy_pct * (0.9 + (hash(t.pool_id, r.k) % 200) / 1000.0) AS apy_pct,
               t.tvl_usd * (0.95 + (hash(r.k, t.pool_id) % 100) / 1000.0) AS tvl_usd),
           'bulk-' || r.k AS batch_id, now() AS stored_at
    FROM template AS t, range($k0, $k1) AS r(k)
"""


def build(data_dir: Path, k0: int, k1: int) -> None:
    """Add snapshots ``k0 .. k1-1`` of the 20,000 pools to the store, in bulk."""
    from sinks.lake import LAKE, Store, write_lock
    from sinks.writer import LakeWriter

    template = _template()  # noqa: F841 - read by name
    writer = LakeWriter(Store(data_dir), compact_every=None)
    con = writer.con
    table_dir = writer.table_dir / "observations"
    tag = f"observations-bulk-{uuid.uuid4().hex[:8]}"
    params = {"t0": T0, "k0": k0, "k1": k1}
    with write_lock(writer._store, con):
        con.execute("SET preserve_insertion_order = false")
        # 50 snapshots (1M rows) at a time: each sorted by time, as polls append them.
        for start in range(k0, k1, 50):
            con.execute(
                f"""
                COPY (SELECT *, year(observed_at) AS year FROM ({SNAPSHOTS}) ORDER BY observed_at)
                TO '{table_dir}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (year),
                    FILENAME_PATTERN '{tag}-{start}-{{uuid}}',
                    APPEND)
                """,
                {**params, "k0": start, "k1": min(start + 50, k1)},
            )
        con.execute("BEGIN")
        con.execute(
            f"CALL ducklake_add_data_files('{LAKE}', 'observations', ?, hive_partitioning => true)",
            [str(table_dir / "year=*" / f"{tag}-*.parquet")],
        )
        # The newest snapshot is every pool's latest; the first stays where it was.
        con.execute(
            f"""
            CREATE TEMP TABLE newest AS
            SELECT n.*, coalesce(l.first_observed_at, $t0::TIMESTAMPTZ) AS first_observed_at
            FROM ({SNAPSHOTS}) AS n LEFT JOIN latest_observations AS l USING (source, pool_id)
            """,
            {**params, "k0": k1 - 1},
        )
        con.execute(
            "DELETE FROM latest_observations AS l USING newest AS n "
            "WHERE l.source = n.source AND l.pool_id = n.pool_id"
        )
        con.execute("INSERT INTO latest_observations BY NAME SELECT * FROM newest")
        con.execute("DROP TABLE newest")
        con.execute("COMMIT")
    writer.close()


def _timed(fn: Any, repeat: int) -> float:
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def _product(con: Any) -> tuple[str, str, str]:
    row = con.execute(
        "SELECT pool_id, chain FROM latest_yields WHERE source = ? ORDER BY tvl_usd DESC LIMIT 1",
        [SOURCE],
    ).fetchone()
    return SOURCE, str(row[0]), str(row[1])


def reads(source: str, pool_id: str, chain: str) -> dict[str, str]:
    return {
        "latest_by_chain": (
            "SELECT count(*), avg(apy_pct), sum(tvl_usd) FROM latest_yields "
            f"WHERE chain = '{chain}'"
        ),
        "product_history": (
            "SELECT observed_at, apy_pct, tvl_usd, apy_change_pct FROM yield_history "
            f"WHERE source = '{source}' AND pool_id = '{pool_id}' ORDER BY observed_at"
        ),
        "monthly_aggregate": (
            "SELECT date_trunc('month', observed_at) AS month, chain, avg(apy_pct), "
            "sum(tvl_usd) FROM observations GROUP BY ALL"
        ),
        "count": "SELECT count(*) FROM observations",
    }


def _poll_rows(hour: int, template: Any) -> tuple[Any, list[Any]]:
    """The 20,000 pools' observations and raw records of one hourly poll."""
    import pyarrow as pa

    from bench.synthetic import pool_payloads
    from yieldstream.contracts import RawRecord

    moment = T0 + timedelta(hours=hour)
    observed = pa.array([moment] * template.num_rows, template.schema.field("observed_at").type)
    observations = template.set_column(
        template.schema.get_field_index("observed_at"), "observed_at", observed
    )
    _, payloads = next(pool_payloads(POOLS, batch=POOLS))
    records = [
        RawRecord(
            source=SOURCE,
            endpoint="/pools",
            fetched_at=moment,
            run_id="bench",
            kind="snapshot",
            native_id=pool_id,
            payload=payload,
        )
        for pool_id, payload in zip(template["pool_id"].to_pylist(), payloads, strict=False)
    ]
    return observations, records


def _history_commit(template: Any, prefix: str, pools: int, days: int) -> Any:
    """``pools`` pools not stored yet, ``days`` daily points each, as one table."""
    import duckdb

    con = duckdb.connect()
    con.register("template", template)
    table = con.execute(
        f"""
        SELECT t.* REPLACE ('{prefix}-' || t.pool_id AS pool_id,
                            $t0::TIMESTAMPTZ - to_days(r.d + 1) AS observed_at)
        FROM (SELECT * FROM template LIMIT {pools}) AS t, range({days}) AS r(d)
        """,
        {"t0": T0},
    ).fetch_arrow_table()
    con.close()
    return table


def measure(data_dir: Path, hour: int, repeat: int) -> dict[str, Any]:
    """What the writer does at one size: polls and commits (in a process of its own,
    so its peak RSS is a writing daemon's)."""
    from sinks.lake import LAKE, Store
    from sinks.writer import LakeWriter

    template = _template()
    out: dict[str, Any] = {}
    writer = LakeWriter(Store(data_dir))  # compacting when file counts call for it, as a daemon
    out["rows"] = writer.con.execute("SELECT count(*) FROM observations").fetchone()[0]
    # The idempotency check's own time, inside each commit.
    checks: list[float] = []
    new_rows = writer._new_rows

    def timed_check(con: Any, staged: Any) -> Any:
        start = time.perf_counter()
        try:
            return new_rows(con, staged)
        finally:
            checks.append(time.perf_counter() - start)

    writer._new_rows = timed_check  # type: ignore[method-assign]
    polls = []
    for i in range(repeat):
        observations, records = _poll_rows(hour + i, template)
        start = time.perf_counter()
        batch = uuid.uuid4().hex
        writer.archive(batch, records)
        writer.store(batch, SOURCE, len(records), observations, [])
        polls.append(time.perf_counter() - start)
    out["poll_stored_s"] = statistics.median(polls)
    out["poll_check_s"] = statistics.median(checks)
    commits, again = [], []
    for i in range(repeat):
        rows = _history_commit(template, f"hist-{hour}-{i}", 100, 1000)
        checks.clear()
        start = time.perf_counter()
        stored = writer.store_history(uuid.uuid4().hex, SOURCE, None, rows, [], [])
        commits.append((time.perf_counter() - start, checks[0]))
        assert stored.observations == rows.num_rows, stored
        checks.clear()
        start = time.perf_counter()
        stored = writer.store_history(uuid.uuid4().hex, SOURCE, None, rows, [], [])
        again.append((time.perf_counter() - start, checks[0]))
        assert stored.observations == 0, stored
    out["history_commit_s"] = statistics.median(c[0] for c in commits)
    out["history_commit_check_s"] = statistics.median(c[1] for c in commits)
    out["duplicate_commit_s"] = statistics.median(c[0] for c in again)
    out["duplicate_commit_check_s"] = statistics.median(c[1] for c in again)
    out["active_files"] = writer.con.execute(
        f"SELECT count(*) FROM __ducklake_metadata_{LAKE}.ducklake_data_file "
        "WHERE end_snapshot IS NULL"
    ).fetchone()[0]
    writer.close()
    return out


def measure_reads(data_dir: Path, repeat: int) -> dict[str, Any]:
    """The reads and files at one size (in a process of their own)."""
    import yieldstream

    out: dict[str, Any] = {}
    con = yieldstream.connect(data_dir)
    queries = reads(*_product(con))
    for name, sql in queries.items():
        con.execute(sql).fetchall()  # warm: the first query also reads the catalog
        out[f"{name}_s"] = _timed(lambda sql=sql: con.execute(sql).fetchall(), repeat)
    con.close()
    exe = Path(sys.executable).with_name("yieldstream")
    for name in ("latest_by_chain", "count"):
        out[f"sql_{name}_s"] = _timed(
            lambda name=name: subprocess.run(
                [str(exe), "-d", str(data_dir), "sql", "-f", "csv", queries[name]],
                check=True,
                capture_output=True,
            ),
            repeat,
        )
    out["sql_trivial_s"] = _timed(
        lambda: subprocess.run(
            [str(exe), "-d", str(data_dir), "sql", "-f", "csv", "SELECT 1"],
            check=True,
            capture_output=True,
        ),
        repeat,
    )
    parquet = list((data_dir / "lake").rglob("*.parquet"))
    out["files_on_disk"] = len(parquet)
    out["gib_on_disk"] = round(
        sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file()) / 2**30, 2
    )
    return out


def _child(kind: str, *args: str) -> dict[str, Any]:
    """Run ``kind`` in a fresh process; its answer, with its peak RSS sampled as a tree
    (:func:`bench.processes.run_sampled`)."""
    out, code, peak = run_sampled([sys.executable, "-m", "bench.scale", "--child", kind, *args])
    if code:
        raise SystemExit(f"{kind} failed with exit code {code}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result[f"{kind}_rss_mib"] = round(peak / 2**20)
    return result


def _backfill_process(url: str, data_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.backfill",
            "--child",
            "backfill",
            "--url",
            url,
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def _at_size(data_dir: Path, hour: int, repeat: int) -> dict[str, Any]:
    """The writer's figures (polls from ``hour`` on) and the reads', each in its process."""
    writes = _child(
        "measure", "--data-dir", str(data_dir), "--k0", str(hour), "--repeat", str(repeat)
    )
    return {**writes, **_child("reads", "--data-dir", str(data_dir), "--repeat", str(repeat))}


def _first_commit(data_dir: Path, timeout_s: float) -> None:
    """Wait until the backfill committed its first checkpoints (or ``timeout_s``)."""
    import yieldstream

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the store being written
            con = yieldstream.connect(data_dir)
            try:
                if con.execute("SELECT count(*) FROM backfill_checkpoints").fetchone()[0]:
                    return
            finally:
                con.close()
        time.sleep(0.2)


def killed_and_resumed(store_dir: Path, kill_after_s: float) -> dict[str, Any]:
    """A backfill killed with SIGKILL mid-run, then run again to the end.

    On a copy of the store, so the history measured later is all still to fetch.
    """
    import yieldstream
    from bench.history import serve

    data_dir = store_dir.with_name("kill-copy")
    shutil.copytree(store_dir, data_dir)
    server = serve(1000, 1000)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        first = _backfill_process(url, data_dir)
        _first_commit(data_dir, kill_after_s)  # then killed mid-run, between commits
        first.send_signal(signal.SIGKILL)
        first.wait()
        con = yieldstream.connect(data_dir)
        before = con.execute("SELECT count(*) FROM observations").fetchone()[0]
        con.close()
        second = _backfill_process(url, data_dir)
        out, _ = second.communicate(timeout=3600)
        resumed = json.loads(out.decode().strip().splitlines()[-1])
    finally:
        server.shutdown()
    con = yieldstream.connect(data_dir)
    dupes = con.execute(
        "SELECT count(*) FROM (SELECT 1 FROM observations "
        "GROUP BY source, pool_id, observed_at HAVING count(*) > 1)"
    ).fetchone()[0]
    rows = con.execute("SELECT count(*) FROM observations").fetchone()[0]
    con.close()
    shutil.rmtree(data_dir)
    return {
        "rows_before_kill": before,
        "resumed_rows_stored": resumed["rows"],
        "duplicate_keys": dupes,
        "rows": rows,
    }


def backfill_history(data_dir: Path, pools: int, days: int) -> dict[str, Any]:
    """The real backfill of ``pools`` x ``days`` into the store (with its peak RSS)."""
    from bench.backfill import _in_child
    from bench.history import serve

    server = serve(pools, days)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        return _in_child("backfill", url, data_dir)
    finally:
        server.shutdown()


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares line y = a + b x."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    return my - b * mx, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000000,5000000,20000000")
    parser.add_argument("--history-pools", type=int, default=2000)
    parser.add_argument("--history-days", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kill-after-s", type=float, default=20.0)
    parser.add_argument("--dir", help="where to build the store (default: a temp dir)")
    parser.add_argument("--child", choices=("build", "measure", "reads"))
    parser.add_argument("--data-dir")
    parser.add_argument("--k0", type=int)
    parser.add_argument("--k1", type=int)
    args = parser.parse_args()
    if args.child == "build":
        build(Path(args.data_dir), args.k0, args.k1)
        print(json.dumps({"built": args.k1 - args.k0}))
        return
    if args.child == "measure":
        print(json.dumps(measure(Path(args.data_dir), args.k0, args.repeat), default=str))
        return
    if args.child == "reads":
        print(json.dumps(measure_reads(Path(args.data_dir), args.repeat), default=str))
        return

    sizes = sorted(int(s) for s in args.sizes.split(","))
    root = Path(args.dir or tempfile.mkdtemp(prefix="yieldstream-scale-"))
    need = (sizes[-1] + args.history_pools * args.history_days) * BYTES_PER_ROW
    free = shutil.disk_usage(root).free
    print(f"disk: {free / 2**30:.1f} GiB free at {root}, about {need / 2**30:.1f} GiB needed")
    if free < need:
        sys.exit(f"not enough free disk at {root}: pass --dir on a larger disk or smaller --sizes")
    data_dir = root / "data"
    results: list[dict[str, Any]] = []
    hour = 0  # the next hour of snapshots: bulk-built ones, then the measured polls
    snapshots = 0
    try:
        for size in sizes:
            more = size // POOLS - snapshots
            start = time.perf_counter()
            _child(
                "build", "--data-dir", str(data_dir), "--k0", str(hour), "--k1", str(hour + more)
            )
            built_s = time.perf_counter() - start
            hour += more
            snapshots += more + args.repeat
            row = {
                "size": size,
                "built_s": round(built_s, 1),
                **_at_size(data_dir, hour, args.repeat),
            }
            hour += args.repeat
            if size == 5_000_000 or (size == sizes[-1] and 5_000_000 not in sizes):
                row["kill_resume"] = killed_and_resumed(data_dir, args.kill_after_s)
            print(json.dumps(row, default=str), flush=True)
            results.append(row)
        history = backfill_history(data_dir, args.history_pools, args.history_days)
        row = _at_size(data_dir, hour, args.repeat)
        row = {"size": row["rows"], "backfill": history, **row}
        print(json.dumps(row, default=str), flush=True)
        results.append(row)
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    _report(results)


FIGURES = (
    "poll_stored_s",
    "poll_check_s",
    "history_commit_check_s",
    "duplicate_commit_check_s",
    "latest_by_chain_s",
    "product_history_s",
    "monthly_aggregate_s",
    "count_s",
    "sql_trivial_s",
    "sql_latest_by_chain_s",
    "active_files",
    "files_on_disk",
    "gib_on_disk",
    "measure_rss_mib",
    "reads_rss_mib",
)


def _report(results: list[dict[str, Any]]) -> None:
    print()
    print(
        "figure".ljust(26) + "".join(f"{r['rows']:>12,}" for r in results) + f"{'year (fit)':>14}"
    )
    xs = [float(r["rows"]) for r in results]
    for name in FIGURES:
        ys = [float(r[name]) for r in results]
        a, b = _fit(xs, ys)
        cells = "".join(f"{y:>12.3f}" if y < 100 else f"{y:>12,.0f}" for y in ys)
        print(name.ljust(26) + cells + f"{a + b * YEAR_ROWS:>14.3f}")


if __name__ == "__main__":
    main()
