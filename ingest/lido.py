"""Lido stETH staking APR.

``GET https://eth-api.lido.fi/v1/protocol/steth/apr/last`` answers
``{"data": {"timeUnix": ..., "apr": ...}, "meta": {...}}``; ``.../apr/sma`` answers
``{"data": {"aprs": [{"timeUnix", "apr"}, ...], "smaApr": ...}, "meta": {...}}`` with
about a week of daily points. APR is percent. Docs: https://docs.lido.fi/integrations/api
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from yieldstream.contracts import RawRecord

SOURCE = "lido"
ENDPOINTS = (
    Endpoint("/v1/protocol/steth/apr/last", items_at=("data",), id_key="timeUnix", single=True),
    Endpoint("/v1/protocol/steth/apr/sma", items_at=("data", "aprs"), id_key="timeUnix"),
)


class Config(SourceConfig):
    base_url: str = "https://eth-api.lido.fi"
    interval_s: Seconds = 3600.0


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
