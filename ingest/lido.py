"""Lido stETH staking APR.

``GET https://eth-api.lido.fi/v1/protocol/steth/apr/last`` answers
``{"data": {"timeUnix": ..., "apr": ...}, "meta": {...}}``; ``.../apr/sma`` answers
``{"data": {"aprs": [{"timeUnix", "apr"}, ...], "smaApr": ...}, "meta": {...}}`` with
about a week of daily points. APR is percent. Docs: https://docs.lido.fi/integrations/api
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx

from ingest._history import History, Point, points_of
from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from transforms.units import unix_time
from yieldstream.contracts import RawRecord, Strategy, Venue

SOURCE = "lido"
OFFERS = ((Strategy.STAKING, Venue.DEFI),)
ENDPOINTS = (
    Endpoint("/v1/protocol/steth/apr/last", items_at=("data",), id_key="timeUnix", single=True),
    Endpoint("/v1/protocol/steth/apr/sma", items_at=("data", "aprs"), id_key="timeUnix"),
)


def _sma_points(body: Any, entity: str, url: str, head: bytes) -> Iterable[Point]:
    return points_of(ENDPOINTS[1].items(body, url, head=head), "timeUnix", unix_time)


# The history Lido serves: the daily points behind its moving average (about a week).
HISTORY = History(ENDPOINTS[1].path, _sma_points, entities=("steth",))


class Config(SourceConfig):
    base_url: str = "https://eth-api.lido.fi"
    interval_s: Seconds = 3600.0


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
