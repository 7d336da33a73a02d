"""KuCoin margin lending (Crypto Lending): the lender's market rate per currency.

``GET https://api.kucoin.com/api/v3/project/list`` (no ``currency``: every
currency) answers ``{"code": "200000", "data": [{"currency", "purchaseEnable",
"minInterestRate", "marketInterestRate", "maxInterestRate", ...}]}``; the rates are
ANNUAL fractions as strings (``"0.005"`` is 0.5 % a year). History:
``GET /api/v3/project/marketInterestRate?currency=BTC`` answers the last 7 days,
hourly, as ``[{"time": "YYYYMMDDHH00", "marketInterestRate": "0.005"}]``: ``time``
is a compact string, not epoch. Both are public (no key). A failed request is a
status-200 body with ``code != "200000"`` and ``msg``; ``429000`` is the rate limit.
Docs: https://www.kucoin.com/docs/rest/margin-trading/lending-market-v3-/get-interest-rates
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx

from ingest._history import History, Point, points_of
from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from transforms.kucoin import ZONE
from transforms.units import compact_time
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse, UpstreamUnavailable

SOURCE = "kucoin"
OFFERS = ((Strategy.LENDING, Venue.CEFI),)
OK = "200000"
RATE_LIMITED = "429000"  # "Too Many Requests": retriable


def check(body: Any, url: str, head: bytes) -> None:
    """A KuCoin error answer (``{"code": "400100", "msg": "..."}``) as the error it is."""
    if not isinstance(body, dict) or "code" not in body:
        return  # no envelope: the items' shape check says what is wrong
    code = str(body["code"])
    if code == OK:
        return
    msg = body.get("msg")
    if code == RATE_LIMITED:
        raise UpstreamUnavailable(f"KuCoin rate limit {code} ({msg}) from {url}")
    raise BadResponse(f"KuCoin error {code} from {url}: {msg}", url=url, body=head)


ENDPOINTS = (Endpoint("/api/v3/project/list", items_at=("data",), id_key="currency", check=check),)

# The query carries the currency, and History's query() sees only the window: the
# currency sits in the path template (one percent-encoded value, like a segment).
HISTORY_PATH = "/api/v3/project/marketInterestRate?currency={entity}"
_HISTORY_ITEMS = Endpoint(HISTORY_PATH, items_at=("data",), id_key="time")


def _rate_points(body: Any, entity: str, url: str, head: bytes) -> Iterable[Point]:
    return points_of(
        _HISTORY_ITEMS.items(body, url, head=head), "time", lambda t: compact_time(t, ZONE)
    )


# Seven days of hourly market rates per currency of /project/list; no paging.
HISTORY = History(HISTORY_PATH, _rate_points, check=check)


class Config(SourceConfig):
    base_url: str = "https://api.kucoin.com"
    interval_s: Seconds = 3600.0  # rates are set once an hour
    # KuCoin's public pool is 2000 weight per 30 s per IP; /project/list weighs 10
    # and each history request 5: 5 a second is 750 of the 2000.
    rate_per_s: float = 2.0
    history_rate_per_s: float = 5.0
    history_concurrency: int = 2


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
