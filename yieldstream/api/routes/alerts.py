"""``GET /v1/alerts``: the alerts the sink opened, newest first (the ``alerts`` table)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from yieldstream.alerts import SINCE_HELP, parse_since
from yieldstream.api.csv import CSV_RESPONSE, csv_response, wants_csv
from yieldstream.api.deps import V1, Cursor, Limit, Store, invalid, paged
from yieldstream.api.models import Alert, Page
from yieldstream.api.pages import Column, Order, split

router = APIRouter(prefix=V1, tags=["alerts"])


class Kind(StrEnum):
    """The kinds of :data:`yieldstream.alerts.KINDS` (tests/api checks they agree)."""

    apy_spike = "apy_spike"
    apy_stuck = "apy_stuck"
    tvl_drawdown = "tvl_drawdown"
    stale_source = "stale_source"
    disagreement = "disagreement"


ORDER = Order(
    "alerts", (Column("epoch_us(opened_at)", descending=True, kind="number"), Column("alert_id"))
)
COLUMNS = ", ".join(Alert.model_fields)


@router.get("/alerts", response_model=Page[Alert], responses=CSV_RESPONSE)
async def alerts(
    store: Store,
    limit: Limit,
    cursor: Cursor = None,
    since: Annotated[
        str | None, Query(description=f"opened or cleared from then on: {SINCE_HELP}")
    ] = None,
    kind: Kind | None = None,
    source: str | None = None,
    open_only: Annotated[bool, Query(alias="open", description="only those not cleared")] = False,
    csv: Annotated[bool, Depends(wants_csv)] = False,
) -> Page[Alert] | Response:
    """Spikes, stuck APYs, TVL drawdowns, stale sources and disagreements, each with the
    figures that set it off; kept after they clear."""
    where: list[str] = ["TRUE"]
    params: list[object] = []
    if since is not None:
        try:
            start = parse_since(since)
        except (ValueError, OverflowError):
            raise invalid("since", f"not a duration or a time; give {SINCE_HELP}") from None
        where.append("(opened_at >= ? OR cleared_at >= ?)")
        params += [start, start]
    if kind is not None:
        where.append("kind = ?")
        params.append(kind.value)
    if source is not None:
        where.append("source = ?")
        params.append(source)
    if open_only:
        where.append("cleared_at IS NULL")
    page = paged(ORDER, cursor, limit)
    rows = await store.fetch(
        f"""
        SELECT {COLUMNS}, {ORDER.select()} FROM alerts
        WHERE {" AND ".join(where)} AND {page.where}
        ORDER BY {ORDER.order_by()}
        LIMIT ?
        """,
        [*params, *page.params, page.limit + 1],
    )
    found, next_cursor = split(ORDER, rows.dicts(), page.limit)
    items = [
        Alert.model_validate({**row, "evidence": json.loads(row["evidence"])}) for row in found
    ]
    if csv:
        return csv_response(Alert, items, next_cursor)
    return Page[Alert](items=items, next_cursor=next_cursor)
