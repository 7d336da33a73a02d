"""Pendle V2 markets: LP yield and the fixed yield of buying PT, per chain.

``GET https://api-v2.pendle.finance/core/v1/{chainId}/markets/active`` answers
``{"markets": [{"name", "address", "expiry", "pt", "yt", "sy", "underlyingAsset",
"details": {"liquidity", "impliedApy", "aggregatedApy", "pendleApy", "maxBoostedApy",
"feeRate", ...}, "timestamp", ...}]}``: APYs are FRACTIONS (0.1021 is 10.21 %),
``liquidity`` is USD, times ISO-8601 UTC; ``pt``/``yt``/``sy``/``underlyingAsset``
are ``"<chainId>-<address>"``. History: ``GET /core/v3/{chainId}/markets/{address}/
historical-data?timeframe=1h|1d|1w`` answers ``{"total", "timestamp_start",
"timestamp_end", "results": [{"timestamp", "maxApy", "baseApy", "underlyingApy",
"impliedApy", "tvl"}]}`` (fractions). Errors are NestJS bodies ``{"statusCode",
"message"}``. Free tier: 100 compute units a minute per IP (``X-RateLimit-*``
headers); a 429 is retried after its ``Retry-After``.
Docs: https://api-v2.pendle.finance/core/docs
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from ingest._history import History, Point, Window, points_of
from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from transforms.units import iso_time
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse, UpstreamUnavailable

SOURCE = "pendle"
# LP positions farm swap fees, the SY's yield and PENDLE; a PT is a fixed-rate
# zero-coupon claim (lent at a discount until expiry): lending.
OFFERS = ((Strategy.FARMING, Venue.DEFI), (Strategy.LENDING, Venue.DEFI))

# A market's own id, as Pendle writes its tokens' ids: ``<chainId>-<address>``.
MARKET_ID = re.compile(r"(\d{1,12})-(0x[0-9a-fA-F]{40})")


def check(body: Any, url: str, head: bytes) -> None:
    """A NestJS error body (``{"statusCode": 429, "message": ...}``) as its error."""
    if not isinstance(body, dict) or "statusCode" not in body or "markets" in body:
        return
    status, message = body.get("statusCode"), body.get("message")
    if status == 429 or (isinstance(status, int) and status >= 500):
        raise UpstreamUnavailable(f"Pendle {status} ({message}) from {url}")
    raise BadResponse(f"Pendle error {status} from {url}: {message}", url=url, body=head)


@dataclass(frozen=True, slots=True)
class Markets(Endpoint):
    """Markets named ``<chainId>-<address>`` (the chain from the item's ``pt`` id).

    One address can be a market on two chains; the chain-qualified id is also the
    entity of the market's history (two path segments).
    """

    def native_id(self, item: Any, index: int) -> Any:
        address = Endpoint.native_id(self, item, index)
        pt = item.get("pt") if isinstance(item, dict) else None
        chain = pt.partition("-")[0] if isinstance(pt, str) else ""
        if not isinstance(address, str) or not chain.isdigit():
            return address
        return f"{chain}-{address}"


ENDPOINTS = (
    Markets(
        "/core/v1/{entity}/markets/active",
        items_at=("markets",),
        id_key="address",
        check=check,
        entities="chains",
    ),
)

HISTORY_PATH = "/core/v3/{chain}/markets/{address}/historical-data"
_HISTORY_ITEMS = Endpoint(HISTORY_PATH, items_at=("results",), id_key="timestamp")
HOURLY_SPAN_DAYS = 31  # a window this short is asked for hourly, a longer one daily


def split_market(entity: str) -> tuple[str, str] | None:
    """``(chainId, address)`` of the first ``<chainId>-<address>`` in ``entity``."""
    match = MARKET_ID.search(entity)
    return (match.group(1), match.group(2)) if match else None


def _market_id(entity: str) -> None:
    if MARKET_ID.fullmatch(entity) is None:
        raise ValueError(f"{entity!r} is not <chainId>-<address>")


def _history_points(body: Any, entity: str, url: str, head: bytes) -> Iterable[Point]:
    return points_of(_HISTORY_ITEMS.items(body, url, head=head), "timestamp", iso_time)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window_query(window: Window) -> dict[str, str]:
    """Hourly points for a window of a month or less, daily ones otherwise."""
    short = (
        window.since is not None
        and window.until is not None
        and (window.until - window.since).days <= HOURLY_SPAN_DAYS
    )
    query = {"timeframe": "1h" if short else "1d"}
    if window.since is not None:
        query["timestamp_start"] = _iso(window.since)
    if window.until is not None:
        query["timestamp_end"] = _iso(window.until)
    return query


# One market's points over the window in one answer (no paging).
HISTORY = History(
    HISTORY_PATH,
    _history_points,
    query=window_query,
    check=check,
    separator="-",
    validate=_market_id,
)


class Config(SourceConfig):
    base_url: str = "https://api-v2.pendle.finance"
    interval_s: Seconds = 1800.0
    # Pendle V2's chains (as DefiLlama's pendle adaptor lists them): Ethereum,
    # Arbitrum, BSC, Optimism, Sonic, Base, Mantle, Hyperliquid, Berachain.
    chains: tuple[str, ...] = ("1", "42161", "56", "10", "146", "8453", "5000", "999", "80094")
    # 100 compute units a minute on the free tier: a poll is 9 requests; one a
    # second at most, and backfill at 20 a minute, one at a time (a history
    # request costs more units than a listing).
    rate_per_s: float = 1.0
    history_rate_per_s: float = 1.0 / 3.0
    history_concurrency: int = 1


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
