"""DefiLlama ``/protocols`` rows -> one TVL observation per protocol, with its strategy.

``tvl`` may be null or 0; ``category`` names the protocol type and is kept as
``category`` beside the mapped ``strategy``. The protocol's ``slug`` is its pool id
(it is what ``/pools`` items name in ``project``).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from transforms import Context, Result, floor_hour
from transforms.classify import strategy_for
from yieldstream.contracts import RawRecord, Venue, make_observation

SOURCE = "defillama-protocols"


class Protocol(msgspec.Struct, kw_only=True):
    slug: str
    name: str
    category: str | None = None
    chain: str | None = None
    symbol: str | None = None
    tvl: float | None = None


_decode = msgspec.json.Decoder(Protocol).decode


def transform(record: RawRecord, ctx: Context) -> Result:
    item = _decode(record.payload)
    return [
        make_observation(
            {
                "source": SOURCE,
                "pool_id": item.slug,
                "observed_at": floor_hour(record.fetched_at),
                "protocol": item.slug,
                "chain": item.chain or "Multi-Chain",
                "symbol": item.symbol if item.symbol and item.symbol != "-" else "",
                "strategy": strategy_for(item.category),
                "venue": Venue.DEFI,
                "category": item.category,
                "tvl_usd": item.tvl,
                "pool_meta": item.name,
            }
        )
    ]


class _Category(msgspec.Struct):
    slug: str | None = None
    category: str | None = None


_decode_category = msgspec.json.Decoder(_Category).decode


def categories(payloads: Iterable[bytes]) -> dict[str, str]:
    """Protocol slug -> category from raw ``/protocols`` items, with or without a TVL.

    The reference data that classifies pools: read from the raw items rather than the
    observations, since a protocol whose TVL is null is rejected as an observation but
    still names its category. Undecodable items are skipped (they are rejected anyway).
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
