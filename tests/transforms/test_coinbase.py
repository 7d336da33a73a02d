"""Coinbase cbETH: apy a fraction (x100 once), TVL in ETH from exact decimals."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from ingest import coinbase as collector
from tests.conftest import FETCHED_AT, raw
from tests.transforms import body_of, observe, rejection
from transforms import coinbase
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse

SOURCE = "coinbase"
LIVE = "wrapped-assets-CBETH-documented-shape.json"
LIST_2022 = "wrapped-assets-list-changelog-2022-example.json"
ENDPOINT = collector.ENDPOINTS[0]
SUPPLY = "314666.9334401934801646"
RATE = "1.0241755005866786"


def records_of(name: str) -> list[RawRecord]:
    body = body_of(SOURCE, name)
    return list(ENDPOINT.records(body, source=SOURCE, fetched_at=FETCHED_AT, run_id="test"))


def asset(text: str) -> RawRecord:
    return raw(SOURCE, text.encode(), endpoint="/wrapped-assets/CBETH")


def test_cbeth_pinned() -> None:
    # apy "0.0321" is a fraction: x 100 = 3.21 % (not 0.0321 %, not 321 %); it is
    # Coinbase's APY already, so no compounding. TVL: 314,666.93344019348 cbETH x
    # 1.0241755005866786 ETH/cbETH = 322,274.164... ETH (exact product, one float).
    (rec,) = records_of(LIVE)
    assert rec.native_id == "CBETH"
    obs = observe(coinbase.transform, rec)
    assert obs.apy_pct == pytest.approx(3.21, rel=1e-12)
    assert (obs.apy_base_pct, obs.apy_reward_pct) == (obs.apy_pct, 0.0)
    exact_tvl = coinbase.tvl_eth(SUPPLY, RATE)
    # Every digit of the 22 x 17 digit product (a default Decimal context keeps 28).
    assert exact_tvl == Decimal("322274.16407418523362130518197209529756")
    assert obs.tvl_tokens == float(exact_tvl)
    assert obs.tvl_tokens == pytest.approx(322274.164074185, rel=1e-12)
    assert obs.tvl_token == "ETH"
    assert obs.tvl_usd is None
    assert obs.product_id == "coinbase-wrapped-staked-eth:ethereum:cbeth"
    assert (obs.source, obs.pool_id, obs.protocol, obs.chain, obs.symbol) == (
        "coinbase",
        "cbeth",
        "coinbase-wrapped-staked-eth",
        "Ethereum",
        "CBETH",
    )
    assert (obs.strategy, obs.venue, obs.strategy_guessed) == (
        Strategy.STAKING,
        Venue.CEFI,
        False,
    )
    assert obs.observed_at == FETCHED_AT
    assert obs.underlying_tokens == ["0xBe9895146f7AF43049ca1c1AE358B0541Ea49704"]


def test_the_2022_list_form_has_no_apy_and_is_rejected_with_the_reason() -> None:
    body = body_of(SOURCE, LIST_2022)
    (item,) = body["wrapped_assets"]
    assert (item["circulating_supply"], item["conversion_rate"]) == (SUPPLY, RATE)
    rej = rejection(coinbase.transform, asset(json.dumps(item)))
    assert rej.stage == "validate"
    assert "no apy" in rej.reason


def test_the_list_form_is_not_the_single_object_endpoint() -> None:
    with pytest.raises(BadResponse, match="expected an object"):
        ENDPOINT.items([body_of(SOURCE, LIST_2022)], "u")


def test_huge_supplies_multiply_without_loss() -> None:
    supply = "123456789012345678901234.123456789012345678"  # beyond 2**53 and 28 digits
    tvl = coinbase.tvl_eth(supply, RATE)
    assert str(tvl) == "126441418687543097999769.2546222441889354970767473450850908"


def _asset(**fields: Any) -> str:
    return json.dumps(
        {
            "id": "CBETH",
            "circulating_supply": SUPPLY,
            "conversion_rate": RATE,
            "apy": "0.0321",
            **fields,
        }
    )


@pytest.mark.parametrize(
    ("text", "stage", "reason"),
    [
        (_asset(apy="3.21"), "validate", "is not a fraction"),  # percent sent
        (_asset(apy="-1.5"), "validate", "is not a fraction"),
        (_asset(apy="abc"), "validate", "unusable apy"),
        (_asset(apy="NaN"), "validate", "unusable apy"),
        (_asset(apy=0.0321), "decode", "Expected `str | null`, got `float`"),
        (_asset(conversion_rate="0.97"), "validate", "is not ETH per cbETH"),
        (_asset(conversion_rate="1024.1755"), "validate", "is not ETH per cbETH"),  # scaled
        (_asset(conversion_rate=""), "validate", "unusable conversion_rate"),
        (_asset(circulating_supply="-1"), "validate", "negative circulating_supply"),
        (_asset(circulating_supply="1e400x"), "validate", "unusable circulating_supply"),
        (_asset(id="CBBTC"), "validate", "not cbETH"),
        ('{"id": "CBETH", "apy": "0.03"}', "decode", "missing required field"),
    ],
)
def test_bad_objects_are_rejected_with_a_reason(text: str, stage: str, reason: str) -> None:
    rej = rejection(coinbase.transform, asset(text))
    assert rej.stage == stage
    assert reason in rej.reason


def test_a_negative_apy_is_a_loss_not_an_error() -> None:
    assert observe(coinbase.transform, asset(_asset(apy="-0.001"))).apy_pct == pytest.approx(-0.1)


def test_the_same_record_twice_gives_the_same_observation() -> None:
    (rec,) = records_of(LIVE)
    assert observe(coinbase.transform, rec) == observe(coinbase.transform, rec)
