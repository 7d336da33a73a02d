"""OKX Simple Earn (savings): the hourly lending rates of every currency.

Public, no key (docs: https://www.okx.com/docs-v5/en/#financial-product-savings-get-public-borrow-history-public).
``GET https://www.okx.com/api/v5/finance/savings/lending-rate-history?limit=100``
(no ``ccy``: every currency at the newest ``ts``) answers
``{"code": "0", "msg": "", "data": [{"ccy", "lendingRate", "rate", "ts", "amt"}]}``:
``lendingRate`` is the lender's annual rate (APR, a decimal fraction string), ``rate``
the borrowers' annual rate, ``ts`` milliseconds as a string, ``amt`` deprecated ("").
Hourly points since 2021-12-14. 6 requests/s per IP. Errors: ``code`` other than ``"0"`` with
status 200 (``"50011"``, "Too Many Requests", is the rate limit and is retried).

History (:data:`HISTORY`): the same path with ``ccy=<ccy>`` answers that currency's
hourly points, newest first, 100 a request; ``after=<ts>`` pages back to older ones.
Backfill walks back from the window's end until it passes the window's start or
OKX's first point (2021-12-14), for every currency of the snapshot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

import httpx

from ingest._history import History, Point, Window, points_of
from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from transforms.units import ms_time
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse, UpstreamRejected, UpstreamUnavailable

SOURCE = "okx"
OFFERS = ((Strategy.LENDING, Venue.CEFI),)
PAGE = 100  # points a request at most
RATE_LIMITED = "50011"


def check(body: Any, url: str, head: bytes) -> None:
    """Raise for an OKX envelope whose ``code`` is not ``"0"``."""
    code = body.get("code") if isinstance(body, dict) else None
    if code == "0":
        return
    if code is None:
        raise BadResponse(
            f"expected OKX's {{code, msg, data}} envelope from {url}", url=url, body=head
        )
    text = f"OKX error {code} from {url}: {body.get('msg', '')}"
    if code == RATE_LIMITED:
        raise UpstreamUnavailable(text)
    raise UpstreamRejected(text)


ENDPOINTS = (
    Endpoint(
        "/api/v5/finance/savings/lending-rate-history",
        items_at=("data",),
        id_key="ccy",
        params=(("limit", str(PAGE)),),
        check=check,
    ),
)

FIRST_POINT = datetime(2021, 12, 14, tzinfo=UTC)  # OKX's history starts here
# Hourly since 2021-12-14 is about 44k points a currency: 440 pages of 100, and room.
HISTORY_PAGES = 1000


def _history_points(body: Any, entity: str, url: str, head: bytes) -> Iterable[Point]:
    return points_of(ENDPOINTS[0].items(body, url, head=head), "ts", ms_time)


def _first_query(window: Window) -> dict[str, str]:
    query = {"limit": str(PAGE)}
    if window.until is not None:  # points before the window's end
        query["after"] = str(int(window.until.timestamp() * 1000))
    return query


def _older(points: list[Point], query: dict[str, str], window: Window) -> dict[str, str] | None:
    """The page before the oldest point of this one, while the window reaches back."""
    moments = [p.moment for p in points if p.moment is not None]
    if len(points) < PAGE or not moments:
        return None
    oldest = min(moments)
    if oldest <= FIRST_POINT or (window.since is not None and oldest <= window.since):
        return None
    return {**query, "after": str(int(oldest.timestamp() * 1000))}


HISTORY = History(
    f"{ENDPOINTS[0].path}?ccy={{entity}}",  # every currency the snapshot names
    _history_points,
    query=_first_query,
    next_query=_older,
    max_pages=HISTORY_PAGES,
    check=check,
)


class Config(SourceConfig):
    base_url: str = "https://www.okx.com"
    interval_s: Seconds = 3600.0  # rates change once an hour
    rate_per_s: float = 2.0  # below OKX's 6 requests/s per IP
    history_rate_per_s: float = 4.0  # backfill pages: still below 6 a second
    history_concurrency: int = 2


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
