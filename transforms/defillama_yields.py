"""DefiLlama ``/pools`` items -> observations (APY split into base and reward, TVL).

Field notes from recorded responses: APYs are percent; ``apy`` is not always
``apyBase + apyReward`` (``apyBase`` may be null with ``apy`` set); records from
older API versions lack ``il7d``, ``apyBase7d``, ``apyMean30d`` and the volume
fields, which are therefore optional; token lists are null or lists.
"""

from __future__ import annotations

from typing import cast

import msgspec

from transforms import Context, Result, floor_hour
from transforms.classify import strategy_for
from yieldstream.contracts import RawRecord, Venue, make_observation

SOURCE = "defillama-yields"


class Pool(msgspec.Struct, kw_only=True):
    pool: str
    chain: str
    project: str
    symbol: str
    tvlUsd: float | None = None
    apy: float | None = None
    apyBase: float | None = None
    apyReward: float | None = None
    rewardTokens: list[str | None] | None = None
    underlyingTokens: list[str | None] | None = None
    stablecoin: bool | None = None
    ilRisk: str | None = None
    exposure: str | None = None
    poolMeta: str | None = None
    outlier: bool | None = None


_decode = msgspec.json.Decoder(Pool).decode


def _tokens(values: list[str | None] | None) -> list[str] | None:
    """Token addresses without the null or empty entries some pools list."""
    if values is None or (None not in values and "" not in values):
        return cast(list[str], values)
    return [v for v in values if v]


def transform(record: RawRecord, ctx: Context) -> Result:
    item = _decode(record.payload)
    apy = item.apy
    if apy is None and (item.apyBase is not None or item.apyReward is not None):
        apy = (item.apyBase or 0.0) + (item.apyReward or 0.0)
    category = ctx.categories.get(item.project)
    il_risk = None if item.ilRisk is None else item.ilRisk.lower() == "yes"
    return [
        make_observation(
            {
                "source": SOURCE,
                "pool_id": item.pool,
                "observed_at": floor_hour(record.fetched_at),
                "protocol": item.project,
                "chain": item.chain,
                "symbol": item.symbol,
                "strategy": strategy_for(category),
                "venue": Venue.DEFI,
                "category": category,
                "apy_pct": apy,
                "apy_base_pct": item.apyBase,
                "apy_reward_pct": item.apyReward,
                "tvl_usd": item.tvlUsd,
                "stablecoin": item.stablecoin,
                "il_risk": il_risk,
                "exposure": item.exposure,
                "outlier": item.outlier,
                "pool_meta": item.poolMeta,
                "underlying_tokens": _tokens(item.underlyingTokens),
                "reward_tokens": _tokens(item.rewardTokens),
            }
        )
    ]
