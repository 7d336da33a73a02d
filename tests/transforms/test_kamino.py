"""Kamino Lend reserves -> lending observations (fraction strings, 40-digit amounts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest import kamino as collector
from ingest._history import Window, fetch_history
from ingest._http import fetch_json
from tests.conftest import FETCHED_AT, raw, recorded
from tests.transforms import body_of, observe, records_of, rejection
from transforms import kamino
from transforms.units import exact, ratio
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import UnsafeId, UpstreamRejected, UpstreamUnavailable

SOURCE = "kamino"
XSTOCKS = "5wJeMrUYECGq41fxRESKALVcHnNX26TAWy4W98yULsua"
MAIN = "7u3HeHxYDLhnCoErrtycNokbQYbWGzLs6JSDqGAv5PfF"
USDC_RESERVE = "97zoywd8mPZsGTg8q1wdD2Wgkdrs2tqusp1Qqcxbyj7E"
MAIN_USDC = "D6q6wuQSrifJKZYpR1M8R4YawnLDtDsMmWM1NbBmgJ59"
METRICS = f"{XSTOCKS}-reserves-metrics-xStocksMarket-20260927.json"
HISTORY = f"history-{MAIN}_{MAIN_USDC}.json"
SNAPSHOT_PATH = f"/kamino-market/{XSTOCKS}/reserves/metrics"


def test_recorded_usdc_reserve_pinned() -> None:
    records = {r.native_id: r for r in records_of(SOURCE, METRICS)}
    assert len(records) == 13
    assert all(r.endpoint == SNAPSHOT_PATH for r in records.values())
    obs = observe(kamino.transform, records[f"{XSTOCKS}_{USDC_RESERVE}"])
    # supplyApy "0.04688904762290447" is an APY fraction: x 100 = 4.69 % (Kamino's app:
    # 4.69 %); borrowApy "0.05784189619274893" = 5.78 %. Utilisation = totalBorrow /
    # totalSupply = 5106842.553 / 5640100.610 = 0.905 = 90.5 %. 100x errors fail here.
    assert round(obs.apy_pct or 0, 2) == 4.69
    assert obs.apy_pct == pytest.approx(4.688904762290447, rel=1e-12)
    assert round(obs.apy_borrow_pct or 0, 2) == 5.78
    assert round(obs.utilization_pct or 0, 1) == 90.5
    assert obs.apy_base_pct == obs.apy_pct
    assert obs.apy_reward_pct == 0.0
    assert obs.tvl_usd == pytest.approx(5639536.4307151409324)
    assert obs.tvl_tokens == pytest.approx(5640100.6099791571475)
    assert obs.tvl_token == "USDC"
    assert obs.observed_at == FETCHED_AT  # a snapshot item carries no time
    # DefiLlama's kamino-lend row: symbol = liquidityToken, poolMeta = the market's name.
    assert obs.product_id == "kamino-lend:solana:usdc:xstocks-market"
    assert (obs.pool_id, obs.protocol, obs.chain, obs.symbol) == (
        USDC_RESERVE,
        "kamino-lend",
        "Solana",
        "USDC",
    )
    assert obs.pool_meta == "xStocks Market"
    assert obs.strategy is Strategy.LENDING
    assert obs.venue is Venue.DEFI
    assert obs.underlying_tokens == ["EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"]


def test_forty_digit_amounts_are_read_exactly() -> None:
    (item,) = [r for r in body_of(SOURCE, METRICS) if r["reserve"] == USDC_RESERVE]
    borrowed = item["totalBorrowUsd"]
    assert borrowed == "5106331.715766966450400637789323684006381"
    assert str(exact(borrowed)) == borrowed
    share = ratio(item["totalBorrow"], item["totalSupply"])
    assert str(share).startswith("0.90545")
    assert str(ratio("1" + "0" * 39, "3" + "0" * 39)) == "0." + "3" * 80  # no float step


@pytest.mark.parametrize(("part", "whole"), [("-1", "2"), ("1", "0"), ("1", "-2"), ("x", "1")])
def test_ratio_refuses_signs_and_zero(part: str, whole: str) -> None:
    with pytest.raises(ValueError, match=r"part|number"):
        ratio(part, whole)


def _reserve(**fields: Any) -> RawRecord:
    (item,) = [r for r in body_of(SOURCE, METRICS) if r["reserve"] == USDC_RESERVE]
    text = json.dumps({**item, **fields}).encode()
    return raw(SOURCE, text, endpoint=SNAPSHOT_PATH, native_id=f"{XSTOCKS}_{USDC_RESERVE}")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"supplyApy": 0.0468}, "Expected `str`, got `float`"),
        ({"supplyApy": None}, "Expected `str`, got `null`"),
        ({"supplyApy": "4.69%"}, "expected a number"),
        ({"supplyApy": "NaN"}, "finite"),
        ({"supplyApy": "-0.01"}, "negative APY"),
        ({"borrowApy": "-0.5"}, "negative APY"),
        ({"supplyApy": "20000"}, "<= 1000000.0"),
        ({"totalBorrow": "-1"}, "part >= 0"),
        ({"totalSupplyUsd": "abc"}, "expected a number"),
        ({"reserve": 5}, "Expected `str`, got `int`"),
    ],
)
def test_bad_reserves_are_rejected(fields: dict[str, Any], reason: str) -> None:
    assert reason in rejection(kamino.transform, _reserve(**fields)).reason


def test_missing_fields_and_empty_reserves() -> None:
    (item,) = [r for r in body_of(SOURCE, METRICS) if r["reserve"] == USDC_RESERVE]
    text = json.dumps({k: v for k, v in item.items() if k != "supplyApy"}).encode()
    assert (
        "supplyApy" in rejection(kamino.transform, raw(SOURCE, text, endpoint=SNAPSHOT_PATH)).reason
    )
    empty = observe(kamino.transform, _reserve(totalSupply="0", totalBorrow="0"))
    assert empty.utilization_pct is None


def test_unknown_market_is_named_by_its_pubkey() -> None:
    text = json.dumps(body_of(SOURCE, METRICS)[8]).encode()
    other = "Other1111111111111111111111111111111111111"
    obs = observe(
        kamino.transform, raw(SOURCE, text, endpoint=f"/kamino-market/{other}/reserves/metrics")
    )
    assert obs.product_id == f"kamino-lend:solana:usdc:{other.lower()}"


def test_the_same_record_gives_the_same_observations() -> None:
    records = records_of(SOURCE, METRICS)
    assert [observe(kamino.transform, r) for r in records] == [
        observe(kamino.transform, r) for r in records
    ]


def test_the_default_markets() -> None:
    assert collector.Config().markets == (
        MAIN,
        "DxXdAyU3kCjnyggvHmY5nAwg5cRbbmdyX3npfDMjjMek",
        "ByYiZxp8QrdN9qbdtaAiePN8AAr3qvTPppNJDpf5DVJ5",
        XSTOCKS,
    )


# --- fetching: errors, rate limits ------------------------------------------------

CFG = collector.Config(attempts=2, wait_initial_s=0, wait_max_s=0, markets=(XSTOCKS,))
ENDPOINT = collector.ENDPOINTS[0]


def _client(*answers: httpx.Response, seen: list[httpx.Request]) -> httpx.AsyncClient:
    replies = iter(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(replies)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def _ok(content: bytes) -> httpx.Response:
    return httpx.Response(200, content=content, headers={"content-type": "application/json"})


async def test_collect_asks_each_market_with_env_and_names_records_by_market() -> None:
    seen: list[httpx.Request] = []
    async with _client(_ok(recorded(SOURCE, METRICS)), seen=seen) as client:
        records = [r async for r in collector.collect(client, CFG, "run")]
    (request,) = seen
    assert str(request.url) == f"https://api.kamino.finance{SNAPSHOT_PATH}?env=mainnet-beta"
    assert len(records) == 13
    assert all(r.native_id.startswith(f"{XSTOCKS}_") for r in records)


async def test_a_rate_limit_then_an_answer_succeeds() -> None:
    for first in (
        httpx.Response(429, headers={"retry-after": "0"}),
        _ok(b'{"error": "Too many requests"}'),
    ):
        seen: list[httpx.Request] = []
        async with _client(first, _ok(recorded(SOURCE, METRICS)), seen=seen) as client:
            url = f"https://api.kamino.finance{SNAPSHOT_PATH}"
            fetched = await fetch_json(client, url, CFG, request=ENDPOINT.request)
        assert len(fetched.body) == 13
        assert len(seen) == 2


async def test_an_error_object_fails_the_fetch() -> None:
    seen: list[httpx.Request] = []
    async with _client(_ok(b'{"error": "Invalid market"}'), seen=seen) as client:
        url = f"https://api.kamino.finance{SNAPSHOT_PATH}"
        with pytest.raises(UpstreamRejected, match="Invalid market"):
            await fetch_json(client, url, CFG, request=ENDPOINT.request)
    seen.clear()
    async with _client(
        _ok(b'{"error": "Too many requests"}'), _ok(b'{"error": "Too many requests"}'), seen=seen
    ) as client:
        with pytest.raises(UpstreamUnavailable):
            await fetch_json(client, url, CFG, request=ENDPOINT.request)


# --- history ------------------------------------------------------------------------


def test_history_entity_fills_both_segments() -> None:
    entity = f"{MAIN}_{MAIN_USDC}"
    path = f"/kamino-market/{MAIN}/reserves/{MAIN_USDC}/metrics/history"
    assert collector.HISTORY.url_path(entity) == path
    assert collector.HISTORY.endpoint(entity) == path
    assert collector.HISTORY.entity_of(path) == entity
    for bad in (MAIN, f"{MAIN}_a/b", "_x", f"..{'_'}{MAIN_USDC}"):
        with pytest.raises(UnsafeId):
            collector.HISTORY.url_path(bad)


async def test_history_request_and_points() -> None:
    seen: list[httpx.Request] = []
    window = Window(datetime(2025, 9, 1, tzinfo=UTC), datetime(2025, 10, 2, tzinfo=UTC))
    async with _client(_ok(recorded(SOURCE, HISTORY)), seen=seen) as client:
        records = await fetch_history(
            client,
            CFG,
            collector.HISTORY,
            source=SOURCE,
            entity=f"{MAIN}_{MAIN_USDC}",
            run_id="r",
            window=window,
        )
    (request,) = seen
    assert request.url.path == f"/kamino-market/{MAIN}/reserves/{MAIN_USDC}/metrics/history"
    assert dict(request.url.params) == {
        "env": "mainnet-beta",
        "start": "2025-09-01T00:00:00.000Z",
        "end": "2025-10-02T00:00:00.000Z",
        "frequency": "day",
    }
    (record,) = records
    assert record.kind == "history"
    assert record.native_id == "2025-10-01T00:00:00.000Z"
    obs = observe(kamino.transform, record)
    # supplyInterestAPY 0.027554982810050976 = 2.76 %; borrowInterestAPY 0.0448 = 4.48 %;
    # totalBorrows / totalSupply = 306196167.29 / 444378048.42 = 68.9 %.
    assert round(obs.apy_pct or 0, 2) == 2.76
    assert round(obs.apy_borrow_pct or 0, 2) == 4.48
    assert round(obs.utilization_pct or 0, 1) == 68.9
    assert obs.tvl_usd == pytest.approx(444253409.26174457439)
    assert obs.observed_at == datetime(2025, 10, 1, tzinfo=UTC)
    assert obs.pool_id == MAIN_USDC
    assert obs.product_id == "kamino-lend:solana:usdc:main-market"
    assert observe(kamino.transform, record) == obs


def _point(**metrics: Any) -> RawRecord:
    body = body_of(SOURCE, HISTORY)["history"][0]
    text = json.dumps({**body, "metrics": {**body["metrics"], **metrics}}).encode()
    endpoint = f"/kamino-market/{MAIN}/reserves/{MAIN_USDC}/metrics/history"
    return raw(SOURCE, text, endpoint=endpoint, fetched_at=datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"supplyInterestAPY": None}, "got `null`"),
        ({"supplyInterestAPY": -0.2}, "negative APY"),
        ({"symbol": 3}, "got `int`"),
    ],
)
def test_bad_history_points_are_rejected(change: dict[str, Any], reason: str) -> None:
    assert reason in rejection(kamino.transform, _point(**change)).reason


@pytest.mark.parametrize(
    "stamp", ["2027-01-01T00:00:00.000Z", "2020-01-01T00:00:00Z", "2025-10-01", 1759276800]
)
def test_history_points_at_bad_times_are_rejected(stamp: Any) -> None:
    body = body_of(SOURCE, HISTORY)["history"][0]
    text = json.dumps({**body, "timestamp": stamp}).encode()
    endpoint = f"/kamino-market/{MAIN}/reserves/{MAIN_USDC}/metrics/history"
    record = raw(SOURCE, text, endpoint=endpoint, fetched_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert rejection(kamino.transform, record).reason


def test_documented_2023_history_shape_still_gives_an_apy() -> None:
    # The 2023 docs' point carries tvl/totalSupplyWads, not depositTvl/totalSupply.
    metrics = {
        "symbol": "USDH",
        "mintAddress": "USDH1SM1ojwWUga67PGrgFWUHibbjqMvuMaDkRJTgkX",
        "borrowInterestAPY": 0.004961253732466142,
        "supplyInterestAPY": 0.00016816974038857957,
    }
    text = json.dumps({"timestamp": "2023-10-01T00:00:00.000Z", "metrics": metrics}).encode()
    record = raw(
        SOURCE, text, endpoint=f"/kamino-market/{MAIN}/reserves/{MAIN_USDC}/metrics/history"
    )
    obs = observe(kamino.transform, record)
    assert obs.apy_pct == pytest.approx(0.016816974038857957)
    assert obs.tvl_usd is None
    assert obs.utilization_pct is None


@given(
    st.integers(min_value=0, max_value=10**40),
    st.integers(min_value=1, max_value=10**40),
    st.integers(min_value=0, max_value=30),
)
def test_ratio_is_exact_division_of_decimal_strings(part: int, whole: int, places: int) -> None:
    top, bottom = f"{part}E-{places}", f"{whole}E-{places}"  # exact decimal strings
    share = ratio(top, bottom)
    assert share == ratio(part, whole)  # the same scale on both sides cancels exactly
    with localcontext() as ctx:
        ctx.prec = 200
        error = abs(share * Decimal(whole) - Decimal(part))
    assert error <= Decimal(part) * Decimal(10) ** -78
