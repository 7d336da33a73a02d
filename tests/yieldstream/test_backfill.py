"""``yieldstream backfill``: history through the daemon's parts, resumable, idempotent.

A loopback server serves the recorded real responses (``/pools``, ``/protocols``,
``/chart/{pool}``, ``/protocol/{slug}``, Lido ``/apr/sma``) and, for scale, generated
histories of the same shape. The store is the real DuckLake engine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
import structlog
from rich.console import Console

from sinks.lake import Store
from tests.conftest import query, recorded, store_created
from tests.sinks import daemon_env, yieldstream_exe
from transforms import Context, Result
from transforms import defillama_yields as pools_transform
from yieldstream import logs
from yieldstream.backfill import (
    BackfillSummary,
    BarReporter,
    ListingFailed,
    LogReporter,
    NoHistory,
    backfill,
)
from yieldstream.contracts import RawRecord
from yieldstream.errors import ConfigError
from yieldstream.loopback import Reply, Route, recorded_routes
from yieldstream.registry import sources
from yieldstream.replay import replay
from yieldstream.settings import Settings

POOLS = "defillama-yields"
PROTOCOLS = "defillama-protocols"
StartServer = Callable[[Mapping[str, Route] | None], tuple[str, dict[str, int]]]
MakeSettings = Callable[..., Settings]
CHART = recorded("defillama-yields", "chart-d829b642-from-cn-doc.json")
CHART_POINTS = 8
FIRST_DAY = datetime(2023, 1, 1, 23, 1, 7, tzinfo=UTC)


def recorded_pool_ids() -> list[str]:
    body = recorded_routes()["/pools"]
    assert isinstance(body, Reply)
    return [item["pool"] for item in orjson.loads(body.body)["data"]]


def chart_routes(pool_ids: list[str], body: bytes = CHART) -> dict[str, Route]:
    """The recorded routes, plus the recorded chart at every pool's /chart path."""
    return {**recorded_routes(), **{f"/chart/{p}": Reply(body=body) for p in pool_ids}}


def generated(pools: int, points: int) -> dict[str, Route]:
    """``pools`` pools shaped like the recorded ones, each with ``points`` daily points."""
    template = orjson.loads(recorded("defillama-yields", "pools-stablecoin_quant.json"))["data"][0]
    items = [
        {**template, "pool": f"00000000-0000-4000-8000-{i:012d}", "symbol": f"TKN{i}"}
        for i in range(pools)
    ]
    routes: dict[str, Route] = {
        **recorded_routes(),
        "/pools": Reply(body=orjson.dumps({"status": "success", "data": items})),
    }
    for i, item in enumerate(items):
        data = [
            {
                "timestamp": (FIRST_DAY + timedelta(days=d, milliseconds=i))
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
                "tvlUsd": 1000 + i,
                "apy": round(1 + i / 1000 + d / 10000, 5),
                "apyBase": 1.0,
                "apyReward": None,
                "il7d": None,
                "apyBase7d": None,
            }
            for d in range(points)
        ]
        routes[f"/chart/{item['pool']}"] = Reply(
            body=orjson.dumps({"status": "success", "data": data})
        )
    return routes


def history_keys(data_dir: Path) -> tuple[int, int]:
    """(rows, distinct keys) of history: every point before the current hour's snapshot."""
    ((rows, keys),) = query(
        data_dir,
        f"""
        SELECT count(*), count(DISTINCT (pool_id, observed_at)) FROM observations
        WHERE source = '{POOLS}' AND observed_at < date_trunc('day', now())
        """,
    )
    return int(rows), int(keys)


def run(settings: Settings, name: str = POOLS, **kwargs: Any) -> BackfillSummary:
    return asyncio.run(backfill(settings, name, reporter=LogReporter(every_s=3600), **kwargs))


