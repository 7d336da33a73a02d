"""Bybit Earn: percent strings with '%', compounded daily; retCode errors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from ingest import bybit as collector
from ingest._http import fetch_json
from tests.conftest import FETCHED_AT, raw, recorded
from tests.transforms import body_of, observe, rejection
from transforms import bybit
from transforms.units import DAILY, apr_to_apy_pct
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse, UpstreamUnavailable

SOURCE = "bybit"
PRODUCTS = "earn-product-FlexibleSaving-BTC-docs-example.json"
BASE = "https://api.bybit.com"
ENDPOINT = collector.ENDPOINTS[0]


def records_of(name: str) -> list[RawRecord]:
    body = body_of(SOURCE, name)
    return list(ENDPOINT.records(body, source=SOURCE, fetched_at=FETCHED_AT, run_id="test"))


def daily_apy(apr_pct: float) -> float:
    return ((1 + apr_pct / 100 / 365) ** 365 - 1) * 100


def product(text: str) -> RawRecord:
    return raw(SOURCE, text.encode(), endpoint="/v5/earn/product")


def test_btc_flexible_saving_pinned() -> None:
    # Bybit's docs example: BTC FlexibleSaving estimateApr "3%" = 3.0 % APR (not 300,
    # not 0.03). Paid daily: APY = (1 + 0.03/365)^365 - 1 = 0.0304533 = 3.04533 %.
    (rec,) = records_of(PRODUCTS)
    assert rec.native_id == "430"
    obs = observe(bybit.transform, rec)
    assert obs.apy_pct == pytest.approx(3.045326, abs=1e-6)
    assert obs.apy_pct == pytest.approx(daily_apy(3.0), rel=1e-9)
    assert obs.apy_pct == apr_to_apy_pct(3.0, DAILY)
    assert 3.0 < obs.apy_pct < 3.1  # 300 % or 0.03 % would be the 100x bug
    assert (obs.apy_base_pct, obs.apy_reward_pct) == (obs.apy_pct, 0.0)
    assert obs.product_id == "bybit:off-chain:btc:flexible-saving"
    assert (obs.source, obs.pool_id, obs.protocol, obs.chain, obs.symbol) == (
        "bybit",
        "430",
        "bybit",
        "Off-chain",
        "BTC",
    )
    assert (obs.strategy, obs.venue, obs.strategy_guessed) == (Strategy.LENDING, Venue.CEFI, False)
    assert obs.pool_meta is None  # "Available"
    assert obs.observed_at == FETCHED_AT


def _product(**fields: Any) -> str:
    item = {
        "category": "FlexibleSaving",
        "estimateApr": "3%",
        "coin": "BTC",
        "productId": "430",
        "status": "Available",
    }
    return json.dumps({**item, **fields})


def test_an_onchain_product_is_staking() -> None:
    obs = observe(bybit.transform, product(_product(category="OnChain", coin="ETH", productId="7")))
    assert obs.strategy is Strategy.STAKING
    assert obs.product_id == "bybit:off-chain:eth:onchain"


def test_a_product_not_available_is_kept_and_says_so() -> None:
    obs = observe(bybit.transform, product(_product(status="NotAvailable")))
    assert obs.pool_meta == "status NotAvailable"
    assert obs.apy_pct == pytest.approx(daily_apy(3.0), rel=1e-9)


@pytest.mark.parametrize(("text", "apr"), [("2.5%", 2.5), (" 0.15 %", 0.15), ("0%", 0.0)])
def test_percent_strings(text: str, apr: float) -> None:
    obs = observe(bybit.transform, product(_product(estimateApr=text)))
    assert obs.apy_pct == pytest.approx(daily_apy(apr), rel=1e-9)


@pytest.mark.parametrize(
    ("text", "stage", "reason"),
    [
        (_product(estimateApr="3"), "validate", "expected a percent string"),  # no sign
        (_product(estimateApr="0.03"), "validate", "expected a percent string"),
        (_product(estimateApr=""), "validate", "expected a percent string"),
        (_product(estimateApr="3%%"), "validate", "expected a percent string"),
        (_product(estimateApr=3), "decode", "Expected `str`, got `int`"),
        (_product(estimateApr=None), "decode", "Expected `str`, got `null`"),
        (_product(estimateApr="-1%"), "validate", "not in [0, 1000.0] %"),
        (_product(estimateApr="30000%"), "validate", "not in [0, 1000.0] %"),
        (_product(category="FixedTerm"), "validate", "unknown product category"),
        (_product(coin=""), "validate", "needs its coin and productId"),
        (_product(productId=430), "decode", "Expected `str`, got `int`"),
        ('{"category": "FlexibleSaving", "coin": "BTC"}', "decode", "missing required field"),
    ],
)
def test_bad_products_are_rejected_with_a_reason(text: str, stage: str, reason: str) -> None:
    rej = rejection(bybit.transform, product(text))
    assert rej.stage == stage
    assert reason in rej.reason


# --- errors through fetch_json with the endpoint's check ------------------------

CFG = collector.Config(attempts=2, wait_initial_s=0, wait_max_s=0)
LIMITED = b'{"retCode":10006,"retMsg":"Too many visits!","result":{},"time":1739935669110}'


def _client(*answers: bytes, seen: list[httpx.Request]) -> httpx.AsyncClient:
    replies = iter(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, content=next(replies), headers={"content-type": "application/json"}
        )

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def _fetch(client: httpx.AsyncClient) -> Any:
    return await fetch_json(client, BASE + ENDPOINT.path, CFG, request=ENDPOINT.request)


async def test_a_rate_limit_answer_is_retried_at_the_real_url() -> None:
    seen: list[httpx.Request] = []
    async with _client(LIMITED, recorded(SOURCE, PRODUCTS), seen=seen) as client:
        fetched = await _fetch(client)
    assert fetched.body["result"]["list"][0]["productId"] == "430"
    assert len(seen) == 2
    assert seen[0].url.path == "/v5/earn/product"
    assert list(seen[0].url.params.multi_items()) == [("category", "FlexibleSaving")]


async def test_rate_limited_every_time_is_retriable() -> None:
    seen: list[httpx.Request] = []
    ip_limit = b'{"retCode":10018,"retMsg":"Exceeded the IP Rate Limit"}'
    async with _client(ip_limit, ip_limit, seen=seen) as client:
        with pytest.raises(UpstreamUnavailable, match="10018"):
            await _fetch(client)


@pytest.mark.parametrize(
    "body",
    [
        b'{"retCode":10016,"retMsg":"Internal server error.","result":{}}',
        b'{"retCode":10001,"retMsg":"params error: category","result":{}}',
        b'{"retCode":"10001","retMsg":"string code"}',
    ],
)
async def test_other_ret_codes_are_fatal_and_not_retried(body: bytes) -> None:
    seen: list[httpx.Request] = []
    async with _client(body, body, seen=seen) as client:
        with pytest.raises(BadResponse, match="Bybit error") as info:
            await _fetch(client)
    assert info.value.body == body
    assert len(seen) == 1


def test_a_body_without_the_list_is_a_bad_response() -> None:
    with pytest.raises(BadResponse, match="'list'"):
        ENDPOINT.items({"retCode": 0, "result": {}}, BASE)


def test_the_same_record_twice_gives_the_same_observation() -> None:
    (rec,) = records_of(PRODUCTS)
    assert observe(bybit.transform, rec) == observe(bybit.transform, rec)
