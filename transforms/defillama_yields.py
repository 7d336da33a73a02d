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
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import lru_cache
from itertools import groupby
from operator import attrgetter
from typing import Any, cast

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from sinks.tables import OBS_FIELDS, OBS_SCHEMA, TS, observations_columns
from transforms import CLOCK_SKEW, Context, Result, classify, floor_hour, history_time, listed
from transforms.products import product_id
from transforms.units import PLAIN_UTC_TIME, iso_time
from yieldstream.contracts import (
    APY_MAX_PCT,
    APY_MIN_PCT,
    ObservationError,
    RawRecord,
    Strategy,
    Venue,
    make_observation,
)
from yieldstream.items import too_deep, too_deep_each

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
    return _described(item, ctx.of(PROTOCOLS).get(item.project))


def _described(item: Pool, category: str | None) -> dict[str, Any]:
    """:func:`_fields`, with the protocol's category in hand."""
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


# --- /pools snapshots as whole columns ------------------------------------------------

# What a snapshot row has of its own; the rest is its pool's (:func:`_pool_values`).
_OWN = ("observed_at", "apy_pct", "apy_base_pct", "apy_reward_pct", "tvl_usd", "outlier")
_SHARED = tuple(name for name in OBS_FIELDS if name not in _OWN)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A pool as its snapshot rows share it: its /pools item's fields beside the figures,
# whether it has no apyBase and whether its apyReward is non-zero (all that
# classify reads of the APY split), and its protocol's category.
_PoolKey = tuple[Any, ...]


def columns(records: Sequence[RawRecord], ctx: Context) -> tuple[pa.Table, list[int]]:
    """A batch's observations as whole columns, and the records taken (``Source.columns``).

    /pools snapshot items through :func:`snapshot_columns`, chart points through
    :func:`history_columns`; the rows in the records' order.
    """
    table, taken = snapshot_columns(records, ctx)
    if all(r.kind != "history" for r in records):
        return table, taken
    charts, charted = history_columns(records, ctx)
    if not taken:
        return charts, charted
    both = pa.concat_tables([table, charts])
    return both.take(pc.sort_indices(pa.array(taken + charted))), sorted(taken + charted)


def snapshot_columns(records: Sequence[RawRecord], ctx: Context) -> tuple[pa.Table, list[int]]:
    """The observations of a batch's /pools items as whole columns, and the records taken.

    What :func:`transform` does item by item, with each pool's own fields (ids,
    names, tokens, strategy, product id) validated once for as long as they do not
    change (:func:`_pool_values`, cached across batches: a poll lists the same pools
    every hour) and the figures checked as columns. An item this cannot take as
    surely as :func:`transform` would (undecodable, nested too deep, a field or a
    figure that validation refuses) is left out of the indices: the caller runs
    :func:`transform` on it, which stores it or says why not.
    """
    categories = ctx.of(PROTOCOLS)
    taken: list[int] = []
    shared: list[tuple[Any, ...]] = []
    moments: list[int] = []
    apy: list[float | None] = []
    base: list[float | None] = []
    reward: list[float | None] = []
    tvl: list[float | None] = []
    outlier: list[bool | None] = []
    micros: dict[datetime, int] = {}
    for i, record in enumerate(records):
        if record.kind == "history" or record.problem is not None or too_deep(record.payload):
            continue
        try:
            item = _decode(record.payload)
        except msgspec.MsgspecError:
            continue
        values = _pool_values(_pool_key(item, categories.get(item.project)))
        if values is None:
            continue
        moment = micros.get(record.fetched_at)
        if moment is None:
            hour = floor_hour(record.fetched_at)
            moment = micros[record.fetched_at] = (hour - _EPOCH) // timedelta(microseconds=1)
        taken.append(i)
        shared.append(values)
        moments.append(moment)
        apy.append(_apy(item.apy, item.apyBase, item.apyReward))
        base.append(item.apyBase)
        reward.append(item.apyReward)
        tvl.append(item.tvlUsd)
        outlier.append(item.outlier)
    if not taken:
        return OBS_SCHEMA.empty_table(), []
    figures = {
        "apy_pct": pa.array(apy, pa.float64()),
        "apy_base_pct": pa.array(base, pa.float64()),
        "apy_reward_pct": pa.array(reward, pa.float64()),
        "tvl_usd": pa.array(tvl, pa.float64()),
    }
    own = {
        "observed_at": pa.array(moments, pa.int64()).cast(TS),
        "outlier": pa.array(outlier, pa.bool_()),
        **figures,
    }
    fields = dict(zip(_SHARED, zip(*shared, strict=True), strict=True))
    arrays = [
        own[name] if name in own else pa.array(fields[name], field.type)
        for name, field in zip(OBS_FIELDS, OBS_SCHEMA, strict=True)
    ]
    table = pa.Table.from_arrays(arrays, schema=OBS_SCHEMA)
    ok = pc.or_(pc.is_valid(figures["apy_pct"]), pc.is_valid(figures["tvl_usd"]))
    for name in ("apy_pct", "apy_base_pct", "apy_reward_pct"):
        ok = pc.and_(ok, _null_or_within(figures[name], APY_MIN_PCT, APY_MAX_PCT))
    ok = pc.and_(ok, _null_or_within(figures["tvl_usd"], 0.0, _USD_MAX))
    if pc.all(ok).as_py():
        return table, taken
    return table.filter(ok), [i for i, good in zip(taken, ok.to_pylist(), strict=True) if good]


def _pool_key(item: Pool, category: str | None) -> _PoolKey:
    underlying, rewards = item.underlyingTokens, item.rewardTokens
    return (
        item.pool,
        item.chain,
        item.project,
        item.symbol,
        None if underlying is None else tuple(underlying),
        None if rewards is None else tuple(rewards),
        item.stablecoin,
        item.ilRisk,
        item.exposure,
        item.poolMeta,
        item.apyBase is None,
        bool(item.apyReward),
        category,
    )


@lru_cache(maxsize=65536)  # a poll lists the same pools every hour
def _pool_values(key: _PoolKey) -> tuple[Any, ...] | None:
    """A pool's shared observation values (:data:`_SHARED`), validated as
    :func:`transform` validates them; None where validation refuses them."""
    pool, chain, project, symbol, underlying, rewards, stable, il_risk, exposure, meta = key[:10]
    no_base, reward_paid, category = key[10:]
    item = Pool(
        pool=pool,
        chain=chain,
        project=project,
        symbol=symbol,
        underlyingTokens=None if underlying is None else list(underlying),
        rewardTokens=None if rewards is None else list(rewards),
        stablecoin=stable,
        ilRisk=il_risk,
        exposure=exposure,
        poolMeta=meta,
        # Stand-ins with what classify reads of the split: a null base, a paid reward.
        apyBase=None if no_base else 0.0,
        apyReward=1.0 if reward_paid else None,
    )
    try:
        fields = _described(item, category)
        fields.update({"observed_at": _EPOCH, "tvl_usd": 0.0})
        values = msgspec.structs.asdict(make_observation(fields))
    except Exception:  # noqa: BLE001 - transform says why, item by item
        return None
    return tuple(
        value.value if isinstance(value, Enum) else value
        for value in (values[name] for name in _SHARED)
    )


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
    plain = pc.match_substring_regex(stamps, PLAIN_UTC_TIME)
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
