"""Alerts are opened once, kept, and cleared: the real pipeline over a real store.

Beefy's responses are served by the loopback server from the test's own figures
(its observations are stamped with the fetch time, so every poll is a new row);
each ``poll`` is one ``run --once`` of the embedded pipeline, whose sink evaluates
the alerts after it stored the batch.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import prometheus_client
import pytest
import structlog
from structlog.testing import capture_logs

import sinks.alerts
from sinks.alerts import Alerting, pools_of
from sinks.writer import LakeWriter
from tests.conftest import query, store_created
from yieldstream.app import run_pipeline
from yieldstream.loopback import Reply, Route, recorded_routes
from yieldstream.settings import Settings, store_of

StartServer = Callable[[Mapping[str, Route] | None], tuple[str, dict[str, int]]]
BIFI, COMETH = "bifi-maxi", "cometh-must-eth"
ROWS = "SELECT kind, source, pool_id, product_id, cleared_at IS NULL AS open, evidence FROM alerts"


class Beefy:
    """Beefy's three responses, from figures the test sets between polls."""

    def __init__(self) -> None:
        self.apy = {BIFI: 0.05, COMETH: 0.10}  # fractions, as Beefy gives them
        self.tvl = {BIFI: 1_000_000.0, COMETH: 2_000_000.0}
        self.failing = False
        self.wiggle = True  # every APY moves a little each poll: none is stuck

    def routes(self) -> dict[str, Route]:
        vaults = recorded_routes()["/beefy/vaults"]

        def breakdown() -> Reply:
            if self.failing:
                return Reply(500, b'{"error":"upstream down"}')
            if self.wiggle:
                self.apy = {vault: apy + 0.0001 for vault, apy in self.apy.items()}
            return Reply(body=orjson.dumps({k: {"totalApy": v} for k, v in self.apy.items()}))

        def tvl() -> Reply:
            return Reply(
                body=orjson.dumps({"56": {BIFI: self.tvl[BIFI]}, "137": {COMETH: self.tvl[COMETH]}})
            )

        return {"/apy/breakdown": breakdown, "/tvl": tvl, "/vaults": vaults}


@pytest.fixture
def beefy() -> Beefy:
    return Beefy()


@pytest.fixture
def settings(
    beefy: Beefy, loopback: StartServer, make_settings: Callable[..., Settings]
) -> Settings:
    url, _ = loopback(beefy.routes())
    return make_settings(url, enabled=("beefy",), transform_processes=0, alerts={"stuck_polls": 4})


async def poll(settings: Settings) -> None:
    """One poll of beefy alone (every other source stays disabled)."""
    assert [n for n, cfg in settings.sources.items() if cfg.get("enabled", True)] == ["beefy"]
    await run_pipeline(settings, once=True, handle_signals=False)


def alerts(settings: Settings, where: str = "TRUE") -> list[dict[str, Any]]:
    rows = query(settings.data_dir, f"{ROWS} WHERE {where} ORDER BY opened_at, kind, pool_id")
    names = ("kind", "source", "pool_id", "product_id", "open", "evidence")
    return [dict(zip(names, row, strict=True)) | {"evidence": json.loads(row[5])} for row in rows]


def reevaluate(settings: Settings, pool: str) -> list[Any]:
    """What a second evaluation of the newest batch of ``pool`` changes (nothing, it should)."""
    writer = LakeWriter(store_of(settings))
    try:
        newest = writer.con.execute(
            "SELECT source, pool_id, observed_at FROM observations WHERE pool_id = ? "
            "ORDER BY observed_at DESC LIMIT 1",
            [pool],
        ).fetch_arrow_table()
        return list(Alerting(settings.alerts, ("beefy",)).evaluate(writer, pools_of(newest)))
    finally:
        writer.close()


