"""DefiLlama ``/protocols`` rows -> one protocol-level TVL observation per protocol.

These are not products (no yield): their ``level`` is ``protocol`` (the total) or
``protocol_chain`` (one chain's part), so they are read from ``protocol_tvl``, never
from ``latest_yields``.

``tvl`` may be null or 0; ``category`` names the protocol type and is kept as
``category`` beside the mapped ``strategy``. The protocol's ``slug`` is its pool id
(it is what ``/pools`` items name in ``project``).

History records (``/protocol/{slug}`` points, from ``yieldstream backfill``) are
named ``tvl@<date>`` for the protocol's total, which continues the snapshot's row
(pool id ``<slug>``), and ``<chain>@<date>`` for one chain's part (pool id
``<slug>:<chain>``, chain ``<chain>``). Sum the per-chain rows or take the total,
not both. Category, chain and symbol come from the protocol's ``/protocols`` row in
``ctx.listing``.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import msgspec

from transforms import Context, Result, floor_hour, history_time, listed
from transforms.classify import strategy_for
from transforms.units import unix_time
from yieldstream.contracts import Level, ObservationError, RawRecord, Venue, make_observation

SOURCE = "defillama-protocols"


class Protocol(msgspec.Struct, kw_only=True):
    slug: str
    name: str
    category: str | None = None
    chain: str | None = None
    symbol: str | None = None
    tvl: float | None = None


_decode = msgspec.json.Decoder(Protocol).decode


TOTAL = "tvl"  # the series name of a protocol's total in history native ids
PROTOCOL = "/protocol/"


class TvlPoint(msgspec.Struct):
    date: int | float
    totalLiquidityUSD: float | None = None


_decode_point = msgspec.json.Decoder(TvlPoint).decode


@lru_cache(maxsize=256)  # a batch of history holds the points of few protocols
def _protocol(payload: bytes) -> Protocol:
    return _decode(payload)


def transform(record: RawRecord, ctx: Context) -> Result:
    if record.kind == "history":
        return _history(record, ctx)
    item = _decode(record.payload)
    fields = _fields(item)
    fields.update({"observed_at": floor_hour(record.fetched_at), "tvl_usd": item.tvl})
    return [make_observation(fields)]


def _history(record: RawRecord, ctx: Context) -> Result:
    point = _decode_point(record.payload)
    slug = record.endpoint.removeprefix(PROTOCOL)
    item = _protocol(listed(ctx, slug, "/protocols", "category and chain"))
    if item.slug != slug:
        raise ObservationError(f"the /protocols row given for {slug} is {item.slug}")
    series, at, _ = record.native_id.rpartition("@")
    if not at or not series:
        raise ObservationError(f"history record {record.native_id!r} names no series")
    fields = _fields(item)
    if series != TOTAL:
        fields.update(
            {"pool_id": f"{slug}:{series}", "chain": series, "level": Level.PROTOCOL_CHAIN}
        )
    fields.update(
        {
            "observed_at": history_time(unix_time(point.date), point.date, record),
            "tvl_usd": point.totalLiquidityUSD,
        }
    )
    return [make_observation(fields)]


def _fields(item: Protocol) -> dict[str, Any]:
    """What a protocol's /protocols row says of it, beside the TVL and the time."""
    return {
        "source": SOURCE,
        "pool_id": item.slug,
        "protocol": item.slug,
        "chain": item.chain or "Multi-Chain",
        "symbol": item.symbol if item.symbol and item.symbol != "-" else "",
        "strategy": strategy_for(item.category),
        "strategy_guessed": False,  # a protocol's own category, never a guess
        "venue": Venue.DEFI,
        "category": item.category,
        "pool_meta": item.name,
        "level": Level.PROTOCOL,
    }


class _Category(msgspec.Struct):
    slug: str | None = None
    category: str | None = None


_decode_category = msgspec.json.Decoder(_Category).decode


def reference(payloads: Iterable[bytes]) -> dict[str, str]:
    """The reference data this source provides: protocol slug -> DefiLlama category.

    What classifies DefiLlama's pools (``transforms.defillama_yields``). Read from
    the raw ``/protocols`` items rather than the observations, since a protocol whose
    TVL is null is rejected as an observation but still names its category.
    Undecodable items are skipped (they are rejected anyway).
    """
    found: dict[str, str] = {}
    for payload in payloads:
        try:
            row = _decode_category(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        if row.slug and row.category:
            found[row.slug] = row.category
    return found
