"""Rocket Pool's rETH APR (a plain percent string) -> APY compounded daily."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.conftest import FETCHED_AT, raw
from tests.transforms import observe, records_of, rejection
from transforms import rocket_pool
from transforms.units import apr_to_apy_pct, exact
from yieldstream.contracts import RawRecord, Strategy, Venue

SOURCE = "rocket-pool"
FIXTURE = "apr-built-from-defillama-reth-row.json"


def answer(text: str, *, fetched_at: datetime = FETCHED_AT) -> RawRecord:
    return raw(SOURCE, text.encode(), endpoint="/api/apr", native_id="#0", fetched_at=fetched_at)


def daily_apy(apr_pct: float) -> float:
    """APR -> APY with daily compounding, written out independently."""
    return ((1 + apr_pct / 100 / 365) ** 365 - 1) * 100


def test_pinned_documented_value() -> None:
    # yearlyAPR "2.34584" is DefiLlama's rETH apyBase (Number(yearlyAPR), its own page
    # figure): 2.34584 % APR; / 365 = 0.0064270 % a day; compounded 365 times:
    # (1 + 0.0234584 / 365) ** 365 - 1 = 0.0237349 -> 2.37349 % APY.
    # Read as a fraction it would be 234.6 % (100x); not divided by 365, absurd (365x).
    (rec,) = records_of(SOURCE, FIXTURE)
    assert rec.native_id == "#0"
    obs = observe(rocket_pool.transform, rec)
    assert obs.apy_pct == pytest.approx(2.37349, abs=1e-5)
    assert obs.apy_pct == pytest.approx(daily_apy(2.34584), rel=1e-9)
    assert obs.apy_pct == apr_to_apy_pct(2.34584, 365)
    assert obs.apy_base_pct == obs.apy_pct
    assert obs.apy_reward_pct == 0.0
    assert obs.tvl_usd is None


def test_identity_matches_defillama() -> None:
    obs = observe(rocket_pool.transform, records_of(SOURCE, FIXTURE)[0])
    assert obs.product_id == "rocket-pool:ethereum:reth"
    assert (obs.source, obs.pool_id, obs.protocol) == ("rocket-pool", "reth", "rocket-pool")
    assert (obs.chain, obs.symbol, obs.category) == ("Ethereum", "RETH", "Liquid Staking")
    assert obs.strategy is Strategy.STAKING
    assert obs.venue is Venue.DEFI
    assert obs.strategy_guessed is False
    assert obs.underlying_tokens == ["0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"]


def test_observed_at_is_the_fetch_hour() -> None:
    obs = observe(rocket_pool.transform, records_of(SOURCE, FIXTURE)[0])
    assert obs.observed_at == datetime(2026, 3, 12, 12, tzinfo=UTC)  # fetched 12:34:56


def test_idempotent_and_one_key_per_hour() -> None:
    text = '{"yearlyAPR": "2.34584"}'
    first = observe(rocket_pool.transform, answer(text))
    assert observe(rocket_pool.transform, answer(text)) == first
    later = observe(
        rocket_pool.transform, answer(text, fetched_at=FETCHED_AT + timedelta(minutes=20))
    )
    assert later == first
    next_hour = FETCHED_AT + timedelta(minutes=30)
    assert observe(rocket_pool.transform, answer(text, fetched_at=next_hour)).observed_at == (
        first.observed_at + timedelta(hours=1)
    )


def test_long_decimal_string_is_parsed_without_loss() -> None:
    text = "2.3458412345678901234567890"
    assert exact(text) == Decimal(text)  # every digit kept before the one rounding
    obs = observe(rocket_pool.transform, answer(json.dumps({"yearlyAPR": text})))
    assert obs.apy_pct == apr_to_apy_pct(float(text), 365)


@pytest.mark.parametrize(("text", "apr"), [("-0.5", -0.5), (" 3.1 ", 3.1), ("0", 0.0)])
def test_small_negative_and_padded_values_are_accepted(text: str, apr: float) -> None:
    obs = observe(rocket_pool.transform, answer(json.dumps({"yearlyAPR": text})))
    assert obs.apy_pct == pytest.approx(daily_apy(apr), rel=1e-9, abs=1e-15)


def test_extra_fields_are_ignored() -> None:
    obs = observe(rocket_pool.transform, answer('{"yearlyAPR": "2.34584", "note": null}'))
    assert obs.apy_pct == pytest.approx(2.37349, abs=1e-5)


@pytest.mark.parametrize(
    ("text", "stage", "reason"),
    [
        ('{"yearlyAPR": 2.34584}', "decode", "Expected `str`, got `float` - at `$.yearlyAPR`"),
        ('{"yearlyAPR": null}', "decode", "Expected `str`, got `null` - at `$.yearlyAPR`"),
        ("{}", "decode", "missing required field `yearlyAPR`"),
        ('["2.34584"]', "decode", "Expected `object`, got `array`"),
        ('{"yearlyAPR": "2.34584%"}', "validate", "unusable yearlyAPR"),
        ('{"yearlyAPR": ""}', "validate", "unusable yearlyAPR"),
        ('{"yearlyAPR": "NaN"}', "validate", "unusable yearlyAPR"),
        ('{"yearlyAPR": "Infinity"}', "validate", "unusable yearlyAPR"),
        ('{"yearlyAPR": "two"}', "validate", "unusable yearlyAPR"),
        ('{"yearlyAPR": "1e400"}', "validate", "does not fit a float"),
        # Basis points (234.584) or a per-mille figure: no ETH staking APR.
        ('{"yearlyAPR": "234.584"}', "validate", "outside (-100.0, 100.0) %"),
        ('{"yearlyAPR": "100"}', "validate", "a unit error upstream"),
        ('{"yearlyAPR": "-100"}', "validate", "a unit error upstream"),
    ],
)
def test_bad_answers_are_rejected_with_a_reason(text: str, stage: str, reason: str) -> None:
    rej = rejection(rocket_pool.transform, answer(text))
    assert rej.stage == stage
    assert reason in rej.reason