def test_recorded_chart_history_goes_through_the_daemons_parts(
    loopback: StartServer, make_settings: MakeSettings
) -> None:
    pool_ids = recorded_pool_ids()
    url, hits = loopback(chart_routes(pool_ids))
    settings = make_settings(url)
    summary = run(settings)
    assert (summary.entities, summary.done, summary.failed) == (9, 9, 0)
    assert summary.stored == 9 * CHART_POINTS
    assert all(hits[f"/chart/{p}"] == 1 for p in pool_ids)
    # The listing snapshot is stored too, as a daemon fetch would store it.
    assert hits["/pools"] == 1
    rows = query(
        settings.data_dir,
        f"""
        SELECT o.protocol, o.chain, o.symbol, o.strategy, o.apy_pct, o.tvl_usd
        FROM observations AS o WHERE pool_id = '{pool_ids[0]}' ORDER BY observed_at
        """,
    )
    assert len(rows) == CHART_POINTS + 1  # 8 days, then the current snapshot
    first_point = orjson.loads(CHART)["data"][0]
    assert rows[0][4:] == (first_point["apy"], first_point["tvlUsd"])
    assert len({r[:4] for r in rows}) == 1  # same protocol, chain, symbol, strategy
    checkpoints = query(
        settings.data_dir,
        "SELECT status, count(*), sum(points) FROM backfill_checkpoints GROUP BY status",
    )
    assert checkpoints == [("done", 9, 9 * CHART_POINTS)]
    # The raw archive holds every point, as kind 'history'.
    ((archived,),) = query(
        settings.data_dir, "SELECT count(*) FROM raw_records WHERE kind = 'history'"
    )
    assert archived == 9 * CHART_POINTS


def test_running_it_again_skips_what_is_done_and_adds_nothing(
    loopback: StartServer, make_settings: MakeSettings
) -> None:
    url, hits = loopback(generated(40, 30))
    settings = make_settings(url)
    first = run(settings)
    assert (first.done, first.stored) == (40, 40 * 30)
    before = history_keys(settings.data_dir)

    again = run(settings)
    assert (again.done, again.skipped, again.stored) == (0, 40, 0)
    assert hits["/chart/00000000-0000-4000-8000-000000000000"] == 1  # not fetched again
    assert history_keys(settings.data_dir) == before == (40 * 30, 40 * 30)

    history = "SELECT count(*), count(DISTINCT batch_id) FROM raw_records WHERE kind = 'history'"
    archived = query(settings.data_dir, history)
    refetched = run(settings, refetch=True)  # fetch everything again: still 0 new rows
    assert (refetched.done, refetched.stored, refetched.duplicates) == (40, 0, 40 * 30)
    assert history_keys(settings.data_dir) == before
    # ... and no history record archived twice: the same items, word for word (the
    # listing is a new snapshot, archived as such).
    assert query(settings.data_dir, history) == archived
    # An item the upstream changed since is archived again (and its figure kept first-stored).
    changed = generated(40, 30)
    chart = "/chart/00000000-0000-4000-8000-000000000000"
    reply = changed[chart]
    assert isinstance(reply, Reply)
    changed[chart] = Reply(body=reply.body.replace(b'"tvlUsd":', b'"tvlUsd":1', 1))
    url, _ = loopback(changed)
    again_settings = make_settings(url)
    assert again_settings.data_dir == settings.data_dir
    run(again_settings, refetch=True)
    ((count, _),) = query(settings.data_dir, history)
    assert count == archived[0][0] + 1


def test_a_window_fetches_its_days_and_a_wider_window_fetches_again(
    loopback: StartServer, make_settings: MakeSettings
) -> None:
    url, _ = loopback(generated(5, 100))
    settings = make_settings(url)
    since, until = FIRST_DAY.replace(hour=0) + timedelta(days=10), FIRST_DAY + timedelta(days=20)
    summary = run(settings, since=since, until=until.replace(hour=0))
    assert summary.stored == 5 * 10
    ((lo, hi),) = query(
        settings.data_dir,
        f"SELECT min(observed_at), max(observed_at) FROM observations "
        f"WHERE source = '{POOLS}' AND observed_at < '2024-01-01'",
    )
    assert lo.date() == since.date()
    assert hi.date() == (until - timedelta(days=1)).date()
    # The same window is complete; all of history is not.
    assert run(settings, since=since, until=until.replace(hour=0)).skipped == 5
    wider = run(settings)
    assert (wider.done, wider.stored) == (5, 5 * 90)
    assert history_keys(settings.data_dir) == (500, 500)


