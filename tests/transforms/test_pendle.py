"""Pendle V2: LP and PT products per market, fractions, expiry, errors, history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ingest import pendle as collector
from ingest._history import Window, fetch_history, history_records
from ingest._http import fetch_json, parse_json
from tests.conftest import FIXTURES
from tests.transforms import records_of, rejection
from transforms import Context, apply, pendle
from yieldstream.contracts import Observation, RawRecord, Rejection, Strategy, Venue
from yieldstream.errors import BadResponse, UnsafeId

SOURCE = "pendle"
MARKETS = "56-markets-active-1market-20260522.json"
HISTORY_FILE = "history-56-0x1017e73ce9c219164ce841a980136eb023c55387-1h-sUSDat-TRUNCATED.json"
MARKET = "0x1017e73ce9c219164ce841a980136eb023c55387"
ENTITY = f"56-{MARKET}"
BASE = "https://api-v2.pendle.finance"
AFTER = datetime(2026, 5, 22, 10, tzinfo=UTC)  # a fetch just after the recorded item
LATER = datetime(2026, 6, 22, tzinfo=UTC)  # after the recorded history
ENDPOINT = collector.ENDPOINTS[0]


def item() -> dict[str, Any]:
    body = json.loads((FIXTURES / SOURCE / MARKETS).read_bytes())
    market: dict[str, Any] = body["markets"][0]
    return market


def record(market: dict[str, Any], *, fetched_at: datetime = AFTER) -> RawRecord:
    [rec] = ENDPOINT.records(
        {"markets": [market]},
        source=SOURCE,
        fetched_at=fetched_at,
        run_id="test",
        path=ENDPOINT.concrete("56"),
    )
    return rec


def products(rec: RawRecord, ctx: Context | None = None) -> list[Observation]:
    result = apply(pendle.transform, rec, ctx or Context())
    assert not isinstance(result, Rejection), result.reason
    return result


def test_susdat_lp_and_pt_pinned() -> None:
    # The recorded BSC sUSDat market (pendle app, 2026-05-22): aggregatedApy 0.1021 is
    # the LP APY 0.1021 x 100 = 10.21 %, of which pendleApy 0.0019 = 0.19 % is PENDLE,
    # so 10.21 - 0.19 = 10.02 % base; impliedApy 0.1498 = 14.98 % fixed for PT.
    # Published as APYs: no compounding (a 365x or 100x slip fails here).
    [rec] = records_of(SOURCE, MARKETS, fetched_at=AFTER)
    assert rec.native_id == ENTITY
    lp, pt = products(rec)
    assert lp.apy_pct == pytest.approx(10.21)
    assert lp.apy_reward_pct == pytest.approx(0.19)
    assert lp.apy_base_pct == pytest.approx(10.02)
    assert lp.tvl_usd == 2961210
    assert pt.apy_pct == pytest.approx(14.98)
    assert pt.apy_base_pct == pytest.approx(14.98)
    assert pt.apy_reward_pct == 0.0
    assert pt.tvl_usd == 2961210
    assert lp.observed_at == pt.observed_at == datetime(2026, 5, 22, 9, 25, 10, tzinfo=UTC)
    # DefiLlama's adaptor: symbol formatSymbol(name), poolMeta with the maturity.
    assert (lp.strategy, lp.venue, pt.strategy, pt.venue) == (
        Strategy.FARMING,
        Venue.DEFI,
        Strategy.LENDING,
        Venue.DEFI,
    )
    assert (lp.chain, lp.symbol, lp.protocol) == ("BSC", "sUSDat", "pendle")
    assert lp.pool_meta == "For LP | Maturity 27AUG2026"
    assert pt.pool_meta == "For buying PT-sUSDat-27AUG2026"
    assert lp.product_id == "pendle:bsc:susdat:for-lp-|-maturity-27aug2026"
    assert pt.product_id == "pendle:bsc:susdat:for-buying-pt-susdat-27aug2026"
    assert (lp.pool_id, pt.pool_id) == (ENTITY, f"{ENTITY}:pt")
    assert lp.reward_tokens == ["0xb3ed0a426155b79b898849803e3b36552f7ed507"]
    assert lp.underlying_tokens == [
        "0x23f9a497a5d4d54eaf5e03d94774f17dc1219745",
        "0x68930887e1318ef30653a4b7942ab07544ebed4d",
    ]
    assert pt.underlying_tokens == ["0x9cd57d3685e6868cacaa8bdcaaf52cbdebf4fa25"]
    assert products(rec) == [lp, pt]  # idempotent


def test_expiry_text_is_nodes_en_gb_short_date() -> None:
    assert pendle.expiry_text(datetime(2026, 8, 27, tzinfo=UTC)) == "27AUG2026"
    assert pendle.expiry_text(datetime(2025, 9, 5, tzinfo=UTC)) == "05SEPT2025"
    assert pendle.symbol_of("PT stETH/ETH_x") == "PTstETH-ETH-x"


def test_an_expired_market_is_rejected() -> None:
    market = item() | {"timestamp": "2026-08-27T00:00:01Z"}
    found = rejection(pendle.transform, record(market, fetched_at=LATER.replace(month=9)))
    assert "expired at 2026-08-27T00:00:00+00:00" in found.reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"timestamp": "2026-05-22T12:00:00Z"}, "after its fetch"),
        ({"timestamp": "yesterday"}, "unreadable timestamp"),
        ({"expiry": "soon"}, "unreadable expiry"),
        ({"details": {"aggregatedApy": "0.1", "liquidity": 1.0}}, "undecodable"),
        ({"details": {"aggregatedApy": 1021.0, "liquidity": 1.0}}, "not an APY fraction"),
        ({"details": {"impliedApy": -2.0, "liquidity": 1.0}}, "not an APY fraction"),
        ({"details": {"liquidity": -5.0}}, "negative liquidity"),
        ({"details": {}}, "neither an APY nor a TVL"),
        ({"pt": None}, "undecodable"),
    ],
)
def test_bad_items_are_rejected(change: dict[str, Any], reason: str) -> None:
    market = item() | change
    found = rejection(pendle.transform, record(market))
    assert reason in found.reason


def test_a_missing_field_is_rejected() -> None:
    market = item()
    del market["expiry"]
    assert "expiry" in rejection(pendle.transform, record(market)).reason


def test_an_unknown_chain_is_rejected_with_the_reason() -> None:
    [rec] = ENDPOINT.records(
        {"markets": [item()]},
        source=SOURCE,
        fetched_at=AFTER,
        run_id="t",
        path=ENDPOINT.concrete("424242"),
    )
    assert "424242" in rejection(pendle.transform, rec).reason


def test_a_side_without_figures_is_left_out() -> None:
    market = item() | {"details": {"impliedApy": 0.05}}
    [pt] = products(record(market))
    assert pt.strategy is Strategy.LENDING
    assert pt.apy_pct == pytest.approx(5.0)


# --- fetching -------------------------------------------------------------------


def cfg(**kw: Any) -> collector.Config:
    return collector.Config(attempts=2, wait_initial_s=0, wait_max_s=0, **kw)


async def test_rate_limit_then_success_is_retried() -> None:
    answers = [
        httpx.Response(429, json={"statusCode": 429, "message": "ThrottlerException"}),
        httpx.Response(200, content=(FIXTURES / SOURCE / MARKETS).read_bytes()),
    ]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        records = [r async for r in collector.collect(client, cfg(chains=("56",)), "run")]
    assert [r.url.path for r in seen] == ["/core/v1/56/markets/active"] * 2
    assert [r.native_id for r in records] == [ENTITY]
    assert records[0].endpoint == "/core/v1/56/markets/active"


async def test_a_status_200_throttle_body_is_retriable_and_an_error_body_fatal() -> None:
    answers = [
        httpx.Response(200, json={"statusCode": 429, "message": "Too Many Requests"}),
        httpx.Response(200, json={"markets": []}),
    ]
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: answers.pop(0))) as client:
        fetched = await fetch_json(
            client, f"{BASE}/core/v1/1/markets/active", cfg(), request=ENDPOINT.request
        )
        assert fetched.body == {"markets": []}
        bad = httpx.MockTransport(
            lambda r: httpx.Response(200, json={"statusCode": 400, "message": "bad chainId"})
        )
    async with httpx.AsyncClient(transport=bad) as client:
        with pytest.raises(BadResponse, match="bad chainId"):
            await fetch_json(
                client, f"{BASE}/core/v1/x/markets/active", cfg(), request=ENDPOINT.request
            )


async def test_each_chain_is_requested() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return httpx.Response(200, json={"markets": []})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        assert [r async for r in collector.collect(client, cfg(), "run")] == []
    assert paths == [f"/core/v1/{c}/markets/active" for c in collector.Config().chains]


# --- history --------------------------------------------------------------------


def history(fetched_at: datetime = LATER) -> list[RawRecord]:
    path = FIXTURES / SOURCE / HISTORY_FILE
    body, lenient = parse_json(path.read_bytes(), "application/json", str(path))
    points = list(collector.HISTORY.points(body, ENTITY, str(path), b""))
    return list(
        history_records(
            points,
            source=SOURCE,
            endpoint=collector.HISTORY.endpoint(ENTITY),
            fetched_at=fetched_at,
            run_id="t",
            lenient=lenient,
        )
    )


def test_history_paths_and_entities() -> None:
    h = collector.HISTORY
    assert h.url_path(ENTITY) == f"/core/v3/56/markets/{MARKET}/historical-data"
    assert h.endpoint(ENTITY) == f"/core/v3/56/markets/{MARKET}/historical-data"
    assert h.entity_of(h.endpoint(ENTITY)) == ENTITY
    for bad in ("56", "56-../x", f"56-{MARKET}/x", MARKET):
        with pytest.raises(UnsafeId):
            h.url_path(bad)


def test_history_points_transform_with_the_listing() -> None:
    # The recorded first hourly point: baseApy 0.0587 = 5.87 % LP APY, impliedApy
    # 0.13 = 13 % fixed PT yield; tvl 1.186 is not USD and is not stored.
    [rec] = history()
    assert rec.native_id == "2026-05-22T09:00:00Z"
    listing = {ENTITY: json.dumps(item()).encode()}
    lp, pt = products(rec, Context(listing=listing))
    assert lp.observed_at == pt.observed_at == datetime(2026, 5, 22, 9, tzinfo=UTC)
    assert lp.apy_pct == pytest.approx(5.87)
    assert pt.apy_pct == pytest.approx(13.0)
    assert lp.tvl_usd is None
    assert pt.tvl_usd is None
    assert lp.product_id == "pendle:bsc:susdat:for-lp-|-maturity-27aug2026"
    assert (lp.pool_id, pt.pool_id) == (ENTITY, f"{ENTITY}:pt")  # the snapshot's keys
    assert products(rec, Context(listing=listing)) == [lp, pt]


def test_history_without_the_listing_is_named_by_the_market() -> None:
    [rec] = history()
    lp, pt = products(rec)
    assert lp.product_id == f"pendle:bsc:{MARKET}:lp"
    assert pt.product_id == f"pendle:bsc:{MARKET}:pt"
    assert lp.symbol == ""


def test_a_future_history_point_is_rejected() -> None:
    [rec] = history(fetched_at=datetime(2026, 5, 1, tzinfo=UTC))
    assert "after its fetch" in rejection(pendle.transform, rec).reason


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (
            Window(datetime(2026, 5, 22, tzinfo=UTC), datetime(2026, 6, 21, tzinfo=UTC)),
            {
                "timeframe": "1h",
                "timestamp_start": "2026-05-22T00:00:00Z",
                "timestamp_end": "2026-06-21T00:00:00Z",
            },
        ),
        (
            Window(datetime(2025, 1, 1, tzinfo=UTC)),
            {"timeframe": "1d", "timestamp_start": "2025-01-01T00:00:00Z"},
        ),
        (Window(), {"timeframe": "1d"}),
    ],
)
async def test_history_request(window: Window, expected: dict[str, str]) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=(FIXTURES / SOURCE / HISTORY_FILE).read_bytes())

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        records = await fetch_history(
            client,
            cfg(),
            collector.HISTORY,
            source=SOURCE,
            entity=ENTITY,
            run_id="r",
            window=Window(),
        )
        assert len(records) == 1
        await fetch_history(
            client,
            cfg(),
            collector.HISTORY,
            source=SOURCE,
            entity=ENTITY,
            run_id="r",
            window=window,
        )
    assert seen[-1].url.path == f"/core/v3/56/markets/{MARKET}/historical-data"
    assert dict(seen[-1].url.params) == expected
    assert records[0].endpoint == collector.HISTORY.endpoint(ENTITY)
    assert records[0].kind == "history"


def test_polite_defaults() -> None:
    c = collector.Config()
    # 100 compute units a minute: at most 60 listing requests, 20 history ones.
    assert c.rate_per_s * 60 <= 60
    assert c.history_rate_per_s * 60 <= 20
    assert c.history_concurrency == 1
    assert timedelta(seconds=c.interval_s) >= timedelta(minutes=15)
