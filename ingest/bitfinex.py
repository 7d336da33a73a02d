"""Bitfinex margin funding: what lenders earn on the funding book.

Public API, no key (docs: https://docs.bitfinex.com/reference/rest-public-tickers,
.../rest-public-funding-stats, .../rest-public-candles).

``GET https://api-pub.bitfinex.com/v2/tickers?symbols=fUSD,fUST,fBTC,fETH`` answers an
array of funding ticker rows, ``[SYMBOL, FRR, BID, BID_PERIOD, BID_SIZE, ASK,
ASK_PERIOD, ASK_SIZE, DAILY_CHANGE, DAILY_CHANGE_RELATIVE, LAST_PRICE, VOLUME, HIGH,
LOW, _PLACEHOLDER, _PLACEHOLDER, FRR_AMOUNT_AVAILABLE]`` (older answers: the first 14);
FRR, BID, ASK and LAST_PRICE are **per-day** decimal rates. 90 requests/min.

``GET /v2/funding/stats/fUSD/hist?limit=1`` answers ``[[MTS, _, _, FRR, AVG_PERIOD, _,
_, FUNDING_AMOUNT, FUNDING_AMOUNT_USED, _, _, FUNDING_BELOW_THRESHOLD], ...]``, newest
first; this FRR is **1/365 of the per-day rate**; amounts are in the currency (USD).

History: ``GET /v2/candles/trade:1D:{symbol}:a30:p2:p30/hist?limit&start&end&sort=1``
(times in ms), rows ``[MTS, OPEN, CLOSE, HIGH, LOW, VOLUME]`` of the per-day rate of
2-30 day funding trades, daily since 2016-07-31; 30 requests/min.

Errors come as ``["error", 10020, "limit: invalid"]`` (with status 200, 400 or 500);
``["error", 11010, "ratelimit: error"]`` (or a "ratelimit" message) is the rate limit
and ``["error", 20060, "maintenance"]`` a pause: both are retried.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

import httpx

from ingest._history import History, Point, Window
from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from transforms.units import ms_time
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse, UpstreamRejected, UpstreamUnavailable

SOURCE = "bitfinex"
OFFERS = ((Strategy.LENDING, Venue.CEFI),)
SYMBOLS = ("fUSD", "fUST", "fBTC", "fETH")
RATE_LIMITED = 11010  # ["error", 11010, "ratelimit: error"]
MAINTENANCE = 20060  # ["error", 20060, "maintenance"]: the platform is down for a while
CANDLE_LIMIT = 10000  # rows per candles request at most
CANDLES_SINCE = datetime(2016, 7, 31, tzinfo=UTC)  # the first daily funding candle


def check(body: Any, url: str, head: bytes) -> None:
    """Raise for Bitfinex's ``["error", code, message]`` answer (sent with status 200 too)."""
    if not (isinstance(body, list) and len(body) == 3 and body[0] == "error"):
        return
    code, message = body[1], body[2]
    text = f"Bitfinex error {code} from {url}: {message}"
    if code in (RATE_LIMITED, MAINTENANCE) or "ratelimit" in str(message):
        raise UpstreamUnavailable(text)
    raise UpstreamRejected(text)


ENDPOINTS = (
    Endpoint("/v2/tickers", id_key=0, params=(("symbols", ",".join(SYMBOLS)),), check=check),
    Endpoint("/v2/funding/stats/fUSD/hist", id_key=0, params=(("limit", "1"),), check=check),
)


def _candle_points(body: Any, entity: str, url: str, head: bytes) -> Iterable[Point]:
    """One point per daily candle, named by its MTS (ms)."""
    if not isinstance(body, list):
        raise BadResponse(
            f"expected a list of candles from {url}, got {type(body).__name__}", url=url, body=head
        )
    for index, row in enumerate(body):
        mts = row[0] if isinstance(row, list) and row else None
        named = isinstance(mts, int) and not isinstance(mts, bool)
        yield Point(str(mts) if named else f"#{index}", row, ms_time(mts))


def _ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def candle_query(window: Window) -> dict[str, str]:
    """Oldest first from the window's start (or the first candle), up to its end."""
    query = {"limit": str(CANDLE_LIMIT), "sort": "1", "start": _ms(window.since or CANDLES_SINCE)}
    if window.until is not None:
        query["end"] = _ms(window.until)
    return query


def next_candles(
    points: list[Point], query: dict[str, str], window: Window
) -> dict[str, str] | None:
    """A full page may have more after it: start after its newest candle."""
    times = [p.moment for p in points if p.moment is not None]
    if len(points) < CANDLE_LIMIT or not times:
        return None
    return {**query, "start": str(int(max(times).timestamp() * 1000) + 1)}


HISTORY = History(
    "/v2/candles/trade:1D:{entity}:a30:p2:p30/hist",
    _candle_points,
    entities=SYMBOLS,
    query=candle_query,
    next_query=next_candles,
    max_pages=3,  # ~3,800 days since 2016 fit one page
    check=check,
)


class Config(SourceConfig):
    base_url: str = "https://api-pub.bitfinex.com"
    interval_s: Seconds = 3600.0
    rate_per_s: float = 1.0  # tickers: 90 requests/min
    history_rate_per_s: float = 0.5  # candles: 30 requests/min
    history_concurrency: int = 1


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
