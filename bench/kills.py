"""kill -9 at random moments: 0 lost, 0 duplicated, no process left behind.

Two modes, each killing a real ``yieldstream`` process again and again, restarting
it each time, then letting it finish:

``replay``
    A store of ``--rows`` synthetic ``/pools`` observations (hourly snapshots of
    20,000 pools, archived and stored through the store's own write path), replayed
    with a deliberate transform change (every APY doubled), so every batch the replay
    reaches rewrites its rows. After each kill the store must hold every key once and
    every archived record; after the last run every row carries the new value.
``run``
    The daemon polling a loopback ``/pools`` that lists new pools on every call (the
    kill test of ``tests/sinks/test_kill.py``, with more kills).

After each kill every process the killed one started must be gone. Prints one JSON
line per kill and a summary. The suite runs a small ``replay`` version
(``tests/yieldstream/test_replay_kill.py``)::

    .venv/bin/python -m bench.kills replay --rows 1000000 --kills 50
    .venv/bin/python -m bench.kills run --kills 50
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import msgspec
import orjson

POOLS = "defillama-yields"
ORPHAN_TIMEOUT_S = 10.0
# Every stored pool row against its archived item: the count of rows whose APY is not
# twice the item's (the replayed transform's), and the key counts.
CHECK = f"""
    WITH raw AS MATERIALIZED (
        SELECT pool_id, observed_at,
               j[1]::DOUBLE AS apy, j[2]::DOUBLE AS base, j[3]::DOUBLE AS reward
        FROM (SELECT native_id AS pool_id, date_trunc('hour', fetched_at) AS observed_at,
                     json_extract_string(any_value(payload), ['$.apy', '$.apyBase', '$.apyReward'])
                         AS j
              FROM raw_records WHERE source = '{POOLS}' GROUP BY ALL)),
    pools AS MATERIALIZED (
        SELECT pool_id, observed_at, apy_pct FROM observations WHERE source = '{POOLS}')
    SELECT (SELECT count(*) FROM raw),
           (SELECT count(*) FROM pools),
           (SELECT count(*) FROM (SELECT DISTINCT pool_id, observed_at FROM pools)),
           (SELECT count(*) FROM raw ANTI JOIN pools USING (pool_id, observed_at)),
           (SELECT count(*) FROM pools JOIN raw USING (pool_id, observed_at)
             WHERE pools.apy_pct IS DISTINCT FROM
                   2 * coalesce(raw.apy, coalesce(raw.base, 0) + coalesce(raw.reward, 0))
               AND (raw.apy IS NOT NULL OR raw.base IS NOT NULL OR raw.reward IS NOT NULL))
"""


def build_store(data_dir: Path, rows: int) -> int:
    """Archive and store ``rows`` synthetic /pools records as the daemon would."""
    from bench.synthetic import pool_payloads
    from sinks.lake import Store
    from sinks.writer import LakeWriter
    from transforms import Context
    from yieldstream.contracts import RawRecord
    from yieldstream.registry import sources
    from yieldstream.transformer import transform_records

    src = sources()[POOLS]
    writer = LakeWriter(Store(data_dir))
    stored = 0
    try:
        for fetched_at, payloads in pool_payloads(rows):
            records = [
                RawRecord(
                    source=POOLS,
                    endpoint="/pools",
                    fetched_at=fetched_at,
                    run_id="kills",
                    kind="snapshot",
                    native_id=orjson.loads(payload)["pool"],
                    payload=payload,
                )
                for payload in payloads
            ]
            batch_id = uuid.uuid4().hex
            writer.archive(batch_id, records)
            observations, rejections = transform_records(records, src, Context())
            stored += writer.store(
                batch_id, POOLS, len(records), observations, rejections
            ).observations
    finally:
        writer.close()
    return stored


def replay_child(data_dir: Path) -> None:
    """The process that gets killed: a replay with every APY doubled."""
    from sinks.lake import Store
    from transforms import Context, Result
    from yieldstream.contracts import RawRecord
    from yieldstream.registry import sources
    from yieldstream.replay import replay

    pools = sources()[POOLS]

    def doubled(record: RawRecord, ctx: Context) -> Result:
        result = pools.transform(record, ctx)
        if not isinstance(result, list):
            return result
        return [
            msgspec.structs.replace(o, apy_pct=None if o.apy_pct is None else 2 * o.apy_pct)
            for o in result
        ]

    # Without the columnar path, which would not double anything.
    changed = {**sources(), POOLS: dataclasses.replace(pools, transform=doubled, columns=None)}
    summary = replay(Store(data_dir), only=[POOLS], sources=changed)
    print(summary.line(dry_run=False), file=sys.stderr)


def check(data_dir: Path) -> dict[str, int]:
    """The store's counts: raw keys, rows, distinct keys, raw keys not stored, stale rows."""
    import yieldstream

    con = yieldstream.connect(data_dir)
    try:
        row = con.execute(CHECK).fetchone()
    finally:
        con.close()
    assert row is not None
    names = ("raw_keys", "rows", "distinct_keys", "not_stored", "not_replayed")
    return dict(zip(names, map(int, row), strict=True))


