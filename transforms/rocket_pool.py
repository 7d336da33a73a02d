"""Rocket Pool's rETH APR -> a staking observation (APR converted to APY, daily).

The answer is ``{"yearlyAPR": "2.34584"}``: a percent as a plain decimal string,
parsed exactly (:func:`~transforms.units.exact`) and rounded to a float once. Rocket
Pool computes it from the rETH/ETH exchange rate's change over 7 days, annualised
without compounding: an APR. rETH accrues when the Oracle DAO submits network
balances, which moves its exchange rate about once every 24 hours (Rocket Pool's
docs), so it compounds daily: ``n = DAILY`` (365). DefiLlama's ``rocket-pool``
row shows the same figure uncompounded as ``apyBase``; ours is the compounded APY.

The answer carries no time, so the observation is dated by its fetch, floored to
the hour like DefiLlama's snapshots: a re-fetch within the hour is the same key.
An APR of 100 % or more, or below -100 %, is no ETH staking figure but a unit
error upstream, and is rejected.
"""

from __future__ import annotations

import msgspec

from transforms import Context, Result, floor_hour
from transforms.products import product_id
from transforms.units import DAILY, apr_to_apy_pct, exact, to_float
from yieldstream.contracts import ObservationError, RawRecord, Strategy, Venue, make_observation

SOURCE = "rocket-pool"
RETH = "0xae78736Cd615f374D3085123A210448E74Fc6393"
# What rETH is staked from (ETH), spelt as in DefiLlama's rETH row.
WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
# The same product as DefiLlama's Rocket Pool rETH pool (project rocket-pool, RETH).
PRODUCT = product_id("rocketpool", "Ethereum", "RETH")
MAX_APR_PCT = 100.0  # ETH staking pays a few percent: 100 % is a unit error


class Apr(msgspec.Struct):
    yearlyAPR: str  # percent, a decimal string without '%'


_decode = msgspec.json.Decoder(Apr).decode


def transform(record: RawRecord, ctx: Context) -> Result:
    answer = _decode(record.payload)
    try:
        apr = to_float(exact(answer.yearlyAPR))
    except ValueError as exc:
        raise ObservationError(f"unusable yearlyAPR: {exc}") from None
    if not -MAX_APR_PCT < apr < MAX_APR_PCT:
        raise ObservationError(
            f"yearlyAPR {answer.yearlyAPR!r} % is outside (-{MAX_APR_PCT}, {MAX_APR_PCT}) %: "
            "a unit error upstream (basis points or a per-mille figure?)"
        )
    apy = apr_to_apy_pct(apr, DAILY)
    return [
        make_observation(
            {
                "source": SOURCE,
                "pool_id": "reth",
                "product_id": PRODUCT,
                "observed_at": floor_hour(record.fetched_at),
                "protocol": "rocket-pool",
                "chain": "Ethereum",
                "symbol": "RETH",
                "strategy": Strategy.STAKING,
                "strategy_guessed": False,
                "venue": Venue.DEFI,
                "category": "Liquid Staking",
                "apy_pct": apy,
                "apy_base_pct": apy,
                "apy_reward_pct": 0.0,
                "underlying_tokens": [WETH],
            }
        )
    ]
