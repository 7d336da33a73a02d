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

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from itertools import groupby
from operator import attrgetter
from typing import Any, cast

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from sinks.tables import OBS_SCHEMA, TS, observations_columns
from transforms import CLOCK_SKEW, Context, Result, classify, floor_hour, history_time, listed
from transforms.products import product_id
from transforms.units import iso_time
from yieldstream.contracts import (
    APY_MAX_PCT,
    APY_MIN_PCT,
    ObservationError,
    RawRecord,
    Strategy,
    Venue,
    make_observation,
)
from yieldstream.items import too_deep_each

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
_decode_points = msgspec.json.Decoder(list[ChartPoint]).decode
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


# A chart point time both ``iso_time`` and Arrow read alike: UTC, ``Z``, at most
# microseconds. Any other (offsets, nanoseconds, no zone) is read one point at a time.
_PLAIN_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$"
_USD_MAX = 1e15  # yieldstream.contracts.Usd
_FIGURES = ("apy_base_pct", "apy_reward_pct", "tvl_usd")


def history_columns(records: Sequence[RawRecord], ctx: Context) -> tuple[pa.Table, list[int]]:
    """The observations of a batch's chart points as whole columns, and the records taken.

    What :func:`transform` does point by point, done once per fetch of a pool: its
    /pools item read and classified once, the points' figures and times checked and
    turned into Arrow columns (times parsed by Arrow). A point this cannot take as
    surely as :func:`transform` would (an unusual time, a figure out of range, an
    undecodable item, a pool without its listing) is left out of the indices: the
    caller runs :func:`transform` on it, which stores it or says why not.
    """
    tables: list[pa.Table] = []
    taken: list[int] = []
    start = 0
    for (kind, endpoint, fetched_at), run in groupby(map(_FETCH_OF, records)):
        indices = list(range(start, start := start + sum(1 for _ in run)))
        if kind != "history":
            continue
        got = _chart_columns(records, indices, endpoint, fetched_at, ctx)
        if got is not None:
            tables.append(got[0])
            taken.extend(got[1])
    table = pa.concat_tables(tables) if tables else OBS_SCHEMA.empty_table()
    return table, taken


_FETCH_OF = attrgetter("kind", "endpoint", "fetched_at")


def _chart_columns(
    records: Sequence[RawRecord],
    indices: list[int],
    endpoint: str,
    fetched_at: datetime,
    ctx: Context,
) -> tuple[pa.Table, list[int]] | None:
    """One fetch's points as columns (None: every point is left to :func:`transform`)."""
    pool_id = endpoint.removeprefix(CHART)
    payload = ctx.listing.get(pool_id)
    if payload is None or not endpoint.startswith(CHART):
        return None
    try:
        item = _pool(payload)
        fields = _fields(item, ctx)
        # The pool's own fields, validated once as transform validates them per point.
        same = msgspec.structs.asdict(
            make_observation({**fields, "observed_at": floor_hour(fetched_at), "tvl_usd": 0.0})
        )
    except Exception:  # noqa: BLE001 - transform says why, point by point
        return None
    if item.pool != pool_id:
        return None
    kept, points = _chart_points(records, indices)
    if not points:
        return None
    stamps = pa.array([p.timestamp for p in points], pa.string())
    plain = pc.match_substring_regex(stamps, _PLAIN_TIME)
    if not pc.all(plain).as_py():
        stamps = pc.if_else(plain, stamps, "1970-01-01T00:00:00Z")
    moments = stamps.cast(TS)
    base = pa.array([p.apyBase for p in points], pa.float64())
    reward = pa.array([p.apyReward for p in points], pa.float64())
    tvl = pa.array([p.tvlUsd for p in points], pa.float64())
    apy = pa.array([p.apy for p in points], pa.float64())
    split = pc.and_(pc.is_null(apy), pc.or_(pc.is_valid(base), pc.is_valid(reward)))
    summed = pc.add(pc.fill_null(base, 0.0), pc.fill_null(reward, 0.0))
    apy = pc.if_else(split, summed, apy)
    ok = pc.and_(plain, pc.less_equal(moments, pa.scalar(fetched_at + CLOCK_SKEW, TS)))
    for column in (apy, base, reward):
        ok = pc.and_(ok, _null_or_within(column, APY_MIN_PCT, APY_MAX_PCT))
    ok = pc.and_(ok, _null_or_within(tvl, 0.0, _USD_MAX))
    ok = pc.and_(ok, pc.or_(pc.is_valid(apy), pc.is_valid(tvl)))
    varying = {
        "observed_at": pc.floor_temporal(moments, unit="hour"),
        "apy_pct": apy,
        "apy_base_pct": base,
        "apy_reward_pct": reward,
        "tvl_usd": tvl,
    }
    for name in ("observed_at", *_FIGURES):
        same.pop(name, None)
    table = observations_columns(len(points), same, varying)
    if pc.all(ok).as_py():
        return table, kept
    return table.filter(ok), [i for i, good in zip(kept, ok.to_pylist(), strict=True) if good]


def _chart_points(
    records: Sequence[RawRecord], indices: list[int]
) -> tuple[list[int], list[ChartPoint]]:
    """The points of ``indices`` that decode, and their indices.

    One decode of them all as a JSON array (a fetch's points are thousands); point
    by point only when that fails, to leave out just the points that cannot be read.
    """
    usable = [i for i in indices if records[i].problem is None]
    texts = [records[i].payload for i in usable]
    deep = too_deep_each(texts)
    if any(deep):
        usable = [i for i, d in zip(usable, deep, strict=True) if not d]
        texts = [records[i].payload for i in usable]
    try:
        return usable, _decode_points(b"[" + b",".join(texts) + b"]")
    except msgspec.MsgspecError:
        pass
    kept: list[int] = []
    points: list[ChartPoint] = []
    for i in usable:
        try:
            points.append(_decode_point(records[i].payload))
        except msgspec.MsgspecError:
            continue
        kept.append(i)
    return kept, points


def _null_or_within(column: pa.Array, low: float, high: float) -> pa.Array:
    inside = pc.and_(pc.greater_equal(column, low), pc.less_equal(column, high))
    return pc.fill_null(inside, True)
