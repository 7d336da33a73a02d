"""Cosmos LCD inflation, pool and params (joined per chain) -> network-inflation rows."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest import cosmos_inflation as collector
from ingest._http import fetch_json
from tests.conftest import FETCHED_AT
from tests.transforms import body_of, observe, rejection
from transforms import cosmos_inflation
from transforms.units import legacy_dec, scaled
from yieldstream.contracts import Level, RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse, UpstreamRejected

SOURCE = "cosmos-inflation"
AKASH_MINT = "akash-cosmos-mint-v1beta1-inflation-getblockdocs.json"
HUB_MINT = "cosmoshub-cosmos-mint-v1beta1-inflation-sdk-readme-1e18.json"


def joined_record(chain: str, item: dict[str, Any], fetched_at: datetime = FETCHED_AT) -> RawRecord:
    return RawRecord(
        source=SOURCE,
        endpoint=collector.INFLATION.concrete(chain),
        fetched_at=fetched_at,
        run_id="test",
        kind="snapshot",
        native_id=collector.NATIVE_ID,
        payload=orjson.dumps(item),
    )


def recorded(chain: str, mint: str) -> RawRecord:
    bodies = [
        body_of(SOURCE, mint),
        body_of(SOURCE, f"{chain}-cosmos-staking-v1beta1-pool-BUILT.json"),
        body_of(SOURCE, f"{chain}-cosmos-distribution-v1beta1-params-BUILT.json"),
    ]
    (item,) = collector.join_bodies(bodies)
    return joined_record(chain, item)


# --- pinned values ------------------------------------------------------------------


def test_akash_inflation_0_12_is_12_percent() -> None:
    # GetBlock's Akash docs: {"inflation": "0.120000000000000000"} = 0.12 x 100 = 12 %.
    # (A percent read as a fraction would be 1200; a daily rate x 365, 4380.)
    obs = observe(cosmos_inflation.transform, recorded("akash", AKASH_MINT))
    assert obs.apy_pct == 12.0
    assert (obs.pool_id, obs.protocol, obs.chain, obs.symbol) == (
        "akash:inflation",
        "akash",
        "Akash",
        "AKT",
    )
    assert obs.level is Level.NETWORK
    assert obs.product_id is None
    assert (obs.strategy, obs.venue, obs.strategy_guessed) == (Strategy.OTHER, Venue.DEFI, False)
    assert obs.category == "Network inflation"
    # Built pool: 135467231000002 / (135467231000002 + 2180497145221) = 98.4158858...%;
    # 135467231000002 uakt / 1e6 = 135467231.000002 AKT.
    assert obs.utilization_pct == pytest.approx(98.41588584526401, rel=1e-12)
    assert obs.tvl_tokens == 135467231.000002
    assert obs.tvl_token == "AKT"
    assert obs.pool_meta == "community tax 2 %"
    assert obs.observed_at == datetime(2026, 3, 12, 12, tzinfo=UTC)  # fetch hour


def test_the_1e18_scaled_readme_form_is_13_0197_percent() -> None:
    # x/mint README: "130197115720711261" = 130197115720711261 / 1e18 = 0.130197115720711261
    # -> 13.0197115720711261 % (read as a plain number it would be 1.3e19 %).
    assert legacy_dec("130197115720711261") == Decimal("0.130197115720711261")
    assert scaled(legacy_dec("130197115720711261"), -2) == Decimal("13.0197115720711261")
    obs = observe(cosmos_inflation.transform, recorded("cosmoshub", HUB_MINT))
    assert obs.apy_pct == float("13.0197115720711261")
    assert (obs.pool_id, obs.chain, obs.symbol) == ("cosmoshub:inflation", "Cosmos", "ATOM")
    assert obs.pool_meta == "community tax 10 %"


def test_decimal_and_scaled_forms_of_one_value_agree() -> None:
    assert legacy_dec("0.130197115720711261") == legacy_dec("130197115720711261")
    assert legacy_dec("0") == legacy_dec("0.000000000000000000") == 0


@given(st.integers(min_value=1, max_value=10**40))
def test_a_digit_string_at_or_above_1_is_1e18_scaled(raw: int) -> None:
    with localcontext() as ctx:
        ctx.prec = 100  # enough for every digit: the comparison itself is exact
        assert legacy_dec(str(raw)) == Decimal(raw).scaleb(-18)
    # Its decimal form (LegacyDec.String(): 18 places) reads the same, exactly.
    whole, frac = divmod(raw, 10**18)
    assert legacy_dec(f"{whole}.{frac:018d}") == legacy_dec(str(raw))


@given(st.decimals(min_value=0, max_value=10**6, places=18, allow_nan=False))
def test_a_string_with_a_point_is_the_fraction_itself(value: Decimal) -> None:
    assert legacy_dec(f"{value:.18f}") == value


@pytest.mark.parametrize("bad", ["-0.1", "1e-1", "0x10", "", " ", "0.1.2", 0.12, 12, True, None])
def test_legacy_dec_refuses_what_is_no_legacy_dec_string(bad: object) -> None:
    with pytest.raises(ValueError, match="LegacyDec"):
        legacy_dec(bad)


def test_big_base_amounts_are_exact() -> None:
    # Stratos REST docs example pool: 504e18 bonded, 1e18 not bonded (beyond 2**53).
    pool = {"not_bonded_tokens": "1000000000000000000", "bonded_tokens": "504000000000000000000"}
    obs = observe(
        cosmos_inflation.transform,
        joined_record("akash", {"inflation": "0.12", "pool": pool, "params": None}),
    )
    # 504 / 505 = 99.8019801980198 %
    assert obs.utilization_pct == pytest.approx(100 * 504 / 505, rel=1e-15)
    assert obs.tvl_tokens == 504e12
    assert obs.pool_meta is None


def test_only_the_inflation_is_needed() -> None:
    obs = observe(
        cosmos_inflation.transform,
        joined_record("celestia", {"inflation": "0.08", "pool": None, "params": None}),
    )
    assert (obs.apy_pct, obs.utilization_pct, obs.tvl_tokens) == (8.0, None, None)
    assert (obs.chain, obs.symbol) == ("Celestia", "TIA")


def test_a_rerun_gives_the_same_rows() -> None:
    record = recorded("akash", AKASH_MINT)
    assert observe(cosmos_inflation.transform, record) == observe(
        cosmos_inflation.transform, record
    )


# --- bad items ----------------------------------------------------------------------

GOOD_POOL = {"not_bonded_tokens": "1", "bonded_tokens": "3"}


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"inflation": "-0.1"}, "LegacyDec"),
        ({"inflation": 0.12}, "LegacyDec"),
        ({"inflation": None}, "LegacyDec"),
        ({"inflation": "1.5"}, "not a fraction"),
        (
            {"inflation": "0.1", "pool": {"bonded_tokens": "1.5", "not_bonded_tokens": "1"}},
            "integer",
        ),
        (
            {"inflation": "0.1", "pool": {"bonded_tokens": "-1", "not_bonded_tokens": "1"}},
            "integer",
        ),
        (
            {"inflation": "0.1", "pool": {"bonded_tokens": "0", "not_bonded_tokens": "0"}},
            "whole > 0",
        ),
        (
            {"inflation": "0.1", "pool": GOOD_POOL, "params": {"community_tax": "1.5"}},
            "not a fraction",
        ),
    ],
)
def test_bad_values_are_rejections(item: dict[str, Any], reason: str) -> None:
    assert reason in rejection(cosmos_inflation.transform, joined_record("akash", item)).reason


def test_missing_fields_and_unknown_chains_are_rejections() -> None:
    missing = joined_record("akash", {"inflation": "0.1", "pool": {"bonded_tokens": "1"}})
    assert "not_bonded_tokens" in rejection(cosmos_inflation.transform, missing).reason
    unknown = joined_record("osmosis", {"inflation": "0.1"})
    assert "osmosis" in rejection(cosmos_inflation.transform, unknown).reason


# --- fetching -----------------------------------------------------------------------

CFG = collector.Config(chains=("akash",), attempts=2, wait_initial_s=0, wait_max_s=0)
URL = f"{CFG.base_url}/akash/cosmos/mint/v1beta1/inflation"


async def test_an_lcd_error_body_with_status_200_is_a_failed_fetch() -> None:
    error = {"code": 12, "message": "Not Implemented", "details": []}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=error)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(BadResponse, match="Not Implemented"):
            await fetch_json(client, URL, CFG, request=collector.INFLATION.request)


async def test_a_rate_limit_then_an_answer_succeeds() -> None:
    answers = [
        httpx.Response(429, json={"error": "rate limited"}),
        httpx.Response(200, json={"inflation": "0.12"}),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        fetched = await fetch_json(client, URL, CFG, request=collector.INFLATION.request)
    assert fetched.body == {"inflation": "0.12"}


async def test_collect_joins_a_chain_and_keeps_its_inflation_when_a_part_fails() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.endswith("/inflation"):
            return httpx.Response(200, json={"inflation": "0.120000000000000000"})
        if request.url.path.endswith("/pool"):
            return httpx.Response(200, json={"pool": GOOD_POOL})
        return httpx.Response(404, json={"code": 5, "message": "not found", "details": []})

    records: list[RawRecord] = []

    async def drain() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            async for record in collector.collect(client, CFG, "run"):
                records.append(record)  # the records before the failure are kept

    with pytest.raises(UpstreamRejected, match="distribution"):
        await drain()
    assert seen == [
        "/akash/cosmos/mint/v1beta1/inflation",
        "/akash/cosmos/staking/v1beta1/pool",
        "/akash/cosmos/distribution/v1beta1/params",
    ]
    (record,) = records
    assert record.endpoint == "/akash/cosmos/mint/v1beta1/inflation"
    assert orjson.loads(record.payload) == {
        "inflation": "0.120000000000000000",
        "pool": GOOD_POOL,
        "params": None,
    }
    obs = observe(cosmos_inflation.transform, record)
    assert (obs.apy_pct, obs.utilization_pct) == (12.0, 75.0)
