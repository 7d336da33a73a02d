"""Yearn vaults (v2 and v3) from yDaemon, Yearn's own API, one request per chain.

``GET https://ydaemon.yearn.fi/{chainId}/vaults/all`` answers a list of vaults:
``address``, ``symbol``, ``name``, ``version``, ``chainID``, ``endorsed``, ``token``
(``address``, ``symbol``, ``display_symbol``, ``underlyingTokensAddresses``),
``tvl.tvl`` (US dollars), ``apr`` (``type``, ``netAPR``, ``fees``, ``points``,
``pricePerShare``, ``extra.stakingRewardsAPR``, ``forwardAPR.netAPR``), ``details``
and ``info`` (``isRetired``, ``isHidden``). Rates are **fractions**. Errors are
HTTP statuses (no status-200 error bodies are documented). Source and docs:
github.com/yearn/ydaemon (``processes/apr``), https://ydaemon.yearn.fi.

History: none keyless. yDaemon serves the current figures only; Yearn's history
lives in Kong (``kong.yearn.farm`` GraphQL, timeseries of each vault), not wired.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from yieldstream.contracts import RawRecord, Strategy, Venue

SOURCE = "yearn"
OFFERS = ((Strategy.FARMING, Venue.DEFI),)
ENDPOINTS = (Endpoint("/{entity}/vaults/all", id_key="address", entities="chains"),)


class Config(SourceConfig):
    base_url: str = "https://ydaemon.yearn.fi"
    interval_s: Seconds = 3600.0
    rate_per_s: float = 1.0
    # Ethereum, Optimism, Polygon, Fantom, Base, Arbitrum.
    chains: tuple[str, ...] = ("1", "10", "137", "250", "8453", "42161")


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
