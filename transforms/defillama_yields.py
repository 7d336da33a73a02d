"""DefiLlama ``/pools`` items -> observations (APY split into base and reward, TVL).

Field notes from recorded responses: APYs are percent; ``apy`` is not always
``apyBase + apyReward`` (``apyBase`` may be null with ``apy`` set); records from
older API versions lack ``il7d``, ``apyBase7d``, ``apyMean30d`` and the volume
fields, which are therefore optional; token lists are null or lists.

History records (``/chart/{pool}`` points, from ``yieldstream backfill``) carry only
the figures and a time; the pool's protocol, chain, symbol and tokens come from its
``/pools`` item in ``ctx.listing``. A chart's ``il7d`` and ``apyBase7d`` are not
stored, as the snapshot's are not.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, cast

import msgspec

from transforms import Context, Result, floor_hour, history_time, listed
from transforms.classify import strategy_for
from transforms.products import product_id
from transforms.units import iso_time
from yieldstream.contracts import ObservationError, RawRecord, Venue, make_observation

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


class ChartPoint(msgspec.Struct, kw_only=True):
    timestamp: str
    tvlUsd: float | None = None
    apy: float | None = None
    apyBase: float | None = None
    apyReward: float | None = None


_decode_point = msgspec.json.Decoder(ChartPoint).decode
CHART = "/chart/"


@lru_cache(maxsize=256)  # a batch of history holds the points of few pools
def _pool(payload: bytes) -> Pool:
    return _decode(payload)


def _tokens(values: list[str | None] | None) -> list[str] | None:
    """Token addresses without the null or empty entries some pools list."""
    if values is None or (None not in values and "" not in values):
        return cast(list[str], values)
    return [v for v in values if v]


def transform(record: RawRecord, ctx: Context) -> Result:
    if record.kind == "history":
        return _history(record, ctx)
    item = _decode(record.payload)
    apy = _apy(item.apy, item.apyBase, item.apyReward)
    fields = _fields(item, ctx)
    fields.update(
        {
            "observed_at": floor_hour(record.fetched_at),
            "apy_pct": apy,
            "apy_base_pct": item.apyBase,
            "apy_reward_pct": item.apyReward,
            "tvl_usd": item.tvlUsd,
            "outlier": item.outlier,
        }
    )
    return [make_observation(fields)]


def _history(record: RawRecord, ctx: Context) -> Result:
    point = _decode_point(record.payload)
    pool_id = record.endpoint.removeprefix(CHART)
    item = _pool(listed(ctx, pool_id, "/pools", "protocol and chain"))
    if item.pool != pool_id:
        raise ObservationError(f"the /pools item given for pool {pool_id} is pool {item.pool}")
    fields = _fields(item, ctx)
    fields.update(
        {
            "observed_at": history_time(iso_time(point.timestamp), point.timestamp, record),
            "apy_pct": _apy(point.apy, point.apyBase, point.apyReward),
            "apy_base_pct": point.apyBase,
            "apy_reward_pct": point.apyReward,
            "tvl_usd": point.tvlUsd,
        }
    )
    return [make_observation(fields)]


def _apy(apy: float | None, base: float | None, reward: float | None) -> float | None:
    if apy is None and (base is not None or reward is not None):
        return (base or 0.0) + (reward or 0.0)
    return apy


def _fields(item: Pool, ctx: Context) -> dict[str, Any]:
    """What a pool's /pools item says of it, beside the figures and the time."""
    category = ctx.categories.get(item.project)
    return {
        "source": SOURCE,
        "pool_id": item.pool,
        "product_id": product_id(item.project, item.chain, item.symbol, item.poolMeta),
        "protocol": item.project,
        "chain": item.chain,
        "symbol": item.symbol,
        "strategy": strategy_for(category),
        "venue": Venue.DEFI,
        "category": category,
        "stablecoin": item.stablecoin,
        "il_risk": None if item.ilRisk is None else item.ilRisk.lower() == "yes",
        "exposure": item.exposure,
        "pool_meta": item.poolMeta,
        "underlying_tokens": _tokens(item.underlyingTokens),
        "reward_tokens": _tokens(item.rewardTokens),
    }
