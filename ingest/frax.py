"""Frax Ether sfrxETH staking APR from Frax's own API.

``GET https://api.frax.finance/v2/frxeth/summary/latest`` answers one object, the
latest summary interval: ``intervalTimestamp`` (ISO), ``blockNumber``, ``epoch``,
``sfrxethApr`` (**percent** APR), ``sfrxethFrxethPrice`` (frxETH per sfrxETH),
``sfrxethTotalAssets`` / ``sfrxethStoredTotalAssets`` (frxETH in the vault, whole
tokens), ``sfrxethTotalSupply``, ``frxethTotalSupply``, ``frxethEthCurvePrice``
(ETH per frxETH on Curve), ``ethPriceUsd``, validator counts and Curve pool
figures. ``GET /v2/frxeth/summary/history?range=<1d|180d|...>`` answers
``{"items": [<the same object>, ...]}`` (its consumers read ``items[0]`` as the
latest). No official reference page: field names from Frax API consumers
(DefiLlama's ``frax-ether`` adaptor reads ``sfrxethApr`` from ``/summary/latest``
as a percent; typed clients list the fields: "All APRs are in %, all balances in
token denomination"); the product page is https://app.frax.finance/frxeth/mint.
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

SOURCE = "frax"
OFFERS = ((Strategy.STAKING, Venue.DEFI),)
ENDPOINTS = (Endpoint("/v2/frxeth/summary/latest", id_key="intervalTimestamp", single=True),)
_HISTORY_ITEMS = Endpoint("/v2/frxeth/summary/history", items_at=("items",))
# The ranges seen in use (``1d``, ``180d``), shortest first, with what they cover.
RANGES = (("1d", timedelta(days=1)), ("180d", timedelta(days=180)))


def _points(body: Any, entity: str, url: str, head: bytes) -> Iterable[Point]:
    items = _HISTORY_ITEMS.items(body, url, head=head)
    return points_of(items, "intervalTimestamp", iso_time)


def history_range(window: Window, now: datetime | None = None) -> str:
    """The shortest known range reaching back to the window's start (the longest if open)."""
    if window.since is None:
        return RANGES[-1][0]
    back = (now or datetime.now(UTC)) - window.since
    return next((name for name, span in RANGES if back <= span), RANGES[-1][0])


# The summary intervals of the last 180 days at most (the longest range known to work).
HISTORY = History(
    _HISTORY_ITEMS.path,
    _points,
    entities=("sfrxeth",),
    query=lambda window: {"range": history_range(window)},
)


class Config(SourceConfig):
    base_url: str = "https://api.frax.finance"
    interval_s: Seconds = 3600.0
    rate_per_s: float = 1.0
    history_rate_per_s: float = 1.0
    history_concurrency: int = 1


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