async def test_an_apy_spike_opens_one_alert_kept_until_it_clears_and_a_recurrence_opens_another(
    beefy: Beefy, settings: Settings
) -> None:
    for _ in range(3):
        await poll(settings)
    assert alerts(settings) == []
    beefy.apy[COMETH] = 0.80  # 8x its recent 10 %
    await poll(settings)
    [spike] = alerts(settings)
    assert spike["kind"] == "apy_spike"
    assert (spike["source"], spike["pool_id"], spike["open"]) == ("beefy", COMETH, True)
    assert spike["product_id"] is not None
    assert spike["evidence"]["recent_apy_pct"] == pytest.approx(10.0, abs=0.1)
    assert spike["evidence"]["multiple"] == pytest.approx(8.0, rel=0.02)
    # It still holds (the recent level is the window's median): no second alert.
    await poll(settings)
    assert reevaluate(settings, COMETH) == []
    assert len(alerts(settings)) == 1
    # Back to its level: cleared, kept.
    beefy.apy[COMETH] = 0.10
    await poll(settings)
    [cleared] = alerts(settings)
    assert cleared["open"] is False
    assert reevaluate(settings, COMETH) == []
    # It comes back: a new alert, the old one kept.
    beefy.apy[COMETH] = 0.80
    await poll(settings)
    assert [(a["kind"], a["open"]) for a in alerts(settings)] == [
        ("apy_spike", False),
        ("apy_spike", True),
    ]


async def test_an_apy_stuck_at_zero_while_the_other_pool_moves_opens_one_alert(
    beefy: Beefy, settings: Settings
) -> None:
    beefy.wiggle = False
    beefy.apy[BIFI] = 0.0
    for i in range(3):
        beefy.apy[COMETH] = 0.10 + i / 100
        await poll(settings)
    assert alerts(settings) == []  # 3 polls of 4
    beefy.apy[COMETH] = 0.14
    await poll(settings)
    [stuck] = alerts(settings)
    assert (stuck["kind"], stuck["pool_id"], stuck["open"]) == ("apy_stuck", BIFI, True)
    assert stuck["evidence"]["zero"] is True
    assert stuck["evidence"]["polls"] == 4
    assert stuck["evidence"]["other_pools_changed"] == 1
    beefy.apy[COMETH] = 0.15
    await poll(settings)  # still stuck: the same alert
    assert reevaluate(settings, BIFI) == []
    assert len(alerts(settings)) == 1
    beefy.apy[BIFI] = 0.03
    await poll(settings)
    [cleared] = alerts(settings)
    assert cleared["open"] is False


async def test_a_pool_alone_in_an_unchanged_source_is_not_stuck(
    beefy: Beefy, settings: Settings
) -> None:
    """Every pool the same for 4 polls: a quiet source, not one stuck pool."""
    beefy.wiggle = False
    for _ in range(5):
        await poll(settings)
    assert alerts(settings, "kind = 'apy_stuck'") == []


async def test_a_tvl_crash_opens_one_critical_alert_cleared_when_tvl_recovers(
    beefy: Beefy, settings: Settings
) -> None:
    for _ in range(2):
        await poll(settings)
    beefy.tvl[COMETH] = 800_000.0  # -60 % within the day
    await poll(settings)
    [crash] = alerts(settings)
    assert (crash["kind"], crash["pool_id"], crash["open"]) == ("tvl_drawdown", COMETH, True)
    assert crash["evidence"]["peak_tvl_usd"] == 2_000_000.0
    assert crash["evidence"]["drop_pct"] == pytest.approx(60.0)
    [(severity,)] = query(settings.data_dir, "SELECT severity FROM alerts")
    assert severity == "critical"
    await poll(settings)  # still down from the day's peak
    assert reevaluate(settings, COMETH) == []
    assert len(alerts(settings)) == 1
    beefy.tvl[COMETH] = 1_900_000.0
    await poll(settings)
    [cleared] = alerts(settings)
    assert cleared["open"] is False


