"""Compound III market summaries -> lending observations (APR compounded per second).

The recorded responses are BUILT FROM THE DOCUMENTED SHAPE (the item type public code
reading v3-api.compound.finance declares), not captured: no real sample was found.
Values are illustrative; the pinned figures pin the arithmetic.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest

from ingest import compound_v3 as collector
from ingest._history import Window, fetch_history
from ingest._http import fetch_json
from tests.conftest import raw, recorded
from tests.transforms import body_of, observe, records_of, rejection
from transforms import compound_v3
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import UpstreamRejected, UpstreamUnavailable

SOURCE = "compound-v3"
SUMMARY = "summary-documented-shape.json"
HISTORY = "history-all-contracts.json"
BASE = "https://v3-api.compound.finance"
USDC_COMET = "0xc3d688B66703497DAA19211EEdff47f25384cdc3"
SECONDS = 31_536_000  # 365 x 24 x 3600


def per_second_apy(apr_fraction: float) -> float:
    """APR -> APY compounded each second, written out independently (percent)."""
    return (math.exp(SECONDS * math.log1p(apr_fraction / SECONDS)) - 1) * 100


def markets() -> dict[str, Any]:
    return {r.native_id: observe(compound_v3.transform, r) for r in records_of(SOURCE, SUMMARY)}


def test_ethereum_usdc_supply_apy_pinned() -> None:
    obs = markets()[f"1-{USDC_COMET}"]
    # supply_apr "0.0391234567890123456789" is 3.91234567890 % APR; compounded every
    # second: (1 + 0.0391234567890123 / 31,536,000) ** 31,536,000 - 1 = 0.0398989...,
    # i.e. 3.98989 % APY (about e**0.03912 - 1). Reading it as percent (100x) or as a
    # daily rate (365x) fails here.
    assert obs.apy_pct == pytest.approx(3.9898850, abs=1e-6)
    assert obs.apy_pct == pytest.approx(per_second_apy(0.0391234567890123456789), rel=1e-9)
    assert obs.apy_base_pct == obs.apy_pct
    assert obs.apy_reward_pct is None  # COMP rewards are not in the summary
    # borrow_apr 0.0512345678901234567890 -> 5.2570 % APY; utilization 0.8912... -> 89.12 %
    assert obs.apy_borrow_pct == pytest.approx(per_second_apy(0.0512345678901234567890), rel=1e-9)
    assert obs.utilization_pct == pytest.approx(89.12345678901234, abs=1e-9)
    # total_supply_value 512,345,678.123456 USDC x base_usd_price 1.0001 = $512,396,912.69
    assert obs.tvl_tokens == 512345678.123456
    assert obs.tvl_usd == pytest.approx(512396912.6912683, abs=1e-6)
    assert (obs.tvl_token, obs.symbol, obs.chain) == ("USDC", "USDC", "Ethereum")
    assert obs.pool_id == f"1-{USDC_COMET.lower()}"
    assert obs.observed_at == datetime(2026, 3, 12, 12, tzinfo=UTC)
    assert (obs.strategy, obs.venue, obs.strategy_guessed) == (Strategy.LENDING, Venue.DEFI, False)
    assert (obs.protocol, obs.category) == ("compound-v3", "Lending")
    assert obs.underlying_tokens == ["0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"]


def test_product_ids_are_defillamas() -> None:
    # DefiLlama's adaptor: symbol = underlyingSymbol ("ETH" for the Ethereum WETH
    # market), chain capitalised, no poolMeta (src/adaptors/compound-v3/index.js).
    assert {o.product_id for o in markets().values()} == {
        "compound-v3:ethereum:usdc",
        "compound-v3:ethereum:eth",
        "compound-v3:arbitrum:usdc",
        "compound-v3:base:usdc",
    }


def test_long_decimal_strings_are_read_exactly() -> None:
    assert compound_v3.fraction("0.0391234567890123456789", "x") == Decimal(
        "0.0391234567890123456789"
    )
    obs = markets()["1-0xA17581A9E3356d9A858b789D68B4d866e593aE94"]
    # 412345.678901234567890123 WETH x $3456.78, exact until the one float at the end
    assert obs.tvl_usd == float(Decimal("412345.678901234567890123") * Decimal("3456.78"))


def test_a_record_transformed_twice_is_the_same() -> None:
    rec = records_of(SOURCE, SUMMARY)[0]
    assert observe(compound_v3.transform, rec) == observe(compound_v3.transform, rec)


# --- bad items become rejections ---------------------------------------------------


def _item(**fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = body_of(SOURCE, SUMMARY)[0]
    item.update(fields)
    return item


def _record(item: Any, kind: str = "snapshot") -> RawRecord:
    rec = raw(SOURCE, json.dumps(item).encode(), endpoint=collector.ENDPOINTS[0].path)
    return msgspec.structs.replace(rec, kind=kind)


@pytest.mark.parametrize(
    ("item", "stage", "reason"),
    [
        # a percent sent where the fraction belongs (3.91 % as 391 %)
        (_item(supply_apr="3.91"), "validate", "'3.91' (a fraction) is not in [0, 1]: a unit"),
        (_item(borrow_apr="5.12"), "validate", "borrow APR '5.12' (a fraction) is not in [0, 1]"),
        (_item(supply_apr="-0.01"), "validate", "is not in [0, 1]"),
        (_item(supply_apr="lots"), "validate", "unusable supply APR"),
        (_item(supply_apr=None), "decode", "got `null` - at `$.supply_apr`"),
        (_item(utilization="12"), "validate", "utilization '12'"),
        (_item(base_usd_price="-1"), "validate", "expected amounts and prices >= 0"),
        (_item(total_supply_value="NaN"), "validate", "unusable market totals"),
        (_item(chain_id="1"), "decode", "Expected `int`, got `str` - at `$.chain_id`"),
        (_item(comet={"address": "0x" + "1" * 40}), "validate", "is not a market DefiLlama lists"),
        ({"chain_id": 1}, "decode", "missing required field"),
    ],
)
def test_bad_items_are_rejected_with_a_reason(item: Any, stage: str, reason: str) -> None:
    rej = rejection(compound_v3.transform, _record(item))
    assert rej.stage == stage
    assert reason in rej.reason


# --- errors through fetch_json with the endpoint's check ----------------------------


def _client(
    *answers: tuple[int, bytes], seen: list[httpx.Request] | None = None
) -> httpx.AsyncClient:
    replies = iter(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        status, content = next(replies)
        return httpx.Response(status, content=content, headers={"content-type": "application/json"})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


CFG = collector.Config(attempts=2, wait_initial_s=0, wait_max_s=0)
ENDPOINT = collector.ENDPOINTS[0]
GOOD = (200, recorded(SOURCE, SUMMARY))


async def _fetch(client: httpx.AsyncClient) -> Any:
    return await fetch_json(client, BASE + ENDPOINT.path, CFG, request=ENDPOINT.request)


@pytest.mark.parametrize(
    "limited",
    [(429, b'{"error":"Too Many Requests"}'), (200, b'{"error":"rate limit exceeded"}')],
)
async def test_a_rate_limit_answer_is_retried(limited: tuple[int, bytes]) -> None:
    seen: list[httpx.Request] = []
    async with _client(limited, GOOD, seen=seen) as client:
        fetched = await _fetch(client)
    assert len(fetched.body) == 4
    assert (seen[0].method, seen[0].url.path) == (
        "GET",
        "/market/all-networks/all-contracts/summary",
    )


async def test_a_rate_limit_answer_every_time_is_retriable() -> None:
    limited = (200, b'{"error":"rate limit exceeded"}')
    async with _client(limited, limited) as client:
        with pytest.raises(UpstreamUnavailable, match="rate limit"):
            await _fetch(client)


async def test_an_error_object_is_fatal_and_not_retried() -> None:
    seen: list[httpx.Request] = []
    bad = (200, b'{"message":"unknown network"}')
    async with _client(bad, bad, seen=seen) as client:
        with pytest.raises(UpstreamRejected, match="unknown network"):
            await _fetch(client)
    assert len(seen) == 1


# --- history -----------------------------------------------------------------------


def test_history_points_of_the_recorded_response() -> None:
    points = list(collector.HISTORY.points(body_of(SOURCE, HISTORY), "all-contracts", BASE, b""))
    assert [p.native_id for p in points] == [
        f"1-{USDC_COMET}-1764460800",
        f"1-{USDC_COMET}-1764547200",
        "8453-0xb125E6687d4313864e53df431d5425969c15Eb2F-1764547200",
    ]
    assert points[0].moment == datetime(2025, 11, 30, tzinfo=UTC)


async def _history(
    window: Window | None = None, seen: list[httpx.Request] | None = None
) -> list[RawRecord]:
    async with _client((200, recorded(SOURCE, HISTORY)), seen=seen) as client:
        return await fetch_history(
            client,
            CFG,
            collector.HISTORY,
            source=SOURCE,
            entity="all-contracts",
            run_id="r",
            window=window or Window(),
        )


async def test_history_is_every_market_at_the_real_path() -> None:
    seen: list[httpx.Request] = []
    records = await _history(seen=seen)
    (request,) = seen
    assert (request.method, request.url.path) == (
        "GET",
        "/market/all-networks/all-contracts/historical/summary",
    )
    assert not request.url.params
    obs = [observe(compound_v3.transform, r) for r in records]
    assert [o.observed_at for o in obs] == [
        datetime(2025, 11, 30, tzinfo=UTC),
        datetime(2025, 12, 1, tzinfo=UTC),
        datetime(2025, 12, 1, tzinfo=UTC),
    ]
    assert obs[0].apy_pct == pytest.approx(per_second_apy(0.0385), rel=1e-9)
    assert [o.product_id for o in obs] == [
        "compound-v3:ethereum:usdc",
        "compound-v3:ethereum:usdc",
        "compound-v3:base:usdc",
    ]
    assert obs == [observe(compound_v3.transform, r) for r in records]  # idempotent


async def test_a_history_window_keeps_its_points() -> None:
    records = await _history(Window(since=datetime(2025, 12, 1, tzinfo=UTC)))
    assert len(records) == 2


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [
        (1764547200000, "unreadable point time"),  # milliseconds sent as seconds
        (1_600_000_000, "before Compound III"),
        (4_102_444_800, "after its fetch"),
        (None, "unreadable point time"),
    ],
)
def test_bad_history_times_are_rejected(timestamp: Any, reason: str) -> None:
    rej = rejection(compound_v3.transform, _record(_item(timestamp=timestamp), kind="history"))
    assert reason in rej.reason
