"""Coinbase Wrapped Staked ETH (cbETH): its staking APY, supply and conversion rate.

``GET https://api.exchange.coinbase.com/wrapped-assets/CBETH`` (public, no key)
answers one object ``{"id": "CBETH", "circulating_supply", "total_supply",
"conversion_rate", "apy"}``, every number a decimal string: supplies in whole
cbETH, ``conversion_rate`` ETH per cbETH, ``apy`` a FRACTION (``"0.0321"`` is
3.21 %; responses before 2023 have no ``apy``). Errors are HTTP statuses.
``/wrapped-assets/CBETH/conversion-rate`` repeats the rate alone and is not needed.
Docs: https://docs.cloud.coinbase.com/exchange/reference/exchangerestapi_getwrappedassets
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from yieldstream.contracts import RawRecord, Strategy, Venue

SOURCE = "coinbase"
OFFERS = ((Strategy.STAKING, Venue.CEFI),)
ENDPOINTS = (Endpoint("/wrapped-assets/CBETH", id_key="id", single=True),)


class Config(SourceConfig):
    base_url: str = "https://api.exchange.coinbase.com"
    interval_s: Seconds = 3600.0
    rate_per_s: float = 2.0  # one request an hour; well under the public limits


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
