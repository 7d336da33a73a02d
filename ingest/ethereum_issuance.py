"""Ethereum's net issuance (issuance minus burn), from ultrasound.money.

``GET https://ultrasound.money/api/v2/fees/gauge-rates`` (keyless, undocumented: the
JSON its own site's gauges read) answers one object keyed by time frame, ``m5``,
``h1``, ``d1``, ``d7``, ``d30``, ``since_merge``, ``since_burn``, each::

    {"burn_rate_yearly": {"eth", "usd"}, "issuance_rate_yearly": {"eth", "usd"},
     "issuance_rate_yearly_pow": {"eth", "usd"}, "supply_growth_rate_yearly",
     "supply_growth_rate_yearly_pow", "block_number", "timestamp"}

Amounts are **ETH per year** (the window's sum scaled to a year of 365.25 days);
``supply_growth_rate_yearly`` is a **fraction** a year, ``(issuance - burn) / supply``;
the ``_pow`` fields are a proof-of-work counterfactual (13,500 ETH a day), not
Ethereum's supply. Shape from the site's own code: ultrasoundmoney/frontend
``src/mainsite/api/gauge-rates.ts`` (the response type) and ultrasoundmoney/eth-analysis-rs
``src/gauges.rs`` (how each figure is computed). Errors come with an HTTP status.

The whole answer is archived as one record (no id: ``#0``); the transform reads the
30-day window (see :mod:`transforms.ethereum_issuance`). No history endpoint: the
figures are rolling windows ending now.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from yieldstream.contracts import RawRecord, Strategy, Venue

SOURCE = "ethereum-issuance"
OFFERS = ((Strategy.OTHER, Venue.DEFI),)
# One object, every time frame in it; an answer that is no object fails the fetch.
ENDPOINTS = (Endpoint("/api/v2/fees/gauge-rates", single=True),)


class Config(SourceConfig):
    base_url: str = "https://ultrasound.money"
    # The 30-day window moves by hours, not blocks: hourly is plenty.
    interval_s: Seconds = 3600.0
    # An undocumented endpoint of a community site: one request at a time, slowly.
    rate_per_s: float = 0.5


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
