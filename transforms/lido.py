"""Lido stETH APR points -> staking observations (APR converted to APY).

Each point is ``{"timeUnix": <seconds>, "apr": <percent>}``; the point's own time is
the observation time, so the ``/last`` point and the same point in ``/sma`` share a
key and are stored once. stETH rewards accrue daily, hence daily compounding.

A point dated before stETH existed, or after the response carrying it was fetched
(beyond :data:`CLOCK_SKEW`), is a unit or clock error upstream and is rejected.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from transforms import CLOCK_SKEW, Context, Result
from transforms.products import product_id
from transforms.units import DAILY, apr_to_apy_pct
from yieldstream.contracts import ObservationError, RawRecord, Strategy, Venue, make_observation

SOURCE = "lido"
STETH = "0xae7ab96520DE3A18E5e111B5EaAb095312D7fE84"
# The same product as DefiLlama's Lido stETH pool (project lido, symbol STETH).
PRODUCT = product_id("lido", "Ethereum", "STETH")
LAUNCHED = datetime(2020, 12, 1, tzinfo=UTC)  # stETH went live in December 2020


class AprPoint(msgspec.Struct):
    timeUnix: int
    apr: float


_decode = msgspec.json.Decoder(AprPoint).decode


def transform(record: RawRecord, ctx: Context) -> Result:
    point = _decode(record.payload)
    try:
        observed_at = datetime.fromtimestamp(point.timeUnix, UTC)
        apy = apr_to_apy_pct(point.apr, DAILY)
    except (ValueError, OverflowError, OSError) as exc:
        raise ObservationError(f"unusable APR point: {exc}") from None
    if not LAUNCHED <= observed_at <= record.fetched_at + CLOCK_SKEW:
        raise ObservationError(
            f"APR point time {observed_at.isoformat()} is not between stETH's launch "
            f"({LAUNCHED.date()}) and its fetch ({record.fetched_at.isoformat()})"
        )
    return [
        make_observation(
            {
                "source": SOURCE,
                "pool_id": "steth",
                "product_id": PRODUCT,
                "observed_at": observed_at,
                "protocol": "lido",
                "chain": "Ethereum",
                "symbol": "STETH",
                "strategy": Strategy.STAKING,
                "strategy_guessed": False,
                "venue": Venue.DEFI,
                "category": "Liquid Staking",
                "apy_pct": apy,
                "apy_base_pct": apy,
                "apy_reward_pct": 0.0,
                "underlying_tokens": [STETH],
            }
        )
    ]
