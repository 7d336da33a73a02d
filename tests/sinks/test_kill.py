"""The daemon killed with SIGKILL at random moments loses and duplicates nothing.

A real ``yieldstream run`` process polls a loopback server whose ``/pools`` has new
pool ids on every call, so every fetch adds new keys. It is killed with ``kill -9``
again and again, restarted each time, then finishes with a clean ``run --once``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import yieldstream
from tests.sinks import (
    RAW_POOL_KEYS,
    STORED_POOL_KEYS,
    FreshPools,
    Lineage,
    StartServer,
    daemon,
    daemon_env,
    pending,
    routes_with,
    stop,
    tail,
)

pytestmark = pytest.mark.slow

KILLS = 10
# The transform worker, the catalog's holder and multiprocessing's resource tracker
# end within this after a kill -9 of the daemon (the slowest: a worker still
# importing when its parent died, which notices once its imports are done).
ORPHAN_TIMEOUT_S = 10.0


def archived_ids(data_dir: Path) -> set[str]:
    con = yieldstream.connect(data_dir)
    try:
        return {str(r[0]) for r in con.execute("SELECT raw_id FROM raw_records").fetchall()}
    finally:
        con.close()


def store_report(data_dir: Path) -> dict[str, int]:
    """Counts over the store, the pool keys of raw records vs observations among them."""
    con = yieldstream.connect(data_dir)
    try:
        row = con.execute(f"""
            SELECT (SELECT count(*) FROM raw_records),
                   (SELECT count(DISTINCT raw_id) FROM raw_records),
                   (SELECT count(*) FROM ({RAW_POOL_KEYS})),
                   (SELECT count(*) FROM ({STORED_POOL_KEYS})),
                   (SELECT count(*) FROM (SELECT DISTINCT * FROM ({STORED_POOL_KEYS}))),
                   (SELECT count(*) FROM ({RAW_POOL_KEYS} EXCEPT {STORED_POOL_KEYS})),
                   (SELECT count(*) FROM ({STORED_POOL_KEYS} EXCEPT {RAW_POOL_KEYS})),
                   (SELECT count(*) FROM rejections WHERE source = 'defillama-yields'),
                   (SELECT count(*) FROM observations)
        """).fetchone()
    finally:
        con.close()
    assert row is not None
    names = (
        "raw",
        "raw_ids",
        "pool_keys_raw",
        "pool_observations",
        "pool_keys_stored",
        "raw_not_stored",
        "stored_not_raw",
        "pool_rejections",
        "observations",
    )
    return dict(zip(names, map(int, row), strict=True))


@pytest.mark.timeout(180)
def test_kill_9_at_random_moments_loses_and_duplicates_nothing(
    report: Callable[[str], None], loopback: StartServer, tmp_path: Path
) -> None:
    seed = int(os.environ.get("KILL_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    pools = FreshPools()
    url, _hits = loopback(routes_with(pools))
    data_dir = tmp_path / "data"
    env = daemon_env(url, data_dir)
    log = tmp_path / "daemon.log"
    archived: set[str] = set()
    counts: list[int] = []
    left_pending = 0

    for kill in range(KILLS):
        lineage = Lineage()
        with daemon(lineage.mark(env), log) as proc, lineage.watching(proc):
            time.sleep(rng.uniform(0.5, 3.5))
            assert proc.poll() is None, f"daemon died on its own (kill {kill}):\n{tail(log)}"
            stop(proc, signal.SIGKILL)
        left, _ = lineage.left_after(ORPHAN_TIMEOUT_S)
        assert not left, f"kill {kill} (seed {seed}) left processes behind: {left}"
        # What the next start finds (a writer also finishes a store killed mid-creation).
        left_pending += bool(pending(data_dir))
        now = archived_ids(data_dir)
        lost = archived - now
        assert not lost, f"kill {kill} (seed {seed}): {len(lost)} archived records lost"
        archived = now
        counts.append(len(now))

    with daemon(env, log, "--once") as proc:
        assert proc.wait(60) == 0, tail(log)
    totals = store_report(data_dir)
    report(
        f"seed={seed} kills={KILLS} (leaving archived-not-stored batches: {left_pending}) "
        f"/pools responses={pools.calls} raw records per kill={counts} "
        f"final: {totals}"
    )

    assert counts == sorted(counts)
    assert pending(data_dir) == []
    assert archived <= archived_ids(data_dir)
    assert totals["raw"] == totals["raw_ids"]  # no record archived twice
    assert totals["pool_rejections"] == 0
    assert totals["raw_not_stored"] == 0, totals  # every archived pool became an observation
    assert totals["stored_not_raw"] == 0, totals  # and no observation came from elsewhere
    assert totals["pool_observations"] == totals["pool_keys_stored"], totals  # none twice
    assert totals["pool_observations"] == totals["pool_keys_raw"] > 0
    assert '"level":"error"' not in log.read_text()


# When to kill: seconds after the start, or after a child process appeared (the
# catalog's holder opening it; the transform worker importing).
HOLDER, WORKER = "import sqlite3", "multiprocessing.spawn"
EARLY_KILLS = [(None, 0.05), (None, 0.3), (None, 1.0), (HOLDER, 0.0), (WORKER, 0.0), (WORKER, 0.15)]


def _appeared(child: str, lineage: Lineage, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while not any(child in command for command in lineage.seen.values()):
        assert proc.poll() is None, tail(log)
        assert time.monotonic() < deadline, f"no child process {child!r} started"
        time.sleep(0.002)


@pytest.mark.timeout(180)
def test_kill_9_in_the_first_second_leaves_no_process_behind(
    report: Callable[[str], None], loopback: StartServer, tmp_path: Path
) -> None:
    """Killed while it starts (its catalog holder or transform worker not started
    yet, or starting), the daemon leaves nothing running: every process it started
    ends too."""
    url, _hits = loopback(routes_with(FreshPools()))
    data_dir = tmp_path / "data"
    env = daemon_env(url, data_dir)
    log = tmp_path / "daemon.log"
    for child, after_s in EARLY_KILLS:
        for attempt in range(3):
            lineage = Lineage()
            with daemon(lineage.mark(env), log) as proc, lineage.watching(proc):
                if child is not None:
                    _appeared(child, lineage, proc, log)
                time.sleep(after_s)
                assert proc.poll() is None, tail(log)
                stop(proc, signal.SIGKILL)
            left, waited = lineage.left_after(ORPHAN_TIMEOUT_S)
            commands = sorted(c.partition(" -c ")[2][:40] or c[:40] for c in lineage.seen.values())
            when = f"{after_s:.2f} s after {'start' if child is None else repr(child)}"
            report(
                f"kill -9 {when} (#{attempt + 1}): {len(commands)} child processes seen, "
                f"all gone {waited:.2f} s after the kill: {commands}"
            )
            assert not left, f"kill {when} left processes behind: {left}"


@pytest.mark.timeout(60)
def test_sigterm_stops_the_daemon_cleanly(
    report: Callable[[str], None], loopback: StartServer, tmp_path: Path
) -> None:
    pools = FreshPools()
    url, _hits = loopback(routes_with(pools))
    data_dir = tmp_path / "data"
    log = tmp_path / "daemon.log"
    with daemon(daemon_env(url, data_dir), log) as proc:
        deadline = time.monotonic() + 30
        while pools.calls < 3 and time.monotonic() < deadline:  # busy fetching and storing
            time.sleep(0.1)
        assert proc.poll() is None, tail(log)

        started = time.monotonic()
        assert stop(proc, signal.SIGTERM, timeout=10) == 0, tail(log)
        took = time.monotonic() - started
        report(f"stopped {took:.2f}s after SIGTERM; /pools responses {pools.calls}")

    assert pending(data_dir) == []
    totals = store_report(data_dir)
    assert totals["raw_not_stored"] == totals["stored_not_raw"] == 0, totals
    assert totals["pool_observations"] == totals["pool_keys_stored"] > 0, totals
    assert '"level":"error"' not in log.read_text()


def _events(log: Path, event: str, source: str) -> int:
    lines = (json.loads(line) for line in log.read_text().splitlines() if line.startswith("{"))
    return sum(1 for e in lines if e.get("event") == event and e.get("source") == source)


@pytest.mark.timeout(60)
def test_sigterm_mid_fetch_archives_the_whole_response(
    report: Callable[[str], None], loopback: StartServer, tmp_path: Path
) -> None:
    pools = FreshPools(20_000)  # ten batches of 2,000 per response
    url, _hits = loopback(routes_with(pools))
    data_dir = tmp_path / "data"
    log = tmp_path / "daemon.log"
    with daemon(daemon_env(url, data_dir), log) as proc:
        deadline = time.monotonic() + 30
        # In the middle of the second /pools cycle: fetched, partly stored.
        while not (
            _events(log, "fetch_finished", "defillama-yields") == 1
            and _events(log, "batch_stored", "defillama-yields") > 10
        ):
            assert time.monotonic() < deadline, tail(log)
            time.sleep(0.02)
        assert stop(proc, signal.SIGTERM) == 0, tail(log)

    con = yieldstream.connect(data_dir)
    try:
        row = con.execute(
            "SELECT count(*) FROM raw_records WHERE source = 'defillama-yields'"
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    report(
        f"/pools responses {pools.calls}, records served {pools.calls * 20_000}, archived {row[0]}"
    )
    assert row[0] == pools.calls * 20_000