def test_a_pool_whose_history_fails_once_is_retried_and_stored(
    loopback: StartServer, make_settings: MakeSettings
) -> None:
    pool_ids = recorded_pool_ids()
    routes = chart_routes(pool_ids)
    answers = iter([Reply(500, b'{"error":"internal"}'), Reply(body=CHART)])
    routes[f"/chart/{pool_ids[0]}"] = lambda: next(answers)
    url, hits = loopback(routes)
    summary = run(make_settings(url))
    assert hits[f"/chart/{pool_ids[0]}"] == 2
    assert (summary.done, summary.failed, summary.stored) == (9, 0, 9 * CHART_POINTS)


def test_a_pool_that_keeps_failing_is_recorded_and_the_run_goes_on(
    loopback: StartServer, make_settings: MakeSettings
) -> None:
    pool_ids = recorded_pool_ids()
    routes = chart_routes(pool_ids)
    routes[f"/chart/{pool_ids[0]}"] = Reply(503, b"busy", headers=(("Retry-After", "0"),))
    routes[f"/chart/{pool_ids[1]}"] = Reply(body=CHART[: len(CHART) // 2])  # truncated
    url, hits = loopback(routes)
    settings = make_settings(url)
    summary = run(settings)
    assert (summary.done, summary.failed) == (7, 2)
    assert hits[f"/chart/{pool_ids[0]}"] == 3  # every attempt (attempts = 3), then failed
    reasons = dict(summary.failures)
    assert "HTTP 503" in reasons[pool_ids[0]]
    assert "malformed or truncated JSON" in reasons[pool_ids[1]]
    stored = query(
        settings.data_dir,
        "SELECT entity, reason FROM backfill_checkpoints WHERE status = 'failed' ORDER BY 1",
    )
    assert sorted(e for e, _ in stored) == sorted(pool_ids[:2])
    # The unusable body is kept, with the reason, as a fetch rejection.
    ((stage, native_id),) = query(settings.data_dir, "SELECT stage, native_id FROM rejections")
    assert (stage, native_id) == ("fetch", pool_ids[1])
    assert "2 failed" in summary.line()
    assert "run it again to retry" in summary.line()

    # Upstream recovered: the next run fetches only the failed pools.
    fixed, fixed_hits = loopback(chart_routes(pool_ids))
    again = run(make_settings(fixed))
    assert (again.done, again.skipped, again.failed) == (2, 7, 0)
    assert sum(v for k, v in fixed_hits.items() if k.startswith("/chart/")) == 2
    assert history_keys(settings.data_dir)[0] == 9 * CHART_POINTS


def test_pools_not_in_the_listing_fail_with_the_reason(
    loopback: StartServer, make_settings: MakeSettings
) -> None:
    pool_ids = recorded_pool_ids()
    url, hits = loopback(chart_routes(pool_ids))
    unknown = [f"no-such-pool-{i}" for i in range(10)]  # more than requests in flight
    summary = run(make_settings(url), only=[pool_ids[2], *unknown])
    assert (summary.entities, summary.done, summary.failed) == (11, 1, 10)
    assert dict(summary.failures) == dict.fromkeys(unknown, "not in the /pools listing")
    assert sum(v for k, v in hits.items() if k.startswith("/chart/")) == 1


def test_no_listing_no_backfill_in_one_line(
    loopback: StartServer, make_settings: MakeSettings
) -> None:
    routes = chart_routes(recorded_pool_ids())
    routes["/pools"] = Reply(200, b"<html>Cloudflare: down</html>", content_type="text/html")
    url, hits = loopback(routes)
    with pytest.raises(ListingFailed) as caught:
        run(make_settings(url))
    assert str(caught.value).startswith(
        "cannot list what to backfill: defillama-yields snapshot failed: expected JSON from"
    )
    assert not [k for k in hits if k.startswith("/chart/")]


def test_protocol_history_from_the_recorded_responses(
    loopback: StartServer, make_settings: MakeSettings
) -> None:
    """Recorded /protocol/{slug} responses of protocols a /protocols listing names."""
    rows = orjson.loads(recorded(PROTOCOLS, "protocols-rows-onchain-analytics-first6.json"))
    extra = [
        {**rows[0], "slug": slug, "name": slug, "category": category, "chain": chain}
        for slug, category, chain in (
            ("uniswap", "Dexs", "Multi-Chain"),
            ("raydium", "Dexs", "Solana"),
            ("marinade-liquid-staking", "Liquid Staking", "Solana"),
        )
    ]
    uniswap = orjson.loads(recorded("defillama-tvl", "protocol-uniswap.onchain-analytics.json"))
    raydium = orjson.loads(recorded("defillama-tvl", "protocol-raydium.onchain-analytics.json"))
    routes = {
        **recorded_routes(),
        "/protocols": Reply(body=orjson.dumps(rows + extra)),
        # The recordings wrap the real response in an envelope {chain, raw}.
        "/protocol/uniswap": Reply(body=orjson.dumps(uniswap["raw"])),
        "/protocol/raydium": Reply(body=orjson.dumps(raydium["raw"])),
        "/protocol/marinade-liquid-staking": Reply(
            body=recorded("defillama-tvl", "protocol-marinade-liquid-staking.bma-d.json")
        ),
    }
    url, _ = loopback(routes)
    settings = make_settings(url)
    summary = run(
        settings, PROTOCOLS, only=["uniswap", "raydium", "marinade-liquid-staking", "lido"]
    )
    assert (summary.done, summary.failed) == (3, 1)  # lido's /protocol is not recorded
    assert "HTTP 404" in dict(summary.failures)["lido"]
    series = dict(
        query(
            settings.data_dir,
            f"""
            SELECT pool_id, count(*) FROM observations
            WHERE source = '{PROTOCOLS}' AND observed_at < date_trunc('day', now())
            GROUP BY pool_id
            """,
        )
    )
    assert series["marinade-liquid-staking"] == 1571
    assert series["uniswap"] == series["raydium"] == 3
    assert series["raydium:Solana"] == 3
    assert not [s for s in series if ":" in s and "staking" in s.split(":")[1].lower()]
    assert len([s for s in series if s.startswith("uniswap:")]) == 48
    # Per chain or in total: the same TVL, never both added up.
    check = query(
        settings.data_dir,
        f"""
        SELECT observed_at,
               sum(tvl_usd) FILTER (WHERE pool_id = 'uniswap'),
               sum(tvl_usd) FILTER (WHERE pool_id LIKE 'uniswap:%')
        FROM observations WHERE source = '{PROTOCOLS}' AND protocol = 'uniswap'
          AND observed_at < date_trunc('day', now())
        GROUP BY observed_at
        """,
    )
    assert len(check) == 3
    for _, total, parts in check:
        assert parts == pytest.approx(total, rel=1e-6)


def test_lido_history(loopback: StartServer, make_settings: MakeSettings) -> None:
    url, hits = loopback(None)
    settings = make_settings(url)
    summary = run(settings, "lido")
    assert (summary.entities, summary.done, summary.stored) == (1, 1, 8)
    assert hits["/v1/protocol/steth/apr/sma"] == 1
    assert run(settings, "lido").skipped == 1


def test_a_source_without_a_history_endpoint_says_so_in_one_line(
    make_settings: MakeSettings,
) -> None:
    known = {**sources(), "lido": dataclasses.replace(sources()["lido"], history=None)}
    with pytest.raises(NoHistory) as caught:
        asyncio.run(backfill(make_settings("http://127.0.0.1:9"), "lido", sources=known))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("lido has no history endpoint")
    assert "defillama-yields" in message
    with pytest.raises(ConfigError, match="unknown source 'nope'"):
        asyncio.run(backfill(make_settings("http://127.0.0.1:9"), "nope"))


def test_progress_is_logged_when_not_on_a_terminal(
    loopback: StartServer, make_settings: MakeSettings
) -> None:
    url, _ = loopback(generated(30, 10))
    settings = make_settings(url, batch_size=50)
    with structlog.testing.capture_logs() as logs:
        asyncio.run(backfill(settings, POOLS, reporter=LogReporter(every_s=0)))
    progress = [e for e in logs if e["event"] == "backfill_progress"]
    assert len(progress) >= 2
    last = progress[-1]
    assert (last["entities"], last["done"], last["failed"], last["rows"]) == (30, 30, 0, 300)
    assert last["eta_s"] == 0
    assert {"rows_per_s", "skipped", "source"} <= last.keys()


def test_progress_is_a_live_bar_on_a_terminal(
    loopback: StartServer, make_settings: MakeSettings
) -> None:
    routes = generated(12, 10)
    routes["/chart/00000000-0000-4000-8000-000000000003"] = Reply(404, b"{}")
    url, _ = loopback(routes)
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160, color_system=None)
    before = structlog.get_config()
    logs.configure("console", "info")  # what a terminal gets
    try:
        asyncio.run(backfill(make_settings(url), POOLS, reporter=BarReporter(console)))
    finally:
        structlog.configure(**before)
    lines = screen.getvalue().replace("\r", "\n").splitlines()
    final = lines[-2]  # the bar's last frame
    assert final.startswith("\x1b[2Kdefillama-yields ")  # (the escape clears the line)
    assert "12/12 entities  110 rows" in final
    assert "1 failed  ETA 0:00:00" in final
    # A warning while the bar is drawn gets a line of its own above it.
    (warning,) = [line for line in lines if "backfill_entity_failed" in line]
    assert warning.removeprefix("\x1b[2K").startswith("20")  # its timestamp starts the line
    assert "HTTP 404" in warning


def doubled(record: RawRecord, ctx: Context) -> Result:
    """A deliberate transform change: history APYs twice what they were."""
    result = pools_transform.transform(record, ctx)
    if isinstance(result, list) and record.kind == "history":
        return [
            msgspec.structs.replace(o, apy_pct=None if o.apy_pct is None else o.apy_pct * 2)
            for o in result
        ]
    return result


def test_replay_applies_a_transform_change_to_backfilled_history(
    loopback: StartServer, make_settings: MakeSettings
) -> None:
    url, _ = loopback(generated(20, 50))
    settings = make_settings(url)
    run(settings)
    sql = f"SELECT sum(apy_pct) FROM observations WHERE source = '{POOLS}'"
    (before,) = query(settings.data_dir, sql)[0]
    store = Store(settings.data_dir)
    # The changed transform alone (no columnar path that would bypass it).
    changed = {
        **sources(),
        POOLS: dataclasses.replace(sources()[POOLS], transform=doubled, columns=None),
    }

    dry = replay(store, only=[POOLS], dry_run=True, sources=changed)
    assert dry.changed == 20 * 50
    summary = replay(store, only=[POOLS], sources=changed)
    assert (summary.changed, summary.added, summary.removed) == (20 * 50, 0, 0)
    assert history_keys(settings.data_dir) == (1000, 1000)  # no duplicates
    (after,) = query(settings.data_dir, sql)[0]
    ((history_apy,),) = query(
        settings.data_dir,
        f"SELECT sum(apy_pct) FROM observations WHERE source = '{POOLS}' "
        "AND observed_at < date_trunc('day', now())",
    )
    snapshot_apy = before - history_apy / 2
    assert after == pytest.approx(snapshot_apy + history_apy)

    back = replay(store, only=[POOLS])  # the code as it is: the original values again
    assert back.changed == 20 * 50
    assert query(settings.data_dir, sql)[0][0] == pytest.approx(before)
    assert replay(store, only=[POOLS]).changed == 0


# --- the command line, killed and resumed --------------------------------------------


def cli_env(url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The daemons' test environment, with fast retries, for ``yieldstream backfill``."""
    env = daemon_env(url, data_dir)
    for name in (POOLS, PROTOCOLS, "lido"):
        env[f"YIELDSTREAM_SOURCES__{name.upper().replace('-', '_')}__WAIT_INITIAL_S"] = "0.01"
    return {**env, **extra}


def done_checkpoints(data_dir: Path) -> int:
    if not store_created(data_dir):
        return 0
    ((n,),) = query(data_dir, "SELECT count(*) FROM backfill_checkpoints")
    return int(n)


@pytest.fixture
def slow_history(loopback: StartServer) -> str:
    url, _ = loopback(generated(POOLS_KILLED, POINTS_KILLED))
    return url


POOLS_KILLED, POINTS_KILLED = 300, 200


@pytest.mark.slow
def test_backfill_killed_and_run_again_ends_with_exactly_the_expected_rows(
    slow_history: str, tmp_path: Path, report: Callable[[str], None]
) -> None:
    data_dir = tmp_path / "data"
    # 30 history requests a second: the run takes ~10 s, long enough to kill it twice.
    env = cli_env(
        slow_history,
        data_dir,
        YIELDSTREAM_SOURCES__DEFILLAMA_YIELDS__HISTORY_RATE_PER_S="30",
        YIELDSTREAM_BATCH_SIZE="1000",
    )
    command = [yieldstream_exe(), "backfill", POOLS, "--since", "2023-01-01"]
    seen = []
    for kill_at in (40, 160):
        log = tmp_path / f"killed-at-{kill_at}.log"
        with log.open("w") as stderr:
            process = subprocess.Popen(command, env=env, stderr=stderr)
        deadline = time.monotonic() + 60
        while done_checkpoints(data_dir) < kill_at and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-2000:]
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        seen.append(done_checkpoints(data_dir))
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    summary = finished.stderr.strip().splitlines()[-1]
    rows, keys = history_keys(data_dir)
    report(
        f"backfill killed after {seen[0]} and {seen[1]} checkpoints, then resumed: "
        f"{rows} history rows, {keys} distinct keys, expected {POOLS_KILLED * POINTS_KILLED}; "
        f"{summary}"
    )
    assert 0 < seen[0] < seen[1] < POOLS_KILLED  # killed mid-way, twice
    assert rows == keys == POOLS_KILLED * POINTS_KILLED
    assert f"{POOLS_KILLED - seen[1]} entities done" in summary
    assert f"{seen[1]} skipped" in summary
    # Once more: everything is complete, nothing is fetched, nothing added.
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0
    assert f"0 entities done, {POOLS_KILLED} skipped" in again.stderr
    assert history_keys(data_dir) == (rows, keys)


def test_the_command_prints_a_summary_and_its_failures(
    loopback: StartServer, tmp_path: Path
) -> None:
    pool_ids = recorded_pool_ids()
    routes = chart_routes(pool_ids)
    routes[f"/chart/{pool_ids[0]}"] = Reply(404, b'{"error":"no such pool"}')
    url, _ = loopback(routes)
    env = cli_env(url, tmp_path / "data")
    done = subprocess.run(
        [yieldstream_exe(), "backfill", POOLS, "--only", ",".join(pool_ids[:3])],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1  # an entity failed: scripts notice
    lines = done.stderr.strip().splitlines()
    assert lines[-2].startswith(f"backfill {POOLS}: 2 entities done, 0 skipped")
    assert lines[-1].startswith(f"  failed {pool_ids[0]}: HTTP 404")
    # Progress went to the log as JSON lines (not a terminal).
    assert any('"event":"backfill_progress"' in line for line in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "unknown source 'nope'; known sources: aave-v3, "),
        ([POOLS, "--since", "2024-01-01", "--until", "2023-01-01"], "is not before --until"),
        ([POOLS, "--since", "last year"], "Invalid value for '--since'"),
    ],
)
def test_bad_arguments_are_one_line_errors(args: list[str], message: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [yieldstream_exe(), "backfill", *args],
        env=cli_env("http://127.0.0.1:9", tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
