"""Jito JitoSOL daily stake-pool stats -> staking observations.

Each record is one day of ``/api/v1/stake_pool_stats`` (see :mod:`ingest.jito`):
``{"date": ISO, "apy": <fraction>, "tvl": <lamports>, "supply": <JitoSOL>, ...}``.

- ``apy`` is already an APY (Jito annualises the growth of the JitoSOL/SOL rate,
  which compounds every epoch as rewards are restaked): only made percent, no
  compounding is applied here. It is what a holder earns, after the pool's fees.
- ``tvl`` is lamports, an integer above 2**53: scaled exactly to SOL
  (``tvl_tokens``, ``tvl_token`` SOL), never through a float first. No USD
  figure: the API gives no SOL price.
- ``supply`` (JitoSOL) checks the TVL's unit: SOL per JitoSOL must be a sane
  exchange rate (1.22455 in August 2025), not 1e9 off.

The day's own ``date`` is the observation time, so the snapshot and a backfill of
the same day share a key. A day dated before JitoSOL, or after its fetch (beyond
:data:`CLOCK_SKEW`), is rejected.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import msgspec

from transforms import CLOCK_SKEW, Context, Result
from transforms.products import product_id
from transforms.units import (
    LAMPORTS_PER_SOL,
    base_units,
    exact,
    fraction_to_pct,
    iso_time,
    to_float,
)
from yieldstream.contracts import ObservationError, RawRecord, Strategy, Venue, make_observation

SOURCE = "jito"
JITOSOL = "J1toso1uCk3RLmjorhTtrVwY9HJ7X8V9yYac6Y7kGCPn"
SOL = "So11111111111111111111111111111111111111112"
# The same product as DefiLlama's Jito pool (project jito-liquid-staking, JITOSOL).
PRODUCT = product_id("jito", "Solana", "JITOSOL")
LAUNCHED = datetime(2022, 9, 1, tzinfo=UTC)  # the JitoSOL stake pool began in late 2022
# SOL per JitoSOL starts at 1 and grows by the staking yield: outside these bounds
# the TVL or the supply is in another unit.
RATE_RANGE = (Decimal(1), Decimal(3))
APY_MAX = 1.0  # a fraction: above 100 % a year is a percent sent as a fraction


class Day(msgspec.Struct):
    date: str
    apy: float
    tvl: int | str | None = None  # lamports: an int (or digit string), never a float
    supply: float | None = None


_decode = msgspec.json.Decoder(Day).decode


def transform(record: RawRecord, ctx: Context) -> Result:
    day = _decode(record.payload)
    observed_at = iso_time(day.date)
    if observed_at is None:
        raise ObservationError(f"unreadable date {day.date!r}: expected ISO-8601 with a zone")
    if not LAUNCHED <= observed_at <= record.fetched_at + CLOCK_SKEW:
        raise ObservationError(
            f"day {observed_at.isoformat()} is not between JitoSOL's launch "
            f"({LAUNCHED.date()}) and its fetch ({record.fetched_at.isoformat()})"
        )
    if day.apy > APY_MAX:
        raise ObservationError(
            f"apy {day.apy!r} is above {APY_MAX:g} (100 % a year): a percent, not a fraction?"
        )
    try:
        apy = fraction_to_pct(day.apy)
        tvl_sol = None if day.tvl is None else base_units(day.tvl, LAMPORTS_PER_SOL)
    except ValueError as exc:
        raise ObservationError(f"unusable day: {exc}") from None
    if tvl_sol is not None and day.supply is not None and day.supply > 0:
        rate = tvl_sol / exact(day.supply)
        if not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
            raise ObservationError(
                f"tvl {day.tvl} lamports over supply {day.supply!r} JitoSOL is {rate:.6g} SOL "
                f"per JitoSOL, outside {RATE_RANGE[0]}..{RATE_RANGE[1]}: a unit error"
            )
    return [
        make_observation(
            {
                "source": SOURCE,
                "pool_id": "jitosol",
                "product_id": PRODUCT,
                "observed_at": observed_at,
                "protocol": "jito",
                "chain": "Solana",
                "symbol": "JITOSOL",
                "strategy": Strategy.STAKING,
                "strategy_guessed": False,
                "venue": Venue.DEFI,
                "category": "Liquid Staking",
                "apy_pct": apy,
                "apy_base_pct": apy,
                "apy_reward_pct": 0.0,
                "tvl_tokens": None if tvl_sol is None else to_float(tvl_sol),
                "tvl_token": None if tvl_sol is None else "SOL",
                "underlying_tokens": [SOL],
            }
        )
    ]
