"""Replay after a transform change: new values, no duplicates, rejections that now pass."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec
import orjson

from sinks.lake import Store
from tests.conftest import query, recorded
from transforms import Context, Result
from transforms import defillama_yields as pools_transform
from yieldstream.app import run_pipeline
from yieldstream.contracts import RawRecord
from yieldstream.loopback import Reply, Route, recorded_routes
from yieldstream.registry import Source, sources
from yieldstream.replay import replay
from yieldstream.settings import Settings

POOLS = "defillama-yields"
StartServer = Callable[[Mapping[str, Route] | None], tuple[str, dict[str, int]]]


def with_pools_transform(transform: Callable[[RawRecord, Context], Result]) -> dict[str, Source]:
    """The registry with the pools transform swapped: a deliberate transform change."""
    # The changed transform alone (no columnar path that would bypass it).
    return {
        **sources(),
        POOLS: dataclasses.replace(sources()[POOLS], transform=transform, columns=None),
    }


def apy_times_two(record: RawRecord, ctx: Context) -> Result:
    result = pools_transform.transform(record, ctx)
    if isinstance(result, list):
        return [
            msgspec.structs.replace(o, apy_pct=None if o.apy_pct is None else o.apy_pct * 2)
            for o in result
        ]
    return result


def apy_in_basis_points(record: RawRecord, ctx: Context) -> Result:
    """A 'fix': this pool reports APY in basis points, so divide by 100 before validating."""
    item = orjson.loads(record.payload)
    if item.get("pool") == "bps-pool":
        item["apy"] = item["apy"] / 100
        record = msgspec.structs.replace(record, payload=orjson.dumps(item))
    return pools_transform.transform(record, ctx)


def stored_apys(data_dir: Path) -> dict[str, float | None]:
    rows = query(data_dir, f"SELECT pool_id, apy_pct FROM observations WHERE source = '{POOLS}'")
    return {str(pool): apy for pool, apy in rows}


async def stored_run(
    loopback: StartServer, make_settings: Callable[..., Settings], extra_pools: list[Any]
) -> Settings:
    routes = recorded_routes()
    pools = orjson.loads(recorded(POOLS, "pools-stablecoin_quant.json"))["data"]
    routes["/pools"] = Reply(body=orjson.dumps({"status": "success", "data": pools + extra_pools}))
    url, _ = loopback(routes)
    settings = make_settings(url)
    await run_pipeline(settings, once=True, handle_signals=False)
    return settings


async def test_replay_with_unchanged_transforms_changes_nothing(
    loopback: StartServer, make_settings: Callable[..., Settings], steady_hour: None
) -> None:
    settings = await stored_run(loopback, make_settings, [])
    before = query(settings.data_dir, "SELECT * EXCLUDE (stored_at) FROM observations ORDER BY ALL")
    summary = replay(Store(settings.data_dir))
    assert summary.batches == 3
    assert (summary.added, summary.removed, summary.changed) == (0, 0, 0)
    after = query(settings.data_dir, "SELECT * EXCLUDE (stored_at) FROM observations ORDER BY ALL")
    assert after == before


async def test_replay_applies_a_transform_change_to_history_without_duplicates(
    loopback: StartServer, make_settings: Callable[..., Settings], steady_hour: None
) -> None:
    settings = await stored_run(loopback, make_settings, [])
    old = stored_apys(settings.data_dir)
    total = query(settings.data_dir, "SELECT count(*) FROM observations")
    doubled = sum(1 for apy in old.values() if apy)  # 0 % doubled is still 0 %: unchanged
    assert doubled == 4

    dry = replay(
        Store(settings.data_dir),
        only=[POOLS],
        dry_run=True,
        sources=with_pools_transform(apy_times_two),
    )
    assert (dry.batches, dry.added, dry.removed, dry.changed) == (1, 0, 0, doubled)
    assert stored_apys(settings.data_dir) == old  # a dry run writes nothing

    done = replay(
        Store(settings.data_dir), only=[POOLS], sources=with_pools_transform(apy_times_two)
    )
    assert (done.added, done.removed, done.changed) == (0, 0, doubled)
    assert stored_apys(settings.data_dir) == {
        pool: None if apy is None else apy * 2 for pool, apy in old.items()
    }
    assert query(settings.data_dir, "SELECT count(*) FROM observations") == total
    dupes = "SELECT count(*) - count(DISTINCT (source, pool_id, observed_at)) FROM observations"
    assert query(settings.data_dir, dupes) == [(0,)]

    again = replay(
        Store(settings.data_dir), only=[POOLS], sources=with_pools_transform(apy_times_two)
    )
    assert (again.added, again.removed, again.changed) == (0, 0, 0)


DERIVED = f"SELECT pool_id, apy_pct, mu FROM pool_stats WHERE source = '{POOLS}' ORDER BY ALL"


async def test_the_derived_figures_follow_a_replayed_transform_change(
    loopback: StartServer, make_settings: Callable[..., Settings], steady_hour: None
) -> None:
    """pool_stats (like real_yields and strategy_compare) is a view over the
    observations: a replay carries it."""
    settings = await stored_run(loopback, make_settings, [])
    before = query(settings.data_dir, DERIVED)
    assert sum(1 for _, apy, _ in before if apy) == 4
    replay(Store(settings.data_dir), only=[POOLS], sources=with_pools_transform(apy_times_two))
    after = query(settings.data_dir, DERIVED)
    assert [row[0] for row in after] == [row[0] for row in before]
    for (_, apy, _), (pool, apy2, mu2) in zip(before, after, strict=True):
        doubled = None if apy is None else apy * 2
        assert apy2 == doubled, pool
        if doubled is not None:  # one day seen: the geometric mean is that day's APY
            assert mu2 is not None
            assert abs(mu2 - doubled) < 1e-9 * max(1.0, doubled), pool


async def test_rejections_that_now_pass_are_stored(
    loopback: StartServer, make_settings: Callable[..., Settings], steady_hour: None
) -> None:
    base = orjson.loads(recorded(POOLS, "pools-stablecoin_quant.json"))["data"][0]
    bps = {**base, "pool": "bps-pool", "apy": 4_250_000.0}  # 42,500 % in basis points
    settings = await stored_run(loopback, make_settings, [bps])
    rejected = f"SELECT native_id FROM rejections WHERE source = '{POOLS}'"
    assert query(settings.data_dir, rejected) == [("bps-pool",)]
    assert "bps-pool" not in stored_apys(settings.data_dir)

    summary = replay(
        Store(settings.data_dir), only=[POOLS], sources=with_pools_transform(apy_in_basis_points)
    )
    assert (summary.added, summary.removed, summary.changed) == (1, 0, 0)
    assert (summary.rejections_before, summary.rejections_after) == (1, 0)
    assert query(settings.data_dir, rejected) == []
    assert stored_apys(settings.data_dir)["bps-pool"] == 42_500.0


async def test_replay_command_reports_a_dry_run(
    loopback: StartServer, make_settings: Callable[..., Settings], steady_hour: None
) -> None:
    settings = await stored_run(loopback, make_settings, [])
    result = await asyncio.to_thread(
        subprocess.run,
        [
            str(Path(sys.executable).with_name("yieldstream")),
            "-d",
            str(settings.data_dir),
            "replay",
            "--source",
            POOLS,
            "--since",
            "2000-01-01",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "YIELDSTREAM_LOG_LEVEL": "warning"},
    )
    assert result.returncode == 0, result.stderr
    assert "replayed 1 batches (5 raw records)" in result.stderr
    assert "0 observations added, 0 removed, 0 updated" in result.stderr
    assert "dry run: nothing written" in result.stderr
