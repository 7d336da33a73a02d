"""``GET /v1/products``: the newest figure of every product, filtered, sorted, paged."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from yieldstream.api.csv import CSV_RESPONSE, csv_response, wants_csv
from yieldstream.api.deps import V1, Cursor, Limit, Store, paged
from yieldstream.api.models import Page, Product
from yieldstream.api.pages import Column, Order, split
from yieldstream.contracts import Strategy, Venue

router = APIRouter(prefix=V1, tags=["products"])

# The asset a product earns on, as strategy_compare names it (the assets view).
ASSET = "coalesce(a.asset, upper(l.symbol))"
_TIE = (Column("l.source"), Column("l.pool_id"))


class Sort(StrEnum):
    tvl_usd_desc = "tvl_usd_desc"
    tvl_usd_asc = "tvl_usd_asc"
    apy_pct_desc = "apy_pct_desc"
    apy_pct_asc = "apy_pct_asc"
    product_id = "product_id"


# Each order ends in (source, pool_id), the key of a product; NULL figures sort last.
ORDERS = {
    Sort.tvl_usd_desc: Order(
        "tvl_usd_desc",
        (Column("coalesce(l.tvl_usd, '-infinity'::DOUBLE)", True, "number"), *_TIE),
    ),
    Sort.tvl_usd_asc: Order(
        "tvl_usd_asc", (Column("coalesce(l.tvl_usd, 'infinity'::DOUBLE)", False, "number"), *_TIE)
    ),
    Sort.apy_pct_desc: Order(
        "apy_pct_desc",
        (Column("coalesce(l.apy_pct, '-infinity'::DOUBLE)", True, "number"), *_TIE),
    ),
    Sort.apy_pct_asc: Order(
        "apy_pct_asc", (Column("coalesce(l.apy_pct, 'infinity'::DOUBLE)", False, "number"), *_TIE)
    ),
    Sort.product_id: Order("product_id", (Column("coalesce(l.product_id, '')"), *_TIE)),
}

COLUMNS = ", ".join(
    f"l.{name}"
    for name in Product.model_fields
    if name not in ("id", "asset")  # made below
)


class Filters:
    """The query parameters that narrow the list; each is one bound condition."""

    def __init__(
        self,
        strategy: Strategy | None = None,
        venue: Venue | None = None,
        chain: Annotated[str | None, Query(description="e.g. Ethereum (any case)")] = None,
        asset: Annotated[
            str | None,
            Query(description="the asset earned on: ETH takes stETH, rETH...; USDC takes USDC.e"),
        ] = None,
        source: str | None = None,
        protocol: str | None = None,
        min_tvl_usd: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
        stablecoin: bool | None = None,
    ) -> None:
        self.where: list[str] = []
        self.params: list[Any] = []
        self._add("l.strategy = ?", strategy.value if strategy else None)
        self._add("l.venue = ?", venue.value if venue else None)
        self._add("lower(l.chain) = lower(?)", chain)
        self._add(f"{ASSET} = upper(?)", asset)
        self._add("l.source = ?", source)
        self._add("l.protocol = ?", protocol)
        self._add("l.tvl_usd >= ?", min_tvl_usd)
        self._add("l.stablecoin = ?", stablecoin)

    def _add(self, condition: str, value: object) -> None:
        if value is not None:
            self.where.append(condition)
            self.params.append(value)


@router.get("/products", response_model=Page[Product], responses=CSV_RESPONSE)
async def products(
    store: Store,
    filters: Annotated[Filters, Depends()],
    limit: Limit,
    cursor: Cursor = None,
    sort: Sort = Sort.tvl_usd_desc,
    csv: Annotated[bool, Depends(wants_csv)] = False,
) -> Page[Product] | Response:
    """The newest figure of every product (``latest_yields``), in a stable order.

    Walk the pages with ``next_cursor``: every product comes once. A product whose
    sorted figure changes while you walk (a daemon writes) may move between pages.
    """
    order = ORDERS[sort]
    page = paged(order, cursor, limit)
    where = " AND ".join([*filters.where, page.where])
    rows = await store.fetch(
        f"""
        SELECT {COLUMNS}, l.source || ':' || l.pool_id AS id, {ASSET} AS asset, {order.select()}
        FROM latest_yields AS l
        LEFT JOIN (SELECT symbol, min(asset) AS asset FROM assets GROUP BY symbol) AS a
          ON upper(l.symbol) = a.symbol
        WHERE {where}
        ORDER BY {order.order_by()}
        LIMIT ?
        """,
        [*filters.params, *page.params, page.limit + 1],
    )
    found, next_cursor = split(order, rows.dicts(), page.limit)
    items = [Product.model_validate(row) for row in found]
    if csv:
        return csv_response(Product, items, next_cursor)
    return Page[Product](items=items, next_cursor=next_cursor)
