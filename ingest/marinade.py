"""Marinade mSOL staking APY.

``GET https://api.marinade.finance/msol/apy/7d`` answers one object,
``{"value": <fraction>, "end_time": <RFC 3339>, "end_price": <SOL per mSOL>,
"start_time": ..., "start_price": ...}``: ``value`` is already an APY, as a
**fraction**, Marinade's ``(end_price / start_price) ** (1 year / elapsed) - 1``
over the last 7 days of mSOL's price (``/1d``, ``/30d`` and ``/1y`` are the same
over other windows; 7d is the one DefiLlama's ``marinade-liquid-staking`` adaptor
reads, so the two figures meet in ``crosscheck``). Keyless; no rate limit is
documented. Docs: https://docs.marinade.finance/

History: Marinade's API server (``#[get("/msol/apy/<period>?<time>")]``) also takes
``time``, an RFC 3339 moment, and answers the window ending at the last sample
before it. :data:`HISTORY` walks back one day per request from the window's end,
a daily series of 7-day APYs. Known from the server's source only: if the live API
ignored ``time``, every page would be the latest point, kept once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ingest._history import History, Point, Window, points_of
from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from transforms.units import iso_time
from yieldstream.contracts import RawRecord, Strategy, Venue

SOURCE = "marinade"
OFFERS = ((Strategy.STAKING, Venue.DEFI),)
WINDOW = "7d"
# One object, named by its end_time: a snapshot and a history point of the same
# sample share the id (and the transform gives them one key).
ENDPOINTS = (Endpoint(f"/msol/apy/{WINDOW}", single=True, id_key="end_time"),)

STEP = timedelta(days=1)  # one history point a day
MAX_DAYS = 1600  # mSOL launched in August 2021: about 4.4 years of days


def _time_param(moment: datetime) -> str:
    """``moment`` as the RFC 3339 ``time`` Marinade parses (UTC, ``Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _points(body: Any, entity: str, url: str, head: bytes) -> Iterable[Point]:
    return points_of(ENDPOINTS[0].items(body, url, head=head), "end_time", iso_time)


def _query(window: Window) -> dict[str, str]:
    return {} if window.until is None else {"time": _time_param(window.until)}


def _next_query(
    points: list[Point], query: dict[str, str], window: Window
) -> dict[str, str] | None:
    moments = [p.moment for p in points if p.moment is not None]
    if not moments:
        return None
    before = min(moments) - STEP
    if window.since is not None and before < window.since:
        return None
    return {"time": _time_param(before)}


HISTORY = History(
    "/msol/apy/{entity}",
    _points,
    entities=(WINDOW,),
    query=_query,
    next_query=_next_query,
    max_pages=MAX_DAYS,
)


class Config(SourceConfig):
    base_url: str = "https://api.marinade.finance"
    interval_s: Seconds = 3600.0
    rate_per_s: float = 1.0
    # A backfill is one request per day of history, one after the other.
    history_rate_per_s: float = 2.0
    history_concurrency: int = 1


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
