"""Morpho: Morpho Blue (Market V1) markets and MetaMorpho (Vault V1) vaults, what a saver earns.

``POST https://api.morpho.org/graphql`` with :data:`SNAPSHOT_QUERY` asks for two root
fields in one document: ``markets`` and ``vaults``, the listed ones of
:data:`CHAIN_IDS`, largest first, 100 of each a page (``first``/``skip``, the same
variables for both). Two endpoints of a source cannot share a path (both would be
``POST /graphql``), so one endpoint asks for both: :class:`SnapshotEndpoint` yields
the markets' items then the vaults'.

``markets`` answers ``{"pageInfo": {...}, "items": [{"marketId", "lltv", "chain":
{"id", "network"}, "loanAsset": {...}, "collateralAsset": {...}, "state":
{"timestamp", "supplyApy", "netSupplyApy", "borrowApy", "utilization", "supplyAssets",
"supplyAssetsUsd", ...}}]}``. ``vaults`` answers ``{"pageInfo": {...}, "items":
[{"address", "symbol", "name", "asset": {"address", "symbol", "decimals"}, "chain",
"state": {"timestamp", "apy", "netApy", "fee", "totalAssets", "totalAssetsUsd",
"rewards"}}]}``. APYs are FRACTIONS and already APYs (0.0412 is 4.12 %); a vault's
``fee`` is the curator's share of the interest (a fraction); ``lltv`` is a
1e18-scaled integer string; BigInt amounts (``supplyAssets``, ``totalAssets``, in the
asset's base units) arrive as a JSON number in one row and a digit string in the
next. Failures come as status 200 with ``errors`` (a bad field, the query's
complexity over ``maximumComplexity``): :func:`ingest._graphql.check`.

Records are named for their history (:func:`transforms.morpho.market_entity`,
:func:`transforms.morpho.vault_entity`): ``<chainId>-<marketId>-<collateral symbol>``
and ``vault-<chainId>-<address>-<symbol>``.

History: :data:`HISTORY_QUERY` (a market: ``marketById(marketId, chainId)
{historicalState {supplyApy(options)}}``) or :data:`VAULT_HISTORY_QUERY` (a vault:
``vaultByAddress(address, chainId) {historicalState {netApy(options)}}``), ``options``
``{startTimestamp, endTimestamp, interval: DAY}`` from the window; each answers
``[{"x": <unix seconds>, "y": <APY fraction>}]``, aliased to
``data.value.historicalState.apy``. Records name ``/graphql#<entity>``;
the request goes to ``/graphql``, the entity in its body. The history field names follow the
2026-08 schema the recorded capture shows (``marketId``; older clients call it
``marketByUniqueKey(uniqueKey:)``); no history response was recorded.
Docs: https://docs.morpho.org/tools/offchain/api/get-started (schema at /graphql).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from ingest._graphql import body, check, skip_paging
from ingest._history import History, Point, Window, points_of
from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from transforms.morpho import LAUNCHED, market_entity, parse_entity, vault_entity
from transforms.units import unix_time
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse

SOURCE = "morpho"
OFFERS = ((Strategy.LENDING, Venue.DEFI),)

# The chains DefiLlama's morpho-blue adaptor lists (Ethereum, Base, Optimism,
# HyperEVM, Katana, Arbitrum, Unichain, Polygon, Monad).
CHAIN_IDS = (1, 8453, 10, 999, 747474, 42161, 130, 137, 143)
PAGE = 100  # the API's largest ``first``
# 50 pages of 100: 5,000 markets, beyond the few thousand listed on these chains
# (395 on Ethereum and Base in 2026-08), and vaults far fewer; a longer listing fails
# instead of being cut.
MAX_PAGES = 50

SNAPSHOT_QUERY = """
query MarketsAndVaults($first: Int!, $skip: Int!, $chainIds: [Int!]) {
  markets(
    first: $first
    skip: $skip
    orderBy: SupplyAssetsUsd
    orderDirection: Desc
    where: { listed: true, chainId_in: $chainIds }
  ) {
    pageInfo { countTotal count skip limit }
    items {
      marketId
      lltv
      listed
      chain { id network }
      loanAsset { address symbol decimals price { usd } }
      collateralAsset { address symbol decimals price { usd } }
      state {
        timestamp
        supplyAssets
        supplyAssetsUsd
        borrowAssets
        borrowAssetsUsd
        collateralAssets
        collateralAssetsUsd
        utilization
        fee
        supplyApy
        netSupplyApy
        borrowApy
        netBorrowApy
        rewards { asset { address symbol } supplyApr borrowApr }
      }
    }
  }
  vaults(
    first: $first
    skip: $skip
    orderBy: TotalAssetsUsd
    orderDirection: Desc
    where: { listed: true, chainId_in: $chainIds }
  ) {
    pageInfo { countTotal count skip limit }
    items {
      address
      symbol
      name
      listed
      chain { id network }
      asset { address symbol decimals }
      state {
        timestamp
        apy
        netApy
        fee
        totalAssets
        totalAssetsUsd
        rewards { asset { address symbol } supplyApr }
      }
    }
  }
}
""".strip()


@dataclass(frozen=True, slots=True)
class SnapshotEndpoint(Endpoint):
    """``/graphql`` whose items are the page's markets, then its vaults.

    Both lists are checked like any items list. A response without ``vaults`` (a
    markets-only answer, like the recorded capture of 2026-08-14) has no vaults; the
    live API always answers every root field asked for, or ``errors``. Each item is
    named for its history; one that cannot be is named by its position, and its
    transform rejects it with the reason.
    """

    def items(self, body: Any, url: str, *, head: bytes = b"") -> list[Any]:
        markets = Endpoint.items(self, body, url, head=head)
        data = body["data"]  # there: the markets were found under it
        if "vaults" not in data:
            return list(markets)
        return [*markets, *_VAULTS.items(body, url, head=head)]

    def native_id(self, item: Any, index: int) -> Any:
        try:
            if "marketId" in item or "loanAsset" in item:
                symbol = (item.get("collateralAsset") or {}).get("symbol")
                return market_entity(item["chain"]["id"], item["marketId"], symbol)
            return vault_entity(item["chain"]["id"], item["address"], item["symbol"])
        except (TypeError, KeyError, ValueError, AttributeError):
            return None


_VAULTS = Endpoint("/graphql", items_at=("data", "vaults", "items"))

ENDPOINTS = (
    SnapshotEndpoint(
        "/graphql",
        method="POST",
        json=body(SNAPSHOT_QUERY, {"first": PAGE, "skip": 0, "chainIds": list(CHAIN_IDS)}),
        check=check,
        next_page=skip_paging(PAGE),  # another page while either list is full
        max_pages=MAX_PAGES,
        items_at=("data", "markets", "items"),
    ),
)

_OPTIONS = "$options: TimeseriesOptions"
HISTORY_QUERY = f"""
query MarketHistory($marketId: String!, $chainId: Int!, {_OPTIONS}) {{
  value: marketById(marketId: $marketId, chainId: $chainId) {{
    historicalState {{ apy: supplyApy(options: $options) {{ x y }} }}
  }}
}}
""".strip()
VAULT_HISTORY_QUERY = f"""
query VaultHistory($address: String!, $chainId: Int!, {_OPTIONS}) {{
  value: vaultByAddress(address: $address, chainId: $chainId) {{
    historicalState {{ apy: netApy(options: $options) {{ x y }} }}
  }}
}}
""".strip()


def history_request(window: Window, entity: str, now: datetime | None = None) -> dict[str, Any]:
    """The POST body of one entity's daily history over ``window`` (open: launch to now)."""
    kind, chain_id, key, _ = parse_entity(entity)
    since = window.since or LAUNCHED
    until = window.until or now or datetime.now(UTC)
    options = {
        "startTimestamp": int(since.timestamp()),
        "endTimestamp": int(until.timestamp()),
        "interval": "DAY",
    }
    if kind == "vault":
        return body(VAULT_HISTORY_QUERY, {"address": key, "chainId": chain_id, "options": options})
    return body(HISTORY_QUERY, {"marketId": key, "chainId": chain_id, "options": options})


_SERIES = Endpoint("/graphql", items_at=("data", "value", "historicalState", "apy"))


def _history_points(body: Any, entity: str, url: str, head: bytes) -> Iterable[Point]:
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict) and data.get("value") is None:  # an unknown key's answer
        raise BadResponse(f"{url} knows no {entity}", url=url, body=head)
    return points_of(_SERIES.items(body, url, head=head), "x", unix_time)


HISTORY = History(
    "/graphql#{entity}", _history_points, check=check, json=history_request, validate=parse_entity
)


class Config(SourceConfig):
    base_url: str = "https://api.morpho.org"
    interval_s: Seconds = 3600.0
    # No published request limit; one page a second keeps a full listing under a minute.
    rate_per_s: float = 1.0
    history_rate_per_s: float = 1.0
    history_concurrency: int = 1


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
