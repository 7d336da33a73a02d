"""Rocket Pool rETH staking APR.

``GET https://api.rocketpool.net/api/apr`` answers ``{"yearlyAPR": "<percent>"}``: one
object, the APR a percent written as a plain decimal string (no ``%``), which Rocket
Pool computes from the change of rETH's ETH exchange rate over the last 7 days. The
answer carries no time. No history endpoint exists. Keyless; no rate limit is
documented (DefiLlama's ``rocket-pool`` yield adaptor reads the same endpoint as
``Number(yearlyAPR)``). Docs: https://docs.rocketpool.net/
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from yieldstream.contracts import RawRecord, Strategy, Venue

SOURCE = "rocket-pool"
OFFERS = ((Strategy.STAKING, Venue.DEFI),)
# One object and no id: the record is named by its position (``#0``).
ENDPOINTS = (Endpoint("/api/apr", single=True),)


class Config(SourceConfig):
    base_url: str = "https://api.rocketpool.net"
    # The figure moves once a day at most (a 7-day window, daily balance updates).
    interval_s: Seconds = 3600.0
    rate_per_s: float = 1.0


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
