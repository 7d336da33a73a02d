"""Compound III (Comet) markets: what a supplier of each market's base asset earns.

``GET https://v3-api.compound.finance/market/all-networks/all-contracts/summary``
answers a list, one item per chain and Comet contract: ``{"chain_id": 1, "comet":
{"address"}, "supply_apr", "borrow_apr", "utilization", "total_supply_value",
"total_borrow_value", "total_collateral_value", "base_usd_price",
"collateral_asset_symbols": [...]}``. Rates are FRACTION strings and **APRs**
(``"0.0391"`` is 3.91 % a year, not compounded); the ``*_value`` totals are in the
base asset (``base_usd_price`` USD each). The item names no base asset: the
transform knows the markets DefiLlama lists (:data:`transforms.compound_v3.MARKETS`).
Records are named ``<chain_id>-<comet>``.

History: ``GET /market/{network}/{comet}/historical/summary`` answers the same items,
one a day, each with its ``timestamp`` (seconds) and ``date``. The path's comet
segment is the entity; the default, ``all-contracts`` (with ``all-networks``), is
every market in one answer. No window parameters are documented: the whole series
comes back and points are kept by their own time. No published rate limit.

Shape from third-party TypeScript reading this API (an item type
``CompoundV3ApiResponse``; a loader of ``.../historical/summary``): no first-party
page documents it, and whether ``*_value`` is in the base asset (as that code reads
it) is unverified. Protocol docs: https://docs.compound.finance/
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from ingest._history import History, Point
from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from transforms.units import unix_time
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import UpstreamRejected, UpstreamUnavailable

SOURCE = "compound-v3"
OFFERS = ((Strategy.LENDING, Venue.DEFI),)


def check(body: Any, url: str, head: bytes) -> None:
    """An error object where the list belongs (``{"error": "..."}``), as a failed fetch."""
    if not isinstance(body, dict) or not ({"error", "message"} & body.keys()):
        return  # a list, or another shape: the items' check says what is wrong
    message = str(body.get("error") or body.get("message"))
    if "rate limit" in message.lower() or "too many" in message.lower():
        raise UpstreamUnavailable(f"Compound API rate limit from {url}: {message}")
    raise UpstreamRejected(f"Compound API error from {url}: {message}")


def market_id(item: Any) -> str | None:
    """``<chain_id>-<comet address>`` of a summary item, or None if it names neither."""
    if not isinstance(item, dict):
        return None
    chain, comet = item.get("chain_id"), item.get("comet")
    address = comet.get("address") if isinstance(comet, dict) else None
    if isinstance(chain, bool) or not isinstance(chain, int) or not isinstance(address, str):
        return None
    return f"{chain}-{address}"


@dataclass(frozen=True, slots=True)
class MarketsEndpoint(Endpoint):
    """An endpoint whose items are named by their chain and Comet address together."""

    def native_id(self, item: Any, index: int) -> Any:
        return market_id(item)


ENDPOINTS = (MarketsEndpoint("/market/all-networks/all-contracts/summary", check=check),)

_POINTS = Endpoint("/market/all-networks/{entity}/historical/summary")


def _history_points(body: Any, entity: str, url: str, head: bytes) -> Iterable[Point]:
    for index, item in enumerate(_POINTS.items(body, url, head=head)):
        name = market_id(item)
        time = item.get("timestamp") if isinstance(item, dict) else None
        native = f"{name}-{time}" if name and isinstance(time, int) else f"#{index}"
        yield Point(native, item, unix_time(time))


# Every market's daily points in one answer (entity ``all-contracts``).
HISTORY = History(
    "/market/all-networks/{entity}/historical/summary",
    _history_points,
    entities=("all-contracts",),
    check=check,
)


class Config(SourceConfig):
    base_url: str = "https://v3-api.compound.finance"
    interval_s: Seconds = 3600.0
    rate_per_s: float = 1.0
    history_rate_per_s: float = 1.0
    history_concurrency: int = 1


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
