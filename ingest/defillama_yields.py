"""DefiLlama yields: every pool's APY and TVL (farming, lending and staking).

``GET https://yields.llama.fi/pools`` answers ``{"status": "success", "data": [...]}``
with ~15-20k pools, refreshed hourly. Docs: https://defillama.com/docs/api
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from yieldstream.contracts import RawRecord

SOURCE = "defillama-yields"
ENDPOINTS = (Endpoint("/pools", items_at=("data",), id_key="pool"),)
# Pools are classified by their protocol's category: fetch /protocols first.
AFTER = ("defillama-protocols",)


class Config(SourceConfig):
    base_url: str = "https://yields.llama.fi"
    interval_s: Seconds = 3600.0


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
