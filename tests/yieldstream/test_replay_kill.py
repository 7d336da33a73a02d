"""A replay killed with SIGKILL at random moments loses and duplicates nothing.

The suite's small version of ``bench/kills.py replay`` (which runs 50 kills over a
million rows): a real replay process with a deliberate transform change, killed
again and again, restarted each time, then run to its end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.kills import build_store, check, kill_replays

pytestmark = pytest.mark.slow

ROWS = 120_000  # six hourly snapshots of 20,000 pools: two replay transactions
KILLS = 3


@pytest.mark.timeout(300)
def test_kill_9_during_a_replay_loses_and_duplicates_nothing(
    report: Callable[[str], None], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    assert build_store(data_dir, ROWS) == ROWS
    before = check(data_dir)
    assert before["not_replayed"] > ROWS // 2  # the change touches most rows
    seed = int(os.environ.get("KILL_SEED", time.time_ns() % 1_000_000))
    result = kill_replays(data_dir, KILLS, max_delay_s=6.0, seed=seed, log=tmp_path / "log")
    report(f"replay kills: {result}")
    assert result["processes_left"] == 0
    assert result["final_exit"] == 0, (tmp_path / "log").read_text()[-2000:]
    assert result["rows"] == result["distinct_keys"] == result["raw_keys"] == ROWS
    assert result["not_stored"] == 0
    assert result["not_replayed"] == 0  # every row carries the changed transform's value
