"""KuCoin lending: annual fraction strings, compounded hourly; errors; 7-day history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ingest import kucoin as collector
from ingest._history import Window, fetch_history
from ingest._http import fetch_json
from tests.conftest import FETCHED_AT, raw, recorded
from tests.transforms import body_of, observe, rejection
from transforms import kucoin
from transforms.units import HOURLY, apr_to_apy_pct
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse, UpstreamUnavailable

SOURCE = "kucoin"
LIST = "project-list-BTC-sdk-docs-example.json"
RATES = "history-marketInterestRate-BTC-sdk-docs-example.json"
BASE = "https://api.kucoin.com"
HISTORY_AT = datetime(2024, 10, 17, 12, tzinfo=UTC)  # a fetch after the recorded points
ENDPOINT = collector.ENDPOINTS[0]


def records_of(name: str) -> list[RawRecord]:
    """The records the collector makes of a recorded /project/list response."""
    body = body_of(SOURCE, name)
    return list(ENDPOINT.records(body, source=SOURCE, fetched_at=FETCHED_AT, run_id="test"))


def hourly_apy(apr_pct: float) -> float:
    """APR -> APY compounded every hour, written out independently."""
    return ((1 + apr_pct / 100 / 8760) ** 8760 - 1) * 100


def market(text: str) -> RawRecord:
    return raw(SOURCE, text.encode(), endpoint="/api/v3/project/list")


def history_point(text: str, *, fetched_at: datetime = HISTORY_AT) -> RawRecord:
    return RawRecord(
        source=SOURCE,
        endpoint=collector.HISTORY.endpoint("BTC"),
        fetched_at=fetched_at,
        run_id="test",
        kind="history",
        native_id="p",
        payload=text.encode(),
    )


def test_btc_market_rate_pinned() -> None:
    # The SDK docs example (placeholder-like values): BTC marketInterestRate "0.005",
    # an annual fraction: 0.005 x 100 = 0.5 % APR. Paid hourly: 0.005 / 8760 an hour,
    # APY = (1 + 0.005/8760)^8760 - 1 = 0.0050125 = 0.50125 %.
    (rec,) = records_of(LIST)
    assert rec.native_id == "BTC"
    obs = observe(kucoin.transform, rec)
    assert obs.apy_pct == pytest.approx(0.501252, abs=1e-6)
    assert obs.apy_pct == pytest.approx(hourly_apy(0.5), rel=1e-9)
    assert obs.apy_pct == apr_to_apy_pct(0.5, HOURLY)
    # 100x off is 50.1 % or 0.005 %; 365x off (a per-day reading) is far above 100 %.
    assert 0.5 < obs.apy_pct < 0.51
    assert (obs.apy_base_pct, obs.apy_reward_pct) == (obs.apy_pct, 0.0)
    assert obs.product_id == "kucoin:off-chain:btc:lending"
    assert (obs.source, obs.pool_id, obs.protocol, obs.chain, obs.symbol) == (
        "kucoin",
        "BTC",
        "kucoin",
        "Off-chain",
        "BTC",
    )
    assert obs.strategy is Strategy.LENDING
    assert obs.venue is Venue.CEFI
    assert obs.strategy_guessed is False
    # No time in the item: the hour of the fetch.
    assert obs.observed_at == FETCHED_AT.replace(minute=0, second=0)


def test_a_long_decimal_rate_is_read_exactly() -> None:
    obs = observe(
        kucoin.transform, market('{"currency":"USDT","marketInterestRate":"0.1234567890123456789"}')
    )
    assert obs.apy_pct == pytest.approx(hourly_apy(12.34567890123456789), rel=1e-9)


def _market(**fields: Any) -> str:
    return json.dumps({"currency": "BTC", "marketInterestRate": "0.005", **fields})


@pytest.mark.parametrize(
    ("text", "stage", "reason"),
    [
        (_market(marketInterestRate=0.005), "decode", "Expected `str`, got `float`"),
        (_market(marketInterestRate=None), "decode", "Expected `str`, got `null`"),
        ('{"currency": "BTC"}', "decode", "missing required field `marketInterestRate`"),
        ('{"marketInterestRate": "0.005"}', "decode", "missing required field `currency`"),
        (_market(marketInterestRate="abc"), "validate", "unusable marketInterestRate"),
        (_market(marketInterestRate="NaN"), "validate", "unusable marketInterestRate"),
        (_market(marketInterestRate=""), "validate", "unusable marketInterestRate"),
        (_market(marketInterestRate="0.5%"), "validate", "unusable marketInterestRate"),
        (_market(marketInterestRate="-0.01"), "validate", "not an annual fraction"),
        (_market(marketInterestRate="50"), "validate", "not an annual fraction"),  # percent sent
        (_market(currency=" "), "validate", "empty currency"),
        ("[]", "decode", "Expected `object`, got `array`"),
    ],
)
def test_bad_markets_are_rejected_with_a_reason(text: str, stage: str, reason: str) -> None:
    rej = rejection(kucoin.transform, market(text))
    assert rej.stage == stage
    assert reason in rej.reason


# --- errors through fetch_json with the endpoint's check ------------------------


def _client(*answers: Any, seen: list[httpx.Request] | None = None) -> httpx.AsyncClient:
    replies = iter(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(
            200, content=next(replies), headers={"content-type": "application/json"}
        )

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


CFG = collector.Config(attempts=2, wait_initial_s=0, wait_max_s=0)
LIMITED = b'{"code":"429000","msg":"Too Many Requests"}'


async def _fetch(client: httpx.AsyncClient) -> Any:
    return await fetch_json(client, BASE + ENDPOINT.path, CFG, request=ENDPOINT.request)


async def test_a_rate_limit_answer_is_retried() -> None:
    async with _client(LIMITED, recorded(SOURCE, LIST)) as client:
        fetched = await _fetch(client)
    assert fetched.body["data"][0]["currency"] == "BTC"


async def test_a_rate_limit_answer_every_time_is_retriable() -> None:
    async with _client(LIMITED, LIMITED) as client:
        with pytest.raises(UpstreamUnavailable, match="429000"):
            await _fetch(client)


@pytest.mark.parametrize(
    "body",
    [
        b'{"code":"400100","msg":"Parameter Error"}',
        b'{"code":"400003","msg":"KC-API-KEY not exists"}',
        b'{"code":"500000","msg":"Internal Server Error"}',
        b'{"code":400100,"msg":"number code"}',
    ],
)
async def test_other_error_codes_are_fatal_and_not_retried(body: bytes) -> None:
    seen: list[httpx.Request] = []
    async with _client(body, body, seen=seen) as client:
        with pytest.raises(BadResponse, match="KuCoin error") as info:
            await _fetch(client)
    assert info.value.body == body
    assert len(seen) == 1


def test_a_body_without_data_is_a_bad_response() -> None:
    with pytest.raises(BadResponse, match="'data'"):
        ENDPOINT.items({"code": "200000"}, BASE)


# --- history -------------------------------------------------------------------


def test_history_points_of_the_recorded_response() -> None:
    body = body_of(SOURCE, RATES)
    points = list(collector.HISTORY.points(body, "BTC", BASE, b""))
    assert [p.native_id for p in points] == ["202410170000", "202410170100"]
    assert [p.moment for p in points] == [
        datetime(2024, 10, 17, 0, tzinfo=UTC),
        datetime(2024, 10, 17, 1, tzinfo=UTC),
    ]


async def test_history_requests_the_currency_at_the_real_path() -> None:
    seen: list[httpx.Request] = []
    async with _client(recorded(SOURCE, RATES), seen=seen) as client:
        records = await fetch_history(
            client, CFG, collector.HISTORY, source=SOURCE, entity="BTC", run_id="r", window=Window()
        )
    (request,) = seen
    assert (request.url.host, request.url.path) == (
        "api.kucoin.com",
        "/api/v3/project/marketInterestRate",
    )
    assert list(request.url.params.multi_items()) == [("currency", "BTC")]
    assert [r.kind for r in records] == ["history", "history"]
    assert {r.endpoint for r in records} == {"/api/v3/project/marketInterestRate?currency=BTC"}
    assert collector.HISTORY.entity_of(records[0].endpoint) == "BTC"
    obs = [observe(kucoin.transform, r) for r in records]
    assert [o.pool_id for o in obs] == ["BTC", "BTC"]
    assert {o.product_id for o in obs} == {"kucoin:off-chain:btc:lending"}
    assert all(o.apy_pct == pytest.approx(hourly_apy(0.5), rel=1e-9) for o in obs)


async def test_a_history_window_keeps_its_points() -> None:
    window = Window(since=datetime(2024, 10, 17, 1, tzinfo=UTC))
    async with _client(recorded(SOURCE, RATES)) as client:
        records = await fetch_history(
            client, CFG, collector.HISTORY, source=SOURCE, entity="BTC", run_id="r", window=window
        )
    assert [r.native_id for r in records] == ["202410170100"]


async def test_history_rate_limit_then_answer() -> None:
    async with _client(LIMITED, recorded(SOURCE, RATES)) as client:
        records = await fetch_history(
            client, CFG, collector.HISTORY, source=SOURCE, entity="ETH", run_id="r", window=Window()
        )
    assert {r.endpoint for r in records} == {"/api/v3/project/marketInterestRate?currency=ETH"}
    assert observe(kucoin.transform, records[0]).pool_id == "ETH"


def test_transform_prefix_matches_the_history_path() -> None:
    assert collector.HISTORY.endpoint("X") == kucoin.HISTORY_PREFIX + "X"
    assert collector.HISTORY.path.startswith(kucoin.HISTORY_PREFIX)


def test_history_point_is_idempotent_and_at_its_own_hour() -> None:
    text = '{"time":"202410170100","marketInterestRate":"0.005"}'
    first = observe(kucoin.transform, history_point(text))
    again = observe(
        kucoin.transform, history_point(text, fetched_at=HISTORY_AT + timedelta(days=3))
    )
    assert first == again
    assert first.observed_at == datetime(2024, 10, 17, 1, tzinfo=UTC)


def test_the_snapshot_and_the_history_point_of_one_hour_share_a_key() -> None:
    hour = datetime(2024, 10, 17, 1, tzinfo=UTC)
    snap = observe(
        kucoin.transform,
        raw(
            SOURCE,
            _market().encode(),
            endpoint="/api/v3/project/list",
            fetched_at=hour + timedelta(minutes=7),
        ),
    )
    hist = observe(
        kucoin.transform, history_point('{"time":"202410170100","marketInterestRate":"0.005"}')
    )
    assert (snap.source, snap.pool_id, snap.observed_at) == (
        hist.source,
        hist.pool_id,
        hist.observed_at,
    )


@pytest.mark.parametrize(
    ("time", "reason"),
    [
        ("202410171400", "is after its fetch"),  # 2 h after HISTORY_AT (UTC+8 read as UTC)
        ("1729123200", "unreadable point time"),  # epoch seconds, not the compact form
        ("2024-10-17T01:00", "unreadable point time"),
        ("202413170100", "unreadable point time"),  # month 13
        ("", "unreadable point time"),
    ],
)
def test_bad_history_times_are_rejected(time: str, reason: str) -> None:
    text = json.dumps({"time": time, "marketInterestRate": "0.005"})
    rej = rejection(kucoin.transform, history_point(text))
    assert rej.stage == "validate"
    assert reason in rej.reason


def test_a_history_time_that_is_a_number_is_a_decode_rejection() -> None:
    rej = rejection(
        kucoin.transform, history_point('{"time":202410170100,"marketInterestRate":"0.005"}')
    )
    assert rej.stage == "decode"


def test_a_history_point_within_clock_skew_is_kept() -> None:
    text = '{"time":"202410171200","marketInterestRate":"0.005"}'
    obs = observe(
        kucoin.transform, history_point(text, fetched_at=HISTORY_AT - timedelta(minutes=59))
    )
    assert obs.observed_at == HISTORY_AT
