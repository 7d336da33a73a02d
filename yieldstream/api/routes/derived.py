"""The derived figures: real yields, strategies compared per asset, protocol TVL."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from yieldstream.api.csv import CSV_RESPONSE, csv_response, wants_csv
from yieldstream.api.deps import V1, Cursor, Limit, Store, invalid, paged, utc
from yieldstream.api.models import Comparison, Page, ProtocolTvl, RealYield
from yieldstream.api.pages import Column, Order, split

router = APIRouter(prefix=V1, tags=["derived"])
CSV = Annotated[bool, Depends(wants_csv)]

REAL_ORDER = Order("real_yields", (Column("source"), Column("pool_id")))
REAL_COLUMNS = ", ".join(n for n in RealYield.model_fields if n != "id")


@router.get("/real-yields", response_model=Page[RealYield], responses=CSV_RESPONSE)
async def real_yields(
    store: Store,
    limit: Limit,
    cursor: Cursor = None,
    token: Annotated[str | None, Query(description="the diluting token: ETH, SOL, ATOM...")] = None,
    chain: str | None = None,
    source: str | None = None,
    csv: CSV = False,
) -> Page[RealYield] | Response:
    """Each staking product's newest APY net of its token's inflation (``real_yields``)."""
    where, params = _conditions(
        ("upper(token) = upper(?)", token),
        ("lower(chain) = lower(?)", chain),
        ("source = ?", source),
    )
    page = paged(REAL_ORDER, cursor, limit)
    rows = await store.fetch(
        f"""
        SELECT {REAL_COLUMNS}, source || ':' || pool_id AS id, {REAL_ORDER.select()}
        FROM (SELECT * FROM real_yields WHERE {where}
              QUALIFY row_number() OVER (
                  PARTITION BY source, pool_id ORDER BY observed_at DESC) = 1)
        WHERE {page.where}
        ORDER BY {REAL_ORDER.order_by()}
        LIMIT ?
        """,
        [*params, *page.params, page.limit + 1],
    )
    found, next_cursor = split(REAL_ORDER, rows.dicts(), page.limit)
    items = [RealYield.model_validate(row) for row in found]
    if csv:
        return csv_response(RealYield, items, next_cursor)
    return Page[RealYield](items=items, next_cursor=next_cursor)


# The asset over all chains first, then each chain.
COMPARE_ORDER = Order(
    "compare",
    (
        Column("CASE chain WHEN '(all chains)' THEN 0 ELSE 1 END", kind="number"),
        Column("chain"),
        Column("strategy"),
        Column("venue"),
    ),
)
COMPARE_COLUMNS = ", ".join(Comparison.model_fields)


@router.get("/compare", response_model=Page[Comparison], responses=CSV_RESPONSE)
async def compare(
    store: Store,
    asset: Annotated[
        str,
        Query(min_length=1, description="ETH, SOL, USDC, BTC... or a symbol standing for itself"),
    ],
    limit: Limit,
    cursor: Cursor = None,
    chain: Annotated[str | None, Query(description="one chain, or '(all chains)'")] = None,
    csv: CSV = False,
) -> Page[Comparison] | Response:
    """Staking, lending and farming side by side for one asset (``strategy_compare``):
    TVL-weighted and median APYs, real APYs, volatility; the asset over all chains first."""
    where, params = _conditions(("lower(chain) = lower(?)", chain))
    page = paged(COMPARE_ORDER, cursor, limit)
    rows = await store.fetch(
        f"""
        SELECT {COMPARE_COLUMNS}, {COMPARE_ORDER.select()}
        FROM strategy_compare
        WHERE asset = upper(?) AND {where} AND {page.where}
        ORDER BY {COMPARE_ORDER.order_by()}
        LIMIT ?
        """,
        [asset, *params, *page.params, page.limit + 1],
    )
    found, next_cursor = split(COMPARE_ORDER, rows.dicts(), page.limit)
    items = [Comparison.model_validate(row) for row in found]
    if csv:
        return csv_response(Comparison, items, next_cursor)
    return Page[Comparison](items=items, next_cursor=next_cursor)


class Scope(StrEnum):
    total = "total"
    chain = "chain"


TVL_ORDER = Order(
    "protocol_tvl",
    (
        Column("epoch_us(observed_at)", kind="number"),
        Column("source"),
        Column("scope"),
        Column("chain"),
        Column("pool_id"),
    ),
)
TVL_COLUMNS = ", ".join(ProtocolTvl.model_fields)


@router.get("/protocols/{slug}/tvl", response_model=Page[ProtocolTvl], responses=CSV_RESPONSE)
async def protocol_tvl(
    store: Store,
    slug: str,
    limit: Limit,
    cursor: Cursor = None,
    since: Annotated[datetime | None, Query(description="from this time on (UTC)")] = None,
    until: Annotated[datetime | None, Query(description="before this time (UTC)")] = None,
    scope: Annotated[Scope | None, Query(description="total, or chain (each chain's part)")] = None,
    chain: str | None = None,
    csv: CSV = False,
) -> Page[ProtocolTvl] | Response:
    """A protocol's TVL over time (``protocol_tvl``), oldest first: its total and each
    chain's part; sum the chain rows or take the total, never both."""
    start, end = utc(since), utc(until)
    if start is not None and end is not None and end <= start:
        raise invalid("until", "until must be after since")
    known = await store.fetch("SELECT 1 FROM protocol_tvl WHERE protocol = ? LIMIT 1", [slug])
    if not known.rows:
        raise HTTPException(404, f"no protocol {slug!r} in the store")
    where, params = _conditions(
        ("observed_at >= ?", start),
        ("observed_at < ?", end),
        ("scope = ?", scope.value if scope else None),
        ("lower(chain) = lower(?)", chain),
    )
    page = paged(TVL_ORDER, cursor, limit)
    rows = await store.fetch(
        f"""
        SELECT {TVL_COLUMNS}, {TVL_ORDER.select()}
        FROM protocol_tvl
        WHERE protocol = ? AND {where} AND {page.where}
        ORDER BY {TVL_ORDER.order_by()}
        LIMIT ?
        """,
        [slug, *params, *page.params, page.limit + 1],
    )
    found, next_cursor = split(TVL_ORDER, rows.dicts(), page.limit)
    items = [ProtocolTvl.model_validate(row) for row in found]
    if csv:
        return csv_response(ProtocolTvl, items, next_cursor)
    return Page[ProtocolTvl](items=items, next_cursor=next_cursor)


def _conditions(*pairs: tuple[str, object]) -> tuple[str, list[Any]]:
    """The conditions whose value was given, ANDed, and their values."""
    given = [(sql, value) for sql, value in pairs if value is not None]
    return " AND ".join([sql for sql, _ in given] or ["TRUE"]), [v for _, v in given]
