"""Kamino Lend (K-Lend, Solana): supply and borrow APYs of each reserve of each market.

``GET https://api.kamino.finance/kamino-market/{market}/reserves/metrics?env=mainnet-beta``
answers a list of reserves, ``[{"reserve", "liquidityToken", "liquidityTokenMint",
"maxLtv", "supplyApy", "borrowApy", "totalSupply", "totalBorrow", "totalSupplyUsd",
"totalBorrowUsd"}]``, every value a string: APYs are FRACTIONS and already APYs
(``"0.0468"`` is 4.68 %), amounts decimal strings of up to 40 digits (whole tokens,
USD). One request per market of the ``markets`` setting. A reserve's record is named
``<market>_<reserve>``, which is the entity of its history:

``GET /kamino-market/{market}/reserves/{reserve}/metrics/history?env=mainnet-beta&start=
<ISO>&end=<ISO>&frequency=day`` answers ``{"history": [{"timestamp": "<ISO>", "metrics":
{"symbol", "mintAddress", "supplyInterestAPY", "borrowInterestAPY", "depositTvl",
"borrowTvl", "totalSupply", "totalBorrows", ...}}]}``: APYs fractions (numbers), USD
amounts decimal strings. The path holds two ids, so the History splits the
entity ``<market>_<reserve>`` into both segments. No published rate limit.
Docs: https://github.com/hubbleprotocol/hubble-public-api-docs (Kamino Lending).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

from ingest._history import History, Point, Window, points_of
from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from transforms.kamino import LAUNCHED, MARKETS, SEPARATOR
from transforms.units import iso_time
from yieldstream.contracts import RawRecord, RecordKind, Strategy, Venue
from yieldstream.errors import UpstreamRejected, UpstreamUnavailable

SOURCE = "kamino"
OFFERS = ((Strategy.LENDING, Venue.DEFI),)
ENV = (("env", "mainnet-beta"),)


def check(body: Any, url: str, head: bytes) -> None:
    """An error object where the reserves list belongs (``{"error": "..."}``), as a failure."""
    if not isinstance(body, dict) or not ({"error", "message"} & body.keys()):
        return  # a list, or another shape: the items' check says what is wrong
    message = str(body.get("error") or body.get("message"))
    if "rate limit" in message.lower() or "too many" in message.lower():
        raise UpstreamUnavailable(f"Kamino rate limit from {url}: {message}")
    raise UpstreamRejected(f"Kamino error from {url}: {message}")


@dataclass(frozen=True, slots=True)
class MarketEndpoint(Endpoint):
    """A per-market endpoint whose records are named ``<market>_<reserve>``.

    The reserve pubkey alone names the item upstream; with its market in front, the
    snapshot lists the entities :data:`HISTORY` needs (both are in its path).
    """

    def records(
        self,
        body: Any,
        *,
        source: str,
        fetched_at: datetime,
        run_id: str,
        lenient: bool = False,
        kind: RecordKind = "snapshot",
        url: str = "",
        head: bytes = b"",
        path: str | None = None,
    ) -> Iterator[RawRecord]:
        market = self.entity_of(path or self.path)
        for record in Endpoint.records(
            self,
            body,
            source=source,
            fetched_at=fetched_at,
            run_id=run_id,
            lenient=lenient,
            kind=kind,
            url=url,
            head=head,
            path=path,
        ):
            if market is None or record.problem is not None:
                yield record
            else:
                native_id = f"{market}{SEPARATOR}{record.native_id}"
                yield msgspec.structs.replace(record, native_id=native_id)


ENDPOINTS = (
    MarketEndpoint(
        "/kamino-market/{entity}/reserves/metrics",
        entities="markets",
        params=ENV,
        id_key="reserve",
        check=check,
    ),
)

HISTORY_PATH = "/kamino-market/{market}/reserves/{reserve}/metrics/history"
_HISTORY_ITEMS = Endpoint(HISTORY_PATH, items_at=("history",), id_key="timestamp")


def _history_points(body: Any, entity: str, url: str, head: bytes) -> Iterable[Point]:
    return points_of(_HISTORY_ITEMS.items(body, url, head=head), "timestamp", iso_time)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _window_query(window: Window) -> dict[str, str]:
    return {
        "env": "mainnet-beta",
        "start": _iso(window.since or LAUNCHED),
        "end": _iso(window.until or datetime.now(UTC)),
        "frequency": "day",
    }


# Daily points of one reserve over the window, in one answer (no paging).
HISTORY = History(
    HISTORY_PATH, _history_points, query=_window_query, check=check, separator=SEPARATOR
)


class Config(SourceConfig):
    base_url: str = "https://api.kamino.finance"
    interval_s: Seconds = 3600.0
    # The markets to poll (pubkeys): Main, JLP, Altcoins and xStocks by default.
    markets: tuple[str, ...] = tuple(MARKETS)
    rate_per_s: float = 2.0
    history_rate_per_s: float = 2.0
    history_concurrency: int = 2


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
