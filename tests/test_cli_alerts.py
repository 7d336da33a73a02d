"""``yieldstream alerts``: the store's alerts, read-only, filtered, followed."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sinks.alerts import Alerting, pools_of
from sinks.lake import Store
from sinks.tables import observations_table
from sinks.writer import LakeWriter
from tests.test_cli import yieldstream_cmd
from yieldstream.contracts import Observation, Strategy, Venue, make_observation
from yieldstream.settings import AlertSettings

NOW = datetime.now(UTC).replace(microsecond=0)


def figure(pool: str, at: datetime, apy: float, tvl: float) -> Observation:
    return make_observation(
        {
            "source": "beefy",
            "pool_id": pool,
            "product_id": f"beefy:bsc:{pool}",
            "observed_at": at,
            "protocol": "beefy",
            "chain": "BSC",
            "symbol": pool.upper(),
            "strategy": Strategy.FARMING,
            "venue": Venue.DEFI,
            "apy_pct": apy,
            "tvl_usd": tvl,
        }
    )


def store_and_evaluate(data_dir: Path, rows: list[Observation]) -> None:
    writer = LakeWriter(Store(data_dir), compact_every=None)
    try:
        writer.store(None, "beefy", len(rows), rows, [])
        Alerting(AlertSettings(), ()).evaluate(writer, pools_of(observations_table(rows)))
    finally:
        writer.close()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """An APY spike an hour ago (10 % -> 80 %), on one pool."""
    rows = [figure("a", NOW - timedelta(hours=h), 10.0, 1e6) for h in (4, 3, 2)]
    rows.append(figure("a", NOW - timedelta(hours=1), 80.0, 1e6))
    store_and_evaluate(tmp_path / "store", rows)
    return tmp_path / "store"


def listed(store: Path, *args: str) -> list[dict[str, object]]:
    result = yieldstream_cmd("-d", str(store), "alerts", "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_lists_the_alerts_with_their_evidence(store: Path) -> None:
    [row] = listed(store)
    assert (row["kind"], row["severity"], row["source"], row["subject"], row["state"]) == (
        "apy_spike",
        "warning",
        "beefy",
        "a",
        "open",
    )
    assert json.loads(str(row["evidence"]))["multiple"] == 8.0
    table = yieldstream_cmd("-d", str(store), "alerts")
    assert table.returncode == 0, table.stderr
    assert "apy_spike" in table.stdout
    assert "1 row" in table.stderr


def test_since_takes_a_duration_or_a_time_and_open_keeps_the_open_ones(store: Path) -> None:
    assert len(listed(store, "--since", "2h")) == 1
    assert listed(store, "--since", "30m") == []
    assert len(listed(store, "--since", (NOW - timedelta(days=1)).date().isoformat())) == 1
    assert listed(store, "--since", (NOW + timedelta(days=1)).isoformat()) == []
    assert len(listed(store, "--open")) == 1


@pytest.mark.parametrize("since", ["yesterday", "-2h"])
def test_a_bad_since_is_a_one_line_error_saying_what_to_give(store: Path, since: str) -> None:
    result = yieldstream_cmd("-d", str(store), "alerts", "--since", since)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: --since {since!r} is not a duration or a time; give a duration")
    assert "2026-11-01" in line


def test_no_store_is_a_one_line_error(tmp_path: Path) -> None:
    result = yieldstream_cmd("-d", str(tmp_path / "none"), "alerts")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: no store in ")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "term"])
def test_follow_prints_a_new_alert_then_stops_on_a_signal(store: Path, stop: int) -> None:
    exe = Path(sys.executable).with_name("yieldstream")
    proc = subprocess.Popen(
        [str(exe), "-d", str(store), "alerts", "--follow", "--every", "0.2", "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "YIELDSTREAM_LOG_FORMAT": "json"},
    )
    lines: queue.Queue[str] = queue.Queue()
    out = proc.stdout
    assert out is not None

    def pump() -> None:
        for line in out:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        first = json.loads(lines.get(timeout=30))
        assert first["kind"] == "apy_spike"
        # A TVL crash on another pool while it follows.
        crash = [figure("b", NOW - timedelta(minutes=m), 5.0, 1e6) for m in (50, 40)]
        crash.append(figure("b", NOW - timedelta(minutes=30), 5.0, 2e5))
        store_and_evaluate(store, crash)
        new = json.loads(lines.get(timeout=30))
        assert (new["kind"], new["subject"], new["severity"]) == ("tvl_drawdown", "b", "critical")
        time.sleep(0.5)
        assert lines.empty()  # each alert once
    finally:
        proc.send_signal(stop)
        try:
            _, stderr = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()  # no follower outlives its test
            proc.communicate()
            raise
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
