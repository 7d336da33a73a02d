"""OKX's history: one currency's hourly points, paged back with ``after``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from ingest import okx
from ingest._history import Window, fetch_history
from tests.transforms import observe
from transforms import okx as transform
from yieldstream.contracts import RawRecord

CFG = okx.Config(attempts=1, wait_initial_s=0, wait_max_s=0, deadline_s=2.0)
NEWEST = datetime(2026, 8, 26, 15, tzinfo=UTC)  # the recorded AVAX point's hour


def page(first: datetime, count: int) -> dict[str, object]:
    """``count`` hourly AVAX points, newest first, from ``first`` back."""
    rows = [
        {
            "ccy": "AVAX",
            "lendingRate": "0.0206",
            "rate": "0.127",
            "ts": str(int((first - timedelta(hours=i)).timestamp() * 1000)),
            "amt": "",
        }
        for i in range(count)
    ]
    return {"code": "0", "msg": "", "data": rows}


async def backfill(
    window: Window, pages: list[dict[str, object]]
) -> tuple[list[RawRecord], list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(pages)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=queue.pop(0))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        records = await fetch_history(
            client, CFG, okx.HISTORY, source=okx.SOURCE, entity="AVAX", run_id="r", window=window
        )
    return records, seen


async def test_pages_back_with_after_until_a_short_page() -> None:
    until = NEWEST + timedelta(hours=1)
    records, seen = await backfill(
        Window(None, until), [page(NEWEST, 100), page(NEWEST - timedelta(hours=100), 40)]
    )
    assert [r.url.path for r in seen] == ["/api/v5/finance/savings/lending-rate-history"] * 2
    first, second = (dict(r.url.params) for r in seen)
    assert first == {"ccy": "AVAX", "limit": "100", "after": str(int(until.timestamp() * 1000))}
    oldest_of_first = NEWEST - timedelta(hours=99)
    assert second == {**first, "after": str(int(oldest_of_first.timestamp() * 1000))}
    assert len(records) == 140
    assert {r.endpoint for r in records} == {okx.HISTORY.endpoint("AVAX")}
    assert okx.HISTORY.entity_of(records[0].endpoint) == "AVAX"
    assert all(r.kind == "history" for r in records)
    obs = observe(transform.transform, records[0])
    assert obs.observed_at == NEWEST
    assert obs.apy_pct is not None
    assert round(obs.apy_pct, 4) == 2.0814  # 2.06 % APR compounded hourly


async def test_stops_once_the_window_start_is_passed() -> None:
    since = NEWEST - timedelta(hours=50)
    records, seen = await backfill(Window(since, None), [page(NEWEST, 100)])
    assert len(seen) == 1  # the first page already reaches before the window
    assert "after" not in dict(seen[0].url.params)
    assert len(records) == 51  # the points at or after ``since``