def _kill_at_random(
    start: Callable[[dict[str, str]], AbstractContextManager[subprocess.Popen[bytes]]],
    env: dict[str, str],
    delay_s: float,
) -> tuple[bool, int]:
    """Start a process, ``kill -9`` it after ``delay_s`` unless it ended first.

    Whether it ended first, and how many processes it started are still running
    :data:`ORPHAN_TIMEOUT_S` after it.
    """
    from tests.sinks import Lineage

    lineage = Lineage()
    with start(lineage.mark(env)) as proc, lineage.watching(proc):
        time.sleep(delay_s)
        finished = proc.poll() is not None
        if not finished:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    left, _ = lineage.left_after(ORPHAN_TIMEOUT_S)
    return finished, len(left)


def kill_replays(
    data_dir: Path, kills: int, *, max_delay_s: float, seed: int, log: Path
) -> dict[str, Any]:
    """Replay, killed ``kills`` times at random moments, then run to its end."""
    from tests.sinks import process

    rng = random.Random(seed)
    root = str(Path(__file__).resolve().parents[1])  # where `-m bench.kills` is found
    env = {**os.environ, "YIELDSTREAM_LOG_FORMAT": "json", "PYTHONPATH": root}
    argv = [sys.executable, "-m", "bench.kills", "replay-child", str(data_dir)]

    def start(env: dict[str, str]) -> AbstractContextManager[subprocess.Popen[bytes]]:
        return process(argv, env, log)

    first = check(data_dir)
    left_behind = 0
    for kill in range(kills):
        finished, left = _kill_at_random(start, env, rng.uniform(0.2, max_delay_s))
        left_behind += left
        counts = check(data_dir)
        print(json.dumps({"kill": kill, "finished_first": finished, "left": left, **counts}))
        assert counts["raw_keys"] == first["raw_keys"], counts  # nothing archived is lost
        assert counts["rows"] == counts["distinct_keys"] == counts["raw_keys"], counts
    started = time.monotonic()
    with start(env) as proc:
        code = proc.wait()
    final = check(data_dir)
    return {
        "mode": "replay",
        "seed": seed,
        "kills": kills,
        "processes_left": left_behind,
        "final_exit": code,
        "final_s": round(time.monotonic() - started, 1),
        **final,
    }


def kill_runs(tmp: Path, kills: int, *, max_delay_s: float, seed: int) -> dict[str, Any]:
    """The daemon, killed ``kills`` times while it stores new pools, then ``run --once``."""
    from tests.sinks import FreshPools, daemon, daemon_env, pending, routes_with
    from tests.sinks.test_kill import archived_ids, store_report
    from yieldstream.loopback import serve

    rng = random.Random(seed)
    pools = FreshPools()
    data_dir, log = tmp / "data", tmp / "daemon.log"
    archived: set[str] = set()
    lost = left_behind = 0
    with serve(routes_with(pools)) as (url, _hits):
        env = daemon_env(url, data_dir)
        for kill in range(kills):
            _, left = _kill_at_random(
                lambda env: daemon(env, log), env, rng.uniform(0.5, max_delay_s)
            )
            left_behind += left
            now = archived_ids(data_dir)
            lost += len(archived - now)
            archived = now
            print(json.dumps({"kill": kill, "archived": len(now), "left": left}))
        with daemon(env, log, "--once") as proc:
            code = proc.wait(120)
        totals = store_report(data_dir)
    return {
        "mode": "run",
        "seed": seed,
        "kills": kills,
        "archived_lost": lost,
        "processes_left": left_behind,
        "pending": len(pending(data_dir)),
        "final_exit": code,
        **totals,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["replay", "run", "replay-child"])
    parser.add_argument("data_dir", nargs="?", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--max-delay", type=float, default=None, help="seconds before a kill")
    parser.add_argument("--seed", type=int, default=time.time_ns() % 1_000_000)
    args = parser.parse_args()
    if args.mode == "replay-child":
        replay_child(args.data_dir)
        return
    with tempfile.TemporaryDirectory(prefix="yieldstream-kills-") as tmp:
        if args.mode == "run":
            result = kill_runs(
                Path(tmp), args.kills, max_delay_s=args.max_delay or 4.0, seed=args.seed
            )
        else:
            data_dir = Path(tmp) / "data"
            started = time.monotonic()
            stored = build_store(data_dir, args.rows)
            print(json.dumps({"built": stored, "seconds": round(time.monotonic() - started, 1)}))
            result = kill_replays(
                data_dir,
                args.kills,
                max_delay_s=args.max_delay or 20.0,
                seed=args.seed,
                log=Path(tmp) / "replay.log",
            )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
