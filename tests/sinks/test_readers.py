"""Analysts query the store while the daemon writes: no lock errors, no waits, no going back."""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sinks.lake import Store, open_reader
from sinks.writer import LakeWriter
from tests.sinks import (
    FreshPools,
    StartServer,
    daemon,
    daemon_env,
    lido_observations,
    routes_with,
    stop,
    tail,
    yieldstream_exe,
)
from yieldstream.contracts import Observation

READ_SECONDS = 10.0
# One statement, so one snapshot: the views must agree with the table they read.
QUERY = """
    SELECT (SELECT count(*) FROM observations),
           (SELECT count(*) FROM raw_records),
           (SELECT count(*) FROM latest_yields),
           (SELECT count(DISTINCT (source, pool_id)) FROM observations WHERE level = 'product'),
           (SELECT count(*) FROM yield_history),
           (SELECT count(*) FROM observations WHERE level = 'product')
"""
# An analyst's loop in its own process; a new connection every few queries.
READER = textwrap.dedent("""
    import json, sys, time
    import yieldstream

    data_dir, seconds, query = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    con = yieldstream.connect(data_dir)
    end = time.monotonic() + seconds
    queries = 0
    while time.monotonic() < end:
        try:
            if queries % 5 == 4:
                con.close()
                con = yieldstream.connect(data_dir)
            started = time.monotonic()
            row = con.execute(query).fetchone()
            line = {"row": list(row), "seconds": time.monotonic() - started}
        except Exception as exc:
            line = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(line), flush=True)
        queries += 1
""")


def sql_count(data_dir: Path, env: dict[str, str]) -> int:
    """``yieldstream sql``, as an analyst types it, while the daemon writes."""
    done = subprocess.run(
        [
            yieldstream_exe(),
            "-d",
            str(data_dir),
            "sql",
            "-f",
            "csv",
            "SELECT count(*) AS n FROM observations",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=data_dir.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "lock" not in done.stderr, done.stderr
    header, value = done.stdout.split()
    assert header == "n"
    return int(value)


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_readers_query_while_the_daemon_writes(
    report: Callable[[str], None], loopback: StartServer, tmp_path: Path
) -> None:
    pools = FreshPools()
    url, _hits = loopback(routes_with(pools))
    data_dir = tmp_path / "data"
    env = daemon_env(url, data_dir)
    log = tmp_path / "daemon.log"

    with daemon(env, log) as writer:
        deadline = time.monotonic() + 30
        while '"batch_stored"' not in log.read_text():  # the store is set up and written to
            assert time.monotonic() < deadline, tail(log)
            assert writer.poll() is None, tail(log)
            time.sleep(0.2)
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(data_dir), str(READ_SECONDS), QUERY],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        sql_counts = []
        for _ in range(3):
            sql_counts.append(sql_count(data_dir, env))
            time.sleep(2)
        out, err = reader.communicate(timeout=60)
        calls_while_reading = pools.calls
        assert writer.poll() is None, tail(log)
        assert stop(writer, signal.SIGTERM) == 0, tail(log)

    lines = [json.loads(line) for line in out.splitlines()]
    errors = [line["error"] for line in lines if "error" in line]
    rows = [line["row"] for line in lines if "row" in line]
    seconds = sorted(line["seconds"] for line in lines if "seconds" in line)
    assert rows, f"no query answered: {errors[:3]} {err}"
    observations = [row[0] for row in rows]
    raw = [row[1] for row in rows]
    report(
        f"reader: {len(rows)} queries, {len(errors)} errors, "
        f"median {statistics.median(seconds):.3f}s, slowest {seconds[-1]:.3f}s; "
        f"observations {observations[0]} -> {observations[-1]}, raw {raw[0]} -> {raw[-1]}; "
        f"yieldstream sql counts {sql_counts}; /pools responses {calls_while_reading}"
    )
    assert reader.returncode == 0, err
    assert errors == []
    assert "lock" not in err
    assert len(rows) >= 10
    assert observations == sorted(observations)
    assert raw == sorted(raw)
    assert observations[-1] > observations[0]  # the daemon kept writing meanwhile
    assert sql_counts == sorted(sql_counts)
    for row in rows:
        _observations, _raw, latest, pools_seen, history, products = row
        assert latest == pools_seen, row  # one row per product pool
        assert history == products, row  # every product observation, no protocol row
    # Readers do not wait for the writer (they did: 1 s and more per commit they met).
    waited = [s for s in seconds if s >= 0.9]
    assert len(waited) <= len(seconds) // 10, waited
    log_text = log.read_text()
    assert '"level":"error"' not in log_text
    assert "locked" not in log_text


def test_an_open_read_transaction_does_not_block_the_writer(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    moment = datetime(2026, 3, 12, 12, tzinfo=UTC)

    def observations(prefix: str) -> list[Observation]:
        return lido_observations(prefix, 1500, moment)

    writer = LakeWriter(store, compact_every=None)
    reader = open_reader(store)
    try:
        writer.store("b1", "lido", 1, observations("a"), [])
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM observations").fetchone() == (1500,)

        writer.store("b2", "lido", 1, observations("b"), [])  # "database is locked" before
        writer.compact()

        assert reader.execute("SELECT count(*) FROM observations").fetchone() == (1500,)
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM observations").fetchone() == (3000,)
        assert reader.execute(
            "SELECT count(*) FROM latest_yields WHERE pool_id LIKE 'b-%'"
        ).fetchone() == (1500,)
    finally:
        reader.close()
        writer.close()
