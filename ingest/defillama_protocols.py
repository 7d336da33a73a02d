"""DefiLlama protocols: each protocol's TVL and ``category``.

``GET https://api.llama.fi/protocols`` answers a bare JSON list (~8,000 rows). The
category classifies the pools of ``defillama-yields`` by strategy, so that source
waits for this one in each daemon's first cycle. Docs: https://defillama.com/docs/api
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from yieldstream.contracts import RawRecord

SOURCE = "defillama-protocols"
ENDPOINTS = (Endpoint("/protocols", id_key="slug"),)


class Config(SourceConfig):
    base_url: str = "https://api.llama.fi"
    interval_s: Seconds = 3600.0


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
