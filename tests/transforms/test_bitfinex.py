"""Bitfinex funding: tickers, funding stats and daily candles -> lending observations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ingest import bitfinex as ingest
from ingest._history import Window, fetch_history
from ingest._http import fetch_json
from ingest._records import endpoint_for
from tests.conftest import FIXTURES, raw
from tests.transforms import body_of, observe, records_of, rejection
from transforms import bitfinex
from transforms.products import product_id
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import UpstreamRejected, UpstreamUnavailable

SOURCE = "bitfinex"
STATS = "funding-stats-fUSD-hist-1row-20260704-array.json"
TICKERS = "tickers-fUSD-17field-from-legacy-values.json"
LEGACY = "legacy-tickers-fUSD-docstring.json"
CANDLES = "history-candles-fUSD-sdk-test-mock.json"
STATS_AT = datetime(2026, 7, 4, 15, 5, tzinfo=UTC)  # MTS 1783177500000
AFTER = datetime(2026, 11, 25, 12, tzinfo=UTC)  # a fetch after every recorded point
STATS_PATH = "/v2/funding/stats/fUSD/hist"
CANDLE_PATH = "/v2/candles/trade:1D:fUSD:a30:p2:p30/hist"


def daily_apy(apr_pct: float) -> float:
    """APR -> APY compounded daily, written out independently of transforms.units."""
    return ((1 + apr_pct / 100 / 365) ** 365 - 1) * 100


def record(row: Any, endpoint: str, *, fetched_at: datetime = AFTER) -> RawRecord:
    text = row if isinstance(row, str) else json.dumps(row)
    return raw(SOURCE, text.encode(), endpoint=endpoint, fetched_at=fetched_at)


# --- the pinned figure ------------------------------------------------------------


def test_recorded_funding_stats_row_pins_apr_fee_and_compounding() -> None:
    (rec,) = records_of(SOURCE, STATS, fetched_at=AFTER)
    assert rec.native_id == "1783177500000"
    obs = observe(bitfinex.transform, rec)
    # FRR 1.02e-06 is 1/365 of the per-day rate: x 365 = 0.0003723 / day;
    # x 365 days = 13.589 % APR gross; x 0.85 (Bitfinex keeps 15 %) = 11.551 % APR net;
    # net APY, compounded daily = (1 + 0.115506 / 365) ** 365 - 1 = 12.2421 %;
    # gross APY = (1 + 0.135890 / 365) ** 365 - 1 = 14.5526 %.
    assert obs.apy_pct == pytest.approx(12.2421, abs=1e-4)
    assert obs.apy_pct == pytest.approx(daily_apy(1.02e-06 * 365 * 365 * 100 * 0.85), rel=1e-12)
    assert obs.apy_gross_pct == pytest.approx(14.5526, abs=1e-4)
    assert obs.apy_base_pct == obs.apy_pct
    assert obs.apy_reward_pct == 0.0
    # Utilisation: 5,917,128,689.59 used of 5,986,423,138.37 = 98.84 %.
    assert obs.utilization_pct == pytest.approx(98.8425, abs=1e-4)
    assert obs.tvl_tokens == pytest.approx(5986423138.37)
    assert obs.tvl_token == "USD"
    assert obs.tvl_usd == pytest.approx(5986423138.37)
    assert obs.observed_at == STATS_AT
    assert (obs.source, obs.pool_id, obs.protocol, obs.chain, obs.symbol) == (
        "bitfinex",
        "fUSD",
        "bitfinex",
        "Off-chain",
        "USD",
    )
    assert obs.product_id == product_id("bitfinex", "Off-chain", "USD", "funding")
    assert obs.product_id == "bitfinex:off-chain:usd:funding"
    assert (obs.strategy, obs.venue, obs.strategy_guessed) == (Strategy.LENDING, Venue.CEFI, False)
    assert obs.stablecoin is True


def test_ticker_frr_is_the_per_day_rate() -> None:
    (rec,) = records_of(SOURCE, TICKERS)
    assert rec.native_id == "fUSD"
    obs = observe(bitfinex.transform, rec)
    # FRR 0.00020966 a day x 365 = 7.6526 % APR; x 0.85 = 6.5047 %; daily APY 6.7203 %.
    assert obs.apy_pct == pytest.approx(6.7203, abs=1e-4)
    assert obs.apy_gross_pct == pytest.approx(daily_apy(0.00020966 * 36500), rel=1e-12)
    assert obs.observed_at == datetime(2026, 3, 12, 12, tzinfo=UTC)  # the hour of its fetch
    assert obs.utilization_pct is None
    assert obs.tvl_usd is None


def test_legacy_14_field_ticker_row_and_its_trading_row() -> None:
    assert endpoint_for(ingest.ENDPOINTS, FIXTURES / SOURCE / LEGACY) is None
    trading, funding = body_of(SOURCE, LEGACY)
    assert len(funding) == 14
    fresh = observe(bitfinex.transform, record(body_of(SOURCE, TICKERS)[0], "/v2/tickers"))
    assert observe(bitfinex.transform, record(funding, "/v2/tickers")) == fresh
    rej = rejection(bitfinex.transform, record(trading, "/v2/tickers"))
    assert rej.reason == "tBTCUSD is a trading ticker, not a funding product"


@pytest.mark.parametrize(
    ("symbol", "asset", "stable"),
    [("fUSD", "USD", True), ("fUST", "USDT", True), ("fBTC", "BTC", False), ("fETH", "ETH", False)],
)
def test_each_funding_symbol_is_its_asset(symbol: str, asset: str, stable: bool) -> None:
    row = [symbol, *body_of(SOURCE, TICKERS)[0][1:]]
    obs = observe(bitfinex.transform, record(row, "/v2/tickers"))
    assert (obs.symbol, obs.pool_id, obs.stablecoin) == (asset, symbol, stable)
    assert obs.product_id == f"bitfinex:off-chain:{asset.lower()}:funding"


def test_stats_of_another_currency_give_no_usd_tvl() -> None:
    row = body_of(SOURCE, STATS)[0]
    obs = observe(bitfinex.transform, record(row, "/v2/funding/stats/fBTC/hist"))
    assert (obs.symbol, obs.tvl_token, obs.tvl_usd) == ("BTC", "BTC", None)
    assert obs.tvl_tokens == pytest.approx(5986423138.37)


def test_exact_amounts_beyond_2_53() -> None:
    row = body_of(SOURCE, STATS)[0]
    big = 2**53 + 1
    text = json.dumps([*row[:7], big, big - 1, *row[9:]])
    obs = observe(bitfinex.transform, record(text, "/v2/funding/stats/fBTC/hist"))
    # As floats both are 2**53 (100 % used); read exactly, one unit is still free.
    assert float(big) == float(big - 1)
    assert obs.utilization_pct is not None
    assert 99.9999 < obs.utilization_pct < 100.0


def test_same_record_twice_is_the_same_observation() -> None:
    (rec,) = records_of(SOURCE, STATS, fetched_at=AFTER)
    assert observe(bitfinex.transform, rec) == observe(bitfinex.transform, rec)
    later = records_of(SOURCE, TICKERS, fetched_at=datetime(2026, 3, 12, 12, 59, tzinfo=UTC))
    assert observe(bitfinex.transform, later[0]) == observe(
        bitfinex.transform, records_of(SOURCE, TICKERS)[0]
    )


# --- bad rows become rejections -------------------------------------------------


def _stats(**at: Any) -> list[Any]:
    row: list[Any] = list(body_of(SOURCE, STATS)[0])
    for index, value in at.items():
        row[int(index.removeprefix("i"))] = value
    return row


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (_stats(i3=-1e-06), "per-day rate -0.000365"),
        (_stats(i3=1.0), "is not between 0 and 0.07"),  # 365 a day: a unit error
        (_stats(i3="1.02e-06"), "Expected `int | float`, got `str` - at `$[3]`"),
        (_stats(i3=None), "got `null` - at `$[3]`"),
        (_stats(i8=6e9), "is not within the funding amount"),
        (_stats(i7=-1.0), "is not within the funding amount"),
        (_stats(i0=1783177500), "time 1783177500 ms"),  # seconds sent as ms
        (_stats(i0="1783177500000"), "Expected `int`, got `str` - at `$[0]`"),
        (_stats(i0=int((AFTER + timedelta(hours=2)).timestamp() * 1000)), "and the fetch"),
        (_stats()[:5], "Expected `array` of at least length 9, got 5"),
        ({"frr": 1e-06}, "Expected `array`, got `object`"),
    ],
)
def test_bad_stats_rows_are_rejected(row: Any, reason: str) -> None:
    rej = rejection(bitfinex.transform, record(row, STATS_PATH))
    assert reason in rej.reason


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (["fUSD", -0.0001, *([1] * 12)], "per-day rate -0.0001 of fUSD"),
        (["fUSD", 0.2, *([1] * 12)], "per-day rate 0.2 of fUSD is not between 0 and 0.07"),
        (["fUSD", 0.0002, 1], "Expected `array` of at least length 14, got 3"),
        (["fUSD", "0.0002", *([1] * 12)], "got `str` - at `$[1]`"),
        (["tLTCUSD", 81.2, 1.0], "tLTCUSD is a trading ticker"),
        ([1, 2, 3], "Expected `str`, got `int` - at `$[0]`"),
    ],
)
def test_bad_ticker_rows_are_rejected(row: Any, reason: str) -> None:
    rej = rejection(bitfinex.transform, record(row, "/v2/tickers"))
    assert reason in rej.reason


def test_a_ticker_fetched_a_long_time_ago_is_still_valid() -> None:
    row = body_of(SOURCE, TICKERS)[0]
    obs = observe(bitfinex.transform, record(row, "/v2/tickers", fetched_at=AFTER))
    assert obs.observed_at == AFTER


def test_an_unknown_endpoint_is_rejected() -> None:
    rej = rejection(bitfinex.transform, record(["fUSD", 1], "/v2/trades/fUSD/hist"))
    assert rej.reason == "no Bitfinex funding endpoint: /v2/trades/fUSD/hist"


# --- errors through fetch_json -------------------------------------------------------


def _client(*responses: httpx.Response, seen: list[httpx.Request] | None = None) -> Any:
    replies = iter(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return next(replies)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


CFG = ingest.Config(attempts=2, wait_initial_s=0, wait_max_s=0)
URL = f"{CFG.base_url}/v2/tickers"
GOOD = httpx.Response(200, json=body_of(SOURCE, TICKERS))


@pytest.mark.parametrize("status", [200, 400])
async def test_invalid_request_is_fatal(status: int) -> None:
    bad = httpx.Response(status, json=["error", 10020, "limit: invalid"])
    async with _client(bad, GOOD) as client:
        with pytest.raises(UpstreamRejected, match=r"10020|HTTP 400"):
            await fetch_json(client, URL, CFG, request=ingest.ENDPOINTS[0].request)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json=["error", 11010, "ratelimit: error"]),
        httpx.Response(200, json=["error", 10020, "ratelimit: too many requests"]),
        httpx.Response(200, json=["error", 20060, "maintenance"]),
        httpx.Response(500, json=["error", 10020, "limit: invalid"]),
        httpx.Response(429, json=["error", 11010, "ratelimit: error"]),
    ],
)
async def test_rate_limit_then_an_answer_succeeds(answer: httpx.Response) -> None:
    async with _client(answer, GOOD) as client:
        fetched = await fetch_json(client, URL, CFG, request=ingest.ENDPOINTS[0].request)
    assert fetched.body == body_of(SOURCE, TICKERS)


async def test_rate_limit_twice_is_retriable_error() -> None:
    limited = httpx.Response(200, json=["error", 11010, "ratelimit: error"])
    async with _client(limited, limited) as client:
        with pytest.raises(UpstreamUnavailable, match="Bitfinex error 11010"):
            await fetch_json(client, URL, CFG, request=ingest.ENDPOINTS[0].request)


def test_arrays_that_only_start_with_error_are_not_errors() -> None:
    ingest.check(["error", 20060, "maintenance", "extra"], URL, b"")
    ingest.check([["error", 1, 2]], URL, b"")


# --- history: daily candles -----------------------------------------------------------


def test_candle_points_and_their_transform() -> None:
    body = body_of(SOURCE, CANDLES)
    (point,) = ingest.HISTORY.points(body, "fUSD", CANDLE_PATH, b"")
    assert point.native_id == "1700000000000"
    assert point.moment == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert ingest.HISTORY.endpoint("fUSD") == CANDLE_PATH
    obs = observe(bitfinex.transform, record(point.item, CANDLE_PATH))
    # CLOSE 0.0005 a day x 365 = 18.25 % APR; x 0.85 = 15.5125 %; daily APY 16.7765 %.
    assert obs.apy_pct == pytest.approx(16.7765, abs=1e-4)
    assert obs.observed_at == point.moment
    assert obs.product_id == "bitfinex:off-chain:usd:funding"


def test_a_candle_response_of_the_wrong_shape_is_a_bad_response() -> None:
    from yieldstream.errors import BadResponse

    with pytest.raises(BadResponse, match="expected a list of candles"):
        list(ingest.HISTORY.points({"error": 1}, "fUSD", CANDLE_PATH, b""))


def _day(n: int) -> list[Any]:
    mts = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp() * 1000) + n * 86_400_000
    return [mts, 0.0002, 0.0003, 0.0004, 0.0001, 1000.0]


async def test_candle_history_query_and_paging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "CANDLE_LIMIT", 3)
    window = Window(datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 6, tzinfo=UTC))
    pages = [[_day(0), _day(1), _day(2)], [_day(3), _day(4)]]
    seen: list[httpx.Request] = []
    responses = [httpx.Response(200, json=p) for p in pages]
    async with _client(*responses, seen=seen) as client:
        records = await fetch_history(
            client, CFG, ingest.HISTORY, source=SOURCE, entity="fUSD", run_id="t", window=window
        )
    assert [r.url.path for r in seen] == [CANDLE_PATH, CANDLE_PATH]
    first, second = (dict(r.url.params) for r in seen)
    assert first == {"limit": "3", "sort": "1", "start": "1577836800000", "end": "1578268800000"}
    assert second == {**first, "start": str(_day(2)[0] + 1)}
    assert [r.native_id for r in records] == [str(_day(n)[0]) for n in range(5)]
    assert {r.endpoint for r in records} == {CANDLE_PATH}
    assert all(r.kind == "history" for r in records)


def test_candle_query_without_a_window_starts_at_the_first_candle() -> None:
    assert ingest.candle_query(Window()) == {
        "limit": "10000",
        "sort": "1",
        "start": str(int(ingest.CANDLES_SINCE.timestamp() * 1000)),
    }
    assert ingest.HISTORY.entities == ("fUSD", "fUST", "fBTC", "fETH")
