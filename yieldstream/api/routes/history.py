"""``GET /v1/products/{id}/history``: one product's figures over time, hour by hour or by day.

The id is the product's ``id`` in ``/v1/products``: ``<source>:<pool_id>``,
percent-encoded in the path (a pool id may hold ``/`` or ``:``; the source's name
never holds a colon, so the first one splits them). Each point is the product's
last observation in its hour or UTC day (as ``pool_stats`` takes a day's sample),
with its real APY where an inflation figure applies. Points come oldest first,
``limit`` a page (at most ``api.max_points``), paged by ``next_cursor``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import Response

from yieldstream.api.csv import CSV_RESPONSE, csv_response, wants_csv
from yieldstream.api.deps import V1, Config, Cursor, Store, invalid, paged, utc
from yieldstream.api.models import History, HistoryPoint
from yieldstream.api.pages import Column, Order, split

router = APIRouter(prefix=V1, tags=["products"])

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ORDER = Order("history", (Column("bucket", kind="number"),))


class Interval(StrEnum):
    hour = "hour"
    day = "day"


_WIDTH_US = {Interval.hour: 3_600_000_000, Interval.day: 86_400_000_000}

HISTORY = """
WITH h AS (
    SELECT y.observed_at, y.apy_pct, y.apy_base_pct, y.apy_reward_pct, y.tvl_usd,
           y.tvl_tokens, y.apy_borrow_pct, y.utilization_pct,
           r.real_apy_pct, r.inflation_pct,
           epoch_us(y.observed_at) // ? AS bucket
    FROM yield_history AS y
    LEFT JOIN (SELECT observed_at, real_apy_pct, inflation_pct FROM real_yields
               WHERE source = ? AND pool_id = ?) AS r USING (observed_at)
    WHERE y.source = ? AND y.pool_id = ? AND {window}
    QUALIFY row_number() OVER (PARTITION BY bucket ORDER BY y.observed_at DESC) = 1)
SELECT *, bucket AS _k0 FROM h WHERE {after} ORDER BY bucket LIMIT ?
"""


def _start(bucket: int, width_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=bucket * width_us)


def split_id(product: str) -> tuple[str, str]:
    source, colon, pool_id = product.partition(":")
    if not colon or not source or not pool_id:
        raise HTTPException(404, f"no product {product!r}; ids are <source>:<pool_id>")
    return source, pool_id


@router.get("/products/{product:path}/history", response_model=History, responses=CSV_RESPONSE)
async def history(
    store: Store,
    settings: Config,
    product: Annotated[str, Path(description="the product's id: <source>:<pool_id>")],
    since: Annotated[datetime | None, Query(description="from this time on (UTC)")] = None,
    until: Annotated[datetime | None, Query(description="before this time (UTC)")] = None,
    interval: Interval = Interval.hour,
    limit: Annotated[int | None, Query(ge=1, description="points a page")] = None,
    cursor: Cursor = None,
    csv: Annotated[bool, Depends(wants_csv)] = False,
) -> History | Response:
    """A product's APY, real APY and TVL over time: its last observation per hour or day."""
    source, pool_id = split_id(product)
    start, end = utc(since), utc(until)
    if start is not None and end is not None and end <= start:
        raise invalid("until", "until must be after since")
    found = await store.fetch(
        "SELECT product_id FROM latest_yields WHERE source = ? AND pool_id = ?",
        [source, pool_id],
    )
    if not found.rows:
        raise HTTPException(404, f"no product {product!r}; ids are <source>:<pool_id>")
    size = min(limit or settings.api.max_points, settings.api.max_points)
    page = paged(ORDER, cursor, size)
    window: list[str] = []
    params: list[Any] = [_WIDTH_US[interval], source, pool_id, source, pool_id]
    if start is not None:
        window.append("y.observed_at >= ?")
        params.append(start)
    if end is not None:
        window.append("y.observed_at < ?")
        params.append(end)
    sql = HISTORY.format(window=" AND ".join(window) or "TRUE", after=page.where)
    rows = await store.fetch(sql, [*params, *page.params, page.limit + 1])
    points, next_cursor = split(ORDER, rows.dicts(), page.limit)
    width = _WIDTH_US[interval]
    items = [HistoryPoint.model_validate({**p, "at": _start(p["bucket"], width)}) for p in points]
    if csv:
        return csv_response(HistoryPoint, items, next_cursor)
    return History(
        id=product,
        source=source,
        pool_id=pool_id,
        product_id=found.rows[0][0],
        interval=interval.value,
        items=items,
        next_cursor=next_cursor,
    )
