"""Beefy vaults: APY, TVL and vault metadata from Beefy's public API.

Three keyless ``GET``s on ``https://api.beefy.finance`` (docs:
https://docs.beefy.finance/developer-documentation/beefy-api, "Last Update: August
2023"; source: github.com/beefyfinance/beefy-api):

- ``/apy/breakdown``: ``{vaultId: {vaultApr, compoundingsPerYear,
  beefyPerformanceFee, vaultApy, lpFee, tradingApr, totalApy}}``; every rate a
  **fraction** (2.88 is 288 %); some vaults carry ``totalApy`` alone.
- ``/tvl``: ``{chainId: {vaultId: usd}}``, US dollars.
- ``/vaults``: a list of vault objects (``id``, ``chain``, ``assets``, ``status``
  "active"/"eol", ``platformId``, ``tokenAddress``, ...), retired vaults included.

The first two are keyed objects, not lists: their endpoints turn each ``{key:
value}`` into an item ``{"id": key, "breakdown": value}`` (``/tvl``: ``{"chain":
chainId, "id": vaultId, "tvl": usd}``), the value verbatim beside its key.

A vault's APY, TVL and the chain and assets that name it come from three
responses, and one observation needs all of them: :func:`collect` fetches the three
and yields **one record per vault**, ``{"id", "chain", "breakdown", "tvl",
"vault"}``: the three upstream items side by side, each verbatim (a vault missing
from a response lacks that key). Its endpoint is ``/apy/breakdown``. Vaults listed
in ``/vaults`` with neither an APY nor a TVL carry no figure and make no record.
:func:`join_bodies` is the same join from the three parsed bodies (for checks that
start from recorded responses).

History: ``api.beefy.finance`` documents none. Beefy's Databarn
(``databarn.beefy.com/api/v1/...``, another host, 5 requests/s) serves price and TVL
timelines, not APYs; not wired here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from ingest._http import Fetched, Seconds, SourceConfig, fetch_json
from ingest._items import checked_records
from ingest._records import Endpoint
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse

SOURCE = "beefy"
OFFERS = ((Strategy.FARMING, Venue.DEFI),)


def _keyed(body: Any, url: str, head: bytes) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadResponse(
            f"expected an object keyed by vault id at $ of {url}, got {type(body).__name__}",
            url=url,
            body=head,
        )
    return body


class BreakdownEndpoint(Endpoint):
    """``/apy/breakdown``: ``{vaultId: {...}}`` -> ``{"id": vaultId, "breakdown": {...}}``."""

    __slots__ = ()

    def items(self, body: Any, url: str, *, head: bytes = b"") -> list[Any]:
        return [{"id": key, "breakdown": value} for key, value in _keyed(body, url, head).items()]


class TvlEndpoint(Endpoint):
    """``/tvl``: ``{chainId: {vaultId: usd}}`` -> ``{"chain", "id", "tvl"}`` per vault."""

    __slots__ = ()

    def items(self, body: Any, url: str, *, head: bytes = b"") -> list[Any]:
        items: list[dict[str, Any]] = []
        for chain, vaults in _keyed(body, url, head).items():
            if not isinstance(vaults, dict):
                raise BadResponse(
                    f"expected an object keyed by vault id at $.{chain} of {url}, "
                    f"got {type(vaults).__name__}",
                    url=url,
                    body=head,
                )
            items.extend({"chain": chain, "id": key, "tvl": usd} for key, usd in vaults.items())
        return items


BREAKDOWN = BreakdownEndpoint("/apy/breakdown")
TVL = TvlEndpoint("/tvl")
VAULTS = Endpoint("/vaults")
ENDPOINTS = (BREAKDOWN, TVL, VAULTS)


def join(breakdowns: list[Any], tvls: list[Any], vaults: list[Any]) -> list[dict[str, Any]]:
    """One item per vault with an APY or a TVL: the three upstream items side by side.

    Vaults in ``/apy/breakdown`` order, then those only ``/tvl`` lists. A vault id
    ``/tvl`` lists on two chains makes two items of one id (rejected as duplicates
    by the item checks, not merged silently).
    """
    meta: dict[str, Any] = {}
    for vault in vaults:
        if isinstance(vault, dict) and isinstance(vault.get("id"), str):
            meta.setdefault(vault["id"], vault)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for item in breakdowns:
        by_id.setdefault(item["id"], []).append({"id": item["id"], "breakdown": item["breakdown"]})
    for item in tvls:
        same = by_id.setdefault(item["id"], [])
        joined = next((j for j in same if "tvl" not in j), None)
        if joined is None:
            joined = {"id": item["id"]}
            same.append(joined)
        joined["chain"] = item["chain"]
        joined["tvl"] = item["tvl"]
    items = [joined for same in by_id.values() for joined in same]
    for joined in items:
        if joined["id"] in meta:
            joined["vault"] = meta[joined["id"]]
    return items


def join_bodies(bodies: Sequence[Any]) -> list[dict[str, Any]]:
    """The joined items of the parsed ``ENDPOINTS`` responses, in that order."""
    return join(*(e.items(b, e.path) for e, b in zip(ENDPOINTS, bodies, strict=True)))


class Config(SourceConfig):
    base_url: str = "https://api.beefy.finance"
    interval_s: Seconds = 3600.0
    rate_per_s: float = 1.0


async def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    """Fetch the three responses, then yield one joined record per vault (see the doc)."""
    fetched: list[Fetched] = []
    for endpoint in ENDPOINTS:
        fetched.append(
            await fetch_json(
                client, f"{cfg.base_url}{endpoint.path}", cfg, request=endpoint.request
            )
        )
    parts = [e.items(f.body, f.url, head=f.head) for e, f in zip(ENDPOINTS, fetched, strict=True)]
    for record in checked_records(
        join(*parts),
        lambda item, _: item["id"],
        source=SOURCE,
        endpoint=BREAKDOWN.path,
        fetched_at=fetched[0].fetched_at,
        run_id=run_id,
        lenient=any(f.lenient for f in fetched),
    ):
        yield record
