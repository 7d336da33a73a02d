"""DefiLlama yields: every pool's APY and TVL (farming, lending and staking).

``GET https://yields.llama.fi/pools`` answers ``{"status": "success", "data": [...]}``
with ~15-20k pools, refreshed hourly. ``GET https://yields.llama.fi/chart/{pool}``
answers ``{"status": "success", "data": [{"timestamp", "tvlUsd", "apy", "apyBase",
"apyReward", "il7d", "apyBase7d"}, ...]}``: one pool's daily history, the last point
intraday, ``timestamp`` ISO-8601 in UTC. Docs: https://defillama.com/docs/api
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx

from ingest._history import History, Point, points_of
from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from ingest._timed import timed_items
from transforms.units import iso_time
from yieldstream.contracts import RawRecord, Strategy, Venue

SOURCE = "defillama-yields"
# What its products are (the strategy of each pool, from its category).
OFFERS = tuple((strategy, Venue.DEFI) for strategy in Strategy)
ENDPOINTS = (Endpoint("/pools", items_at=("data",), id_key="pool"),)
# Pools are classified by their protocol's category: fetch /protocols first.
AFTER = ("defillama-protocols",)
_CHART = Endpoint("/chart/{entity}", items_at=("data",))


def _chart_points(body: Any, entity: str, url: str, head: bytes) -> Iterable[Point]:
    return points_of(_CHART.items(body, url, head=head), "timestamp", iso_time)


# Every pool of /pools has one; the pool's /pools item names its protocol and chain.
HISTORY = History("/chart/{entity}", _chart_points, read=timed_items(("data",), "timestamp"))


class Config(SourceConfig):
    base_url: str = "https://yields.llama.fi"
    interval_s: Seconds = 3600.0


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
