"""DefiLlama ``/pools`` items -> observations (APY split into base and reward, TVL).

Field notes from recorded responses: APYs are percent; ``apy`` is not always
``apyBase + apyReward`` (``apyBase`` may be null with ``apy`` set); records from
older API versions lack ``il7d``, ``apyBase7d``, ``apyMean30d`` and the volume
fields, which are therefore optional; token lists are null or lists.

History records (``/chart/{pool}`` points, from ``yieldstream backfill``) carry only
the figures and a time; the pool's protocol, chain, symbol and tokens come from its
``/pools`` item in ``ctx.listing``. A chart's ``il7d`` and ``apyBase7d`` are not
stored, as the snapshot's are not.

A pool's strategy comes from its protocol's DefiLlama category (the reference data
of ``defillama-protocols``) and its own fields (:mod:`transforms.classify`); without
the category it is a guess from the fields alone, ``strategy_guessed`` True and
``category`` None.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, cast

import msgspec

from transforms import Context, Result, classify, floor_hour, history_time, listed
from transforms.products import product_id
from transforms.units import iso_time
from yieldstream.contracts import (
    ObservationError,
    RawRecord,
    Strategy,
    Venue,
    make_observation,
)

SOURCE = "defillama-yields"
# The source whose reference data (protocol slug -> category) classifies the pools.
PROTOCOLS = "defillama-protocols"


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
    category = ctx.of(PROTOCOLS).get(item.project)
    il_risk = None if item.ilRisk is None else item.ilRisk.lower() == "yes"
    underlying = _tokens(item.underlyingTokens)
    rewards = _tokens(item.rewardTokens)
    strategy, guessed = _classify(category, item, il_risk, underlying, rewards)
    return {
        "source": SOURCE,
        "pool_id": item.pool,
        "product_id": product_id(item.project, item.chain, item.symbol, item.poolMeta),
        "protocol": item.project,
        "chain": item.chain,
        "symbol": item.symbol,
        "strategy": strategy,
        "strategy_guessed": guessed,
        "venue": Venue.DEFI,
        "category": category,
        "stablecoin": item.stablecoin,
        "il_risk": il_risk,
        "exposure": item.exposure,
        "pool_meta": item.poolMeta,
        "underlying_tokens": underlying,
        "reward_tokens": rewards,
    }


def _classify(
    category: str | None,
    item: Pool,
    il_risk: bool | None,
    underlying: list[str] | None,
    rewards: list[str] | None,
) -> tuple[Strategy, bool]:
    """The pool's strategy from its protocol's category and its own /pools fields.

    Always from the /pools item, also for a history point: every point of a pool
    gets the strategy of the listing it was backfilled with.
    """
    pool = classify.Pool(
        symbol=item.symbol,
        exposure=item.exposure.lower() if item.exposure else None,
        il_risk=il_risk,
        stablecoin=item.stablecoin,
        pool_meta=item.poolMeta,
        underlying=None if underlying is None else len(underlying),
        rewards=len(rewards or ()),
        apy_base=item.apyBase,
        apy_reward=item.apyReward,
    )
    return classify.classify(category, pool)