async def test_a_source_without_a_successful_fetch_goes_stale_once_even_without_batches(
    beefy: Beefy, settings: Settings
) -> None:
    """The daemon polls once, then nothing comes: the sink's own timer finds it stale."""
    fast = settings.model_copy(
        update={
            "alerts": settings.alerts.model_copy(
                update={"stale_after_h": 1 / 3600, "stale_check_s": 0.2}
            )
        }
    )
    stop = asyncio.Event()
    daemon = asyncio.create_task(run_pipeline(fast, once=False, stop=stop, handle_signals=False))
    try:
        deadline = time.monotonic() + 20
        while not (store_created(fast.data_dir) and alerts(fast, "kind = 'stale_source'")):
            assert time.monotonic() < deadline
            assert not daemon.done()
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # several more passes: still one alert
    finally:
        stop.set()
        await asyncio.wait_for(daemon, 15)
    [stale] = alerts(fast)
    assert (stale["kind"], stale["source"], stale["pool_id"], stale["open"]) == (
        "stale_source",
        "beefy",
        None,
        True,
    )
    assert stale["evidence"]["last_ok_fetch"] is not None
    # A failed fetch keeps it open; a successful one clears it.
    beefy.failing = True
    failing = fast.model_copy(
        update={"sources": {**fast.sources, "beefy": {**fast.sources["beefy"], "attempts": 1}}}
    )
    await poll(failing)
    assert [a["open"] for a in alerts(fast)] == [True]
    beefy.failing = False
    # Within a second of its fetch a slow poll would find the source stale again: the
    # clearing poll allows the default six hours.
    await poll(settings)
    assert [a["open"] for a in alerts(fast)] == [False]


def _failures(step: str) -> float:
    value = prometheus_client.REGISTRY.get_sample_value(
        "yieldstream_alert_failures_total", {"step": step}
    )
    return value or 0.0


async def test_an_alert_evaluation_error_is_logged_and_counted_and_the_batch_is_stored(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object) -> None:
        raise RuntimeError("injected alert failure")

    monkeypatch.setattr(sinks.alerts, "evaluate", boom)
    before = _failures("evaluate")
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        stats = await run_pipeline(settings, once=True, handle_signals=False)
    assert stats.stored == 2
    assert query(settings.data_dir, "SELECT count(*) FROM observations") == [(2,)]
    assert query(settings.data_dir, "SELECT count(*) FROM alerts") == [(0,)]
    failed = [e for e in logs if e["event"] == "alert_evaluation_failed"]
    assert failed
    assert failed[0]["error"] == "RuntimeError: injected alert failure"
    assert not [e for e in logs if e["event"] == "stage_failed"]
    assert _failures("evaluate") >= before + len(failed)


# --- first-party vs DefiLlama -------------------------------------------------------


def lido_point(apr: float, at: float) -> Reply:
    return Reply(body=orjson.dumps({"data": {"timeUnix": int(at), "apr": apr}}))


async def test_a_first_party_apy_far_from_defillamas_opens_a_disagreement(
    loopback: StartServer, make_settings: Callable[..., Settings]
) -> None:
    """Lido's own stETH APR against DefiLlama's Lido STETH pool (2.68 %)."""
    point = {"apr": 5.0, "at": time.time() - 60}
    routes = recorded_routes()
    routes["/v1/protocol/steth/apr/last"] = lambda: lido_point(point["apr"], point["at"])
    url, _ = loopback(routes)
    settings = make_settings(url, enabled=("defillama-yields", "lido"), transform_processes=0)
    await run_pipeline(settings, once=True, handle_signals=False)
    [gap] = alerts(settings, "kind = 'disagreement'")
    assert (gap["source"], gap["product_id"], gap["open"]) == (
        "lido",
        "lido:ethereum:steth",
        True,
    )
    assert gap["evidence"]["reference"] == "defillama-yields"
    assert gap["evidence"]["reference_apy_pct"] == pytest.approx(2.68)
    assert gap["evidence"]["gap_pp"] > 2
    await run_pipeline(settings, once=True, handle_signals=False)  # the same figures again
    assert len(alerts(settings, "kind = 'disagreement'")) == 1
    point.update(apr=2.6, at=time.time() - 30)
    await run_pipeline(settings, once=True, handle_signals=False)
    [cleared] = alerts(settings, "kind = 'disagreement'")
    assert cleared["open"] is False
    opened = query(
        settings.data_dir, "SELECT opened_at, cleared_at FROM alerts WHERE kind = 'disagreement'"
    )
    assert opened[0][0] <= opened[0][1] <= datetime.now(UTC)
