"""ultrasound.money gauge rates -> Ethereum's net supply growth (a network row)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import orjson
import pytest

from ingest import ethereum_issuance as collector
from ingest._http import fetch_json
from tests.conftest import FETCHED_AT
from tests.transforms import observe, records_of, rejection
from transforms.ethereum_issuance import transform
from yieldstream.contracts import Level, RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse

SOURCE = "ethereum-issuance"
FIXTURE = "gauge-rates-d30-researchnote-20260821-BUILT.json"


def record_of(body: Any) -> RawRecord:
    return RawRecord(
        source=SOURCE,
        endpoint=collector.ENDPOINTS[0].path,
        fetched_at=FETCHED_AT,
        run_id="test",
        kind="snapshot",
        native_id="#0",
        payload=orjson.dumps(body),
    )


def window(**changes: Any) -> dict[str, Any]:
    d30: dict[str, Any] = {
        "burn_rate_yearly": {"eth": 13116.0, "usd": 2.5e7},
        "issuance_rate_yearly": {"eth": 1060369.0, "usd": 2.4e9},
        "issuance_rate_yearly_pow": {"eth": 4930875.0, "usd": 1.1e10},
        "supply_growth_rate_yearly": 0.008586,
        "supply_growth_rate_yearly_pow": 0.0403,
        "block_number": 23190000,
        "timestamp": "2026-08-21T03:52:11Z",
    }
    d30.update(changes)
    return {"d7": d30, "d30": d30}


def test_pins_the_30_day_supply_growth() -> None:
    (record,) = records_of(SOURCE, FIXTURE)
    assert record.native_id == "#0"
    obs = observe(transform, record)
    # d30.supply_growth_rate_yearly 0.008586081937509735 (fraction) x 100 = 0.85861 %/yr,
    # the "+0.8586%/yr" the site showed (not 0.0086, not 85.9; not the PoW 4.03 %).
    assert obs.apy_pct == pytest.approx(0.8586, abs=5e-5)
    assert obs.level is Level.NETWORK
    assert obs.product_id is None
    assert (obs.pool_id, obs.protocol, obs.chain, obs.symbol) == (
        "ethereum:inflation",
        "ethereum",
        "Ethereum",
        "ETH",
    )
    assert (obs.strategy, obs.venue, obs.strategy_guessed) == (Strategy.OTHER, Venue.DEFI, False)
    assert obs.pool_meta == "30-day window: issuance 1060369 ETH/yr, burn 13116 ETH/yr"
    assert obs.observed_at == datetime(2026, 3, 12, 12, tzinfo=UTC)  # the fetch hour


def test_deflation_is_negative_and_the_block_is_named() -> None:
    body = window(
        burn_rate_yearly={"eth": 1500000.0},
        issuance_rate_yearly={"eth": 950000.0},
        supply_growth_rate_yearly=-0.004583,
    )
    obs = observe(transform, record_of(body))
    assert obs.apy_pct == pytest.approx(-0.4583)
    assert obs.pool_meta == (
        "30-day window: issuance 950000 ETH/yr, burn 1500000 ETH/yr, to block 23190000"
    )


def test_only_the_30_day_window_is_read() -> None:
    body = window()
    body["d7"] = {"supply_growth_rate_yearly": "garbage"}
    assert observe(transform, record_of(body)).apy_pct == pytest.approx(0.8586)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([1, 2], "Expected `object`, got `array`"),
        ("gauge", "Expected `object`, got `str`"),
        ({"d7": window()["d7"]}, "missing required field `d30`"),
        (window(supply_growth_rate_yearly=None), "Expected `float`, got `null`"),
        (window(supply_growth_rate_yearly="0.0086"), "Expected `float`, got `str`"),
        (window(burn_rate_yearly={"eth": "13116"}), "Expected `float`, got `str`"),
        (window(issuance_rate_yearly={}), "missing required field `eth`"),
        (window(supply_growth_rate_yearly=True), "Expected `float`, got `bool`"),
        (window(supply_growth_rate_yearly=0.86), "beyond +-0.5"),
        (window(supply_growth_rate_yearly=-0.6), "beyond +-0.5"),
        (window(burn_rate_yearly={"eth": -1.0}), "negative issuance"),
        (window(supply_growth_rate_yearly=-0.008586), "disagrees in sign"),
    ],
)
def test_bad_answers_are_rejections(body: Any, reason: str) -> None:
    assert reason in rejection(transform, record_of(body)).reason


def test_a_non_finite_figure_is_a_rejection() -> None:
    record = record_of(window())
    bad = msgspec.structs.replace(record, payload=record.payload.replace(b"0.008586", b"NaN"))
    assert "not a finite number" in rejection(transform, bad).reason


async def test_an_answer_that_is_no_object_fails_the_fetch() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v2/fees/gauge-rates"
        return httpx.Response(200, json=["not", "an", "object"])

    cfg = collector.Config(attempts=1)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(BadResponse, match="expected an object"):
            async for _ in collector.collect(client, cfg, "run"):
                pass


def test_defaults_are_polite() -> None:
    cfg = collector.Config()
    assert cfg.interval_s >= 3600
    assert cfg.rate_per_s <= 1
    assert str(httpx.URL(cfg.base_url).host) == "ultrasound.money"


async def test_a_rate_limit_then_an_answer_succeeds() -> None:
    answers = [
        httpx.Response(429, headers={"retry-after": "0"}),
        httpx.Response(200, json=window()),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    cfg = collector.Config(attempts=2, wait_initial_s=0, wait_max_s=0)
    url = cfg.base_url + collector.ENDPOINTS[0].path
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        fetched = await fetch_json(client, url, cfg, request=collector.ENDPOINTS[0].request)
    assert fetched.body["d30"]["supply_growth_rate_yearly"] == 0.008586
