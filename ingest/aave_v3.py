"""Aave v3 lending reserves, from Aave's own GraphQL API (AaveKit).

``POST https://api.v3.aave.com/graphql`` with :data:`MARKETS_QUERY` answers
``{"data": {"markets": [{"name", "address", "chain": {"chainId", "name"},
"reserves": [<reserve>, ...]}, ...]}}``, every market of :data:`CHAIN_IDS`. A reserve
(``Reserve`` in the schema) carries its own ``market`` (name, address, chain), its
``underlyingToken``, ``size`` (``TokenAmount``: ``amount`` and ``usd``), ``supplyInfo``
and ``borrowInfo`` (``apy``, ``utilizationRate``: ``PercentValue``) and ``incentives``.
A ``PercentValue`` is ``{"raw", "decimals", "value", "formatted"}``: ``value`` a
FRACTION (BigDecimal string), ``formatted`` the same in percent with 2 decimals,
``raw`` the exact integer with ``decimals`` (RAY, 27). Failures come as status 200
with ``errors``: :func:`ingest._graphql.check`.

Items: the reserves are nested in their markets, so :class:`ReservesEndpoint`
flattens ``data.markets[*].reserves[*]``: one record per reserve, its JSON verbatim
(it names its market itself, so no envelope is added), named
``<chainId>-<market>-<underlying token>-<symbol>`` (:func:`transforms.aave_v3.entity`),
which is also the entity of its history.

History: ``supplyAPYHistory(request: {chainId, market, underlyingToken, window})``
answers ``[{"avgRate": <PercentValue>, "date": <ISO DateTime>}]``, hourly for
``LAST_WEEK`` up to daily for ``LAST_YEAR`` (the only windows: ``LAST_WEEK``,
``LAST_MONTH``, ``LAST_SIX_MONTHS``, ``LAST_YEAR``). It is a ``POST /graphql`` like the
snapshot (the form Aave documents), the reserve (from the entity) and the window in
``variables.request`` (:func:`history_request`). Records name ``/graphql#<entity>``,
so that each reserve's history is its own endpoint (backfill checkpoints per
entity); the request goes to ``/graphql``, the reserve in its body.

Docs: https://aave.com/docs/aave-v3/getting-started/graphql (playground at the URL);
schema: github.com/aave/aave-sdk ``packages/graphql/src``. No published rate limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ingest._graphql import body, check
from ingest._history import History, Point, Window, points_of
from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from transforms.aave_v3 import CHAIN_NAMES, entity, parse_entity
from transforms.units import iso_time
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse

SOURCE = "aave-v3"
OFFERS = ((Strategy.LENDING, Venue.DEFI),)

# The chains whose markets are asked for: those DefiLlama's aave-v3 adaptor lists.
CHAIN_IDS = tuple(CHAIN_NAMES)

_PERCENT = "{ raw decimals value formatted }"
MARKETS_QUERY = f"""
query Markets($chainIds: [ChainId!]!) {{
  markets(request: {{ chainIds: $chainIds }}) {{
    name
    address
    chain {{ chainId name }}
    reserves(request: {{ reserveType: BOTH, orderBy: {{ tokenName: ASC }} }}) {{
      market {{ name address chain {{ chainId name }} }}
      underlyingToken {{ address symbol decimals chainId }}
      aToken {{ address symbol }}
      size {{ amount {{ raw decimals value }} usd }}
      isFrozen
      isPaused
      supplyInfo {{ apy {_PERCENT} total {{ raw decimals value }} }}
      borrowInfo {{ apy {_PERCENT} utilizationRate {_PERCENT} total {{ usd }} }}
      incentives {{
        __typename
        ... on AaveSupplyIncentive {{
          extraSupplyApr {_PERCENT}
          rewardTokenAddress
          rewardTokenSymbol
        }}
        ... on MeritSupplyIncentive {{ extraSupplyApr {_PERCENT} }}
      }}
    }}
  }}
}}
"""


@dataclass(frozen=True, slots=True)
class ReservesEndpoint(Endpoint):
    """``/graphql`` whose items are the reserves of every market, flattened.

    The markets list is checked like any items list; each market must hold a
    ``reserves`` list. A reserve is named by :func:`transforms.aave_v3.entity` from
    its own ``market`` and ``underlyingToken``; one without them is named by its
    position, and its transform rejects it with the reason.
    """

    def items(self, body: Any, url: str, *, head: bytes = b"") -> list[Any]:
        reserves: list[Any] = []
        for index, market in enumerate(Endpoint.items(self, body, url, head=head)):
            inner = market.get("reserves") if isinstance(market, dict) else None
            if not isinstance(inner, list):
                raise BadResponse(
                    f"expected a reserves list at $.data.markets[{index}] of {url}",
                    url=url,
                    body=head,
                )
            reserves.extend(inner)
        return reserves

    def native_id(self, item: Any, index: int) -> Any:
        try:
            market, token = item["market"], item["underlyingToken"]
            return entity(
                market["chain"]["chainId"], market["address"], token["address"], token["symbol"]
            )
        except (TypeError, KeyError, ValueError):
            return None


ENDPOINTS = (
    ReservesEndpoint(
        "/graphql",
        method="POST",
        json=body(MARKETS_QUERY, {"chainIds": list(CHAIN_IDS)}),
        check=check,
        items_at=("data", "markets"),
    ),
)

HISTORY_QUERY = """
query SupplyAPYHistory($request: SupplyAPYHistoryRequest!) {
  value: supplyAPYHistory(request: $request) {
    avgRate { raw decimals value }
    date
  }
}
""".strip()

# Aave's windows, shortest first, with what each reaches back (LAST_WEEK is hourly).
WINDOWS = (
    ("LAST_WEEK", timedelta(days=7)),
    ("LAST_MONTH", timedelta(days=30)),
    ("LAST_SIX_MONTHS", timedelta(days=182)),
    ("LAST_YEAR", timedelta(days=365)),
)


def history_window(window: Window, now: datetime | None = None) -> str:
    """The shortest of Aave's windows reaching back to ``window.since`` (LAST_YEAR if open)."""
    if window.since is None:
        return WINDOWS[-1][0]
    span = (now or datetime.now(UTC)) - window.since
    return next((name for name, reach in WINDOWS if span <= reach), WINDOWS[-1][0])


def history_request(window: Window, entity_: str) -> dict[str, Any]:
    """The POST body of one reserve's history: its chain, market and token, and the window."""
    chain_id, market, token, _ = parse_entity(entity_)
    request = {
        "chainId": chain_id,
        "market": market,
        "underlyingToken": token,
        "window": history_window(window),
    }
    return body(HISTORY_QUERY, {"request": request})


_SAMPLES = Endpoint("/graphql", items_at=("data", "value"), id_key="date")


def _history_points(body: Any, entity_: str, url: str, head: bytes) -> Iterable[Point]:
    return points_of(_SAMPLES.items(body, url, head=head), "date", iso_time)


HISTORY = History(
    "/graphql#{entity}", _history_points, check=check, json=history_request, validate=parse_entity
)


class Config(SourceConfig):
    base_url: str = "https://api.v3.aave.com"
    interval_s: Seconds = 3600.0
    rate_per_s: float = 1.0
    history_rate_per_s: float = 2.0
    history_concurrency: int = 2


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
