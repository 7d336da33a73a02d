"""Curve pools: TVL, CRV gauge rewards and trading-fee (base) APYs, per chain.

``GET https://api.curve.finance/v1/getPools/all/{chain}`` (every registry of the
chain; ``/v1/getPools/{chain}/{registry}`` is one of them, same shape) answers
``{"success": true, "data": {"poolData": [{"address", "coins": [{"address",
"symbol", "usdPrice", "decimals", "poolBalance"}], "usdTotal", "gaugeAddress",
"gaugeCrvApy": [min, max], "gaugeRewards": [{"tokenAddress", "symbol", "apy"}],
...}], "tvlAll", "generatedTimeMs"}}``: ``usdTotal`` USD, ``gaugeCrvApy`` and
``gaugeRewards[].apy`` PERCENT (responses before 2023 have no APY fields at all);
numbers are often strings, raw balances integer strings beyond 2**53.
``GET /v1/getBaseApys/{chain}`` answers ``{"success": true, "data": {"baseApys":
[{"address", "latestDailyApyPcent", "latestWeeklyApyPcent",
"additionalApyPcentFromLsts"}]}}``: trading-fee APYs in PERCENT (already compounded
by Curve: ``(1 + daily rate) ** 365 - 1``). The host moved from ``api.curve.fi``.
Docs: https://api.curve.finance/v1/documentation (source: github.com/curvefi/curve-api)

Joining base APYs to pools: a transform sees one record, and a pool's figures sit in
two responses. With ``join_base_apys`` on (the default), collect fetches both per
chain and yields ONE record per pool, ``{"pool": <pool item>, "baseApy": <its
getBaseApys item, or null>}``: both items verbatim in a small envelope, under the
chain's getPools path and the pool's address, so one poll is one row per pool
(never a second row under the same key from getBaseApys). A pool getBaseApys does
not list (pools of the 2022 recordings, new pools) keeps its TVL and rewards, its
total unknown. Off, collect yields the bare pool items (TVL and rewards only) and
requests getBaseApys never. Both endpoints are declared in ``ENDPOINTS`` (each has a
recorded response, ``getBaseApys-<chain>-*.json``), but getBaseApys is fetched only
by the joined collect; :func:`join_bodies` is that join from the parsed bodies of
one chain (for checks that start from recorded responses).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import structlog
from pydantic import field_validator

from ingest._http import Seconds, SourceConfig, fetch_json
from ingest._items import checked_records
from ingest._records import Endpoint, collect_endpoints
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse, UpstreamRejected, YieldstreamError

SOURCE = "curve"
OFFERS = ((Strategy.FARMING, Venue.DEFI),)

log = structlog.get_logger(__name__)


def check(body: Any, url: str, head: bytes) -> None:
    """Curve's failure envelope (``{"success": false, "err": ...}``) as a failed fetch."""
    if isinstance(body, dict) and body.get("success") is False:
        reason = body.get("err") or body.get("error") or body.get("message")
        raise BadResponse(f"Curve API failed for {url}: {reason}", url=url, body=head)


POOLS = Endpoint(
    "/v1/getPools/all/{entity}",
    items_at=("data", "poolData"),
    id_key="address",
    check=check,
    entities="chains",
)
# Fetched by the joined collect beside each chain's pools (see the module doc),
# never on its own: its items are no records.
BASE_APYS = Endpoint(
    "/v1/getBaseApys/{entity}",
    items_at=("data", "baseApys"),
    id_key="address",
    check=check,
    entities="chains",
)
ENDPOINTS = (POOLS, BASE_APYS)


def _address(item: Any) -> str | None:
    address = item.get("address") if isinstance(item, dict) else None
    return address.lower() if isinstance(address, str) else None


def join(pools: list[Any], base_apys: list[Any]) -> list[dict[str, Any]]:
    """One envelope per pool, in getPools order: ``{"pool", "baseApy"}`` (null if unlisted).

    Addresses match case-insensitively (the two endpoints checksum them alike, but
    nothing promises it); an address getBaseApys lists twice joins its first item.
    """
    by_address: dict[str, Any] = {}
    for item in base_apys:
        address = _address(item)
        if address is not None:
            by_address.setdefault(address, item)
    joined = []
    for pool in pools:
        address = _address(pool)
        joined.append(
            {"pool": pool, "baseApy": None if address is None else by_address.get(address)}
        )
    return joined


def joined_id(item: dict[str, Any]) -> Any:
    """A joined item's native id: its pool's address, as getPools gave it."""
    return POOLS.native_id(item["pool"], 0)


def join_bodies(bodies: Sequence[Any]) -> list[dict[str, Any]]:
    """The joined items of one chain's parsed ``ENDPOINTS`` responses, in that order."""
    return join(*(e.items(b, e.path) for e, b in zip(ENDPOINTS, bodies, strict=True)))


class Config(SourceConfig):
    base_url: str = "https://api.curve.finance"
    interval_s: Seconds = 3600.0  # base APYs are daily; getPools is cached 5 minutes
    # Curve's blockchain ids, as DefiLlama's curve-dex adaptor polls them.
    chains: tuple[str, ...] = (
        "ethereum",
        "arbitrum",
        "optimism",
        "polygon",
        "base",
        "fraxtal",
        "xdai",
        "avalanche",
        "fantom",
        "bsc",
        "sonic",
        "kava",
        "celo",
    )
    # Also fetch /v1/getBaseApys/{chain} and yield {"pool", "baseApy"} envelopes:
    # without it Curve rows carry no base APY, hence no total (``apy_pct`` None).
    join_base_apys: bool = True
    # No documented limit; the responses are large (MBs for Ethereum): one a second.
    rate_per_s: float = 1.0

    @field_validator("chains")
    @classmethod
    def _once_each(cls, chains: tuple[str, ...]) -> tuple[str, ...]:
        """A chain listed twice is polled once (its pools would be rows twice a poll)."""
        return tuple(dict.fromkeys(chains))


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    if not cfg.join_base_apys:
        return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=(POOLS,))
    return _joined(client, cfg, run_id)


async def _joined(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    """Per chain: the pools, each with its base APY item, in one envelope record.

    A chain whose pools fail does not stop the others; one whose base APYs fail
    still yields its pools (``"baseApy": null``). The fetch then fails naming them.
    """
    failed: list[str] = []
    for chain in cfg.chains:
        path = POOLS.concrete(chain)
        try:
            pools = await fetch_json(client, f"{cfg.base_url}{path}", cfg, request=POOLS.request)
            pool_items = POOLS.items(pools.body, pools.url, head=pools.head)
        except YieldstreamError as exc:
            failed.append(f"{path}: {exc}")
            continue
        base_items: list[Any] = []
        lenient = pools.lenient
        base_path = BASE_APYS.concrete(chain)
        try:
            base = await fetch_json(
                client, f"{cfg.base_url}{base_path}", cfg, request=BASE_APYS.request
            )
            base_items = BASE_APYS.items(base.body, base.url, head=base.head)
            lenient = lenient or base.lenient
        except YieldstreamError as exc:
            log.warning("curve_base_apys_failed", chain=chain, error=str(exc))
            failed.append(f"{base_path}: {exc}")
        for record in checked_records(
            join(pool_items, base_items),
            lambda item, _: joined_id(item),
            source=SOURCE,
            endpoint=path,
            fetched_at=pools.fetched_at,
            run_id=run_id,
            lenient=lenient,
        ):
            yield record
    if failed:
        raise UpstreamRejected(f"{len(failed)} of the requests failed: " + "; ".join(failed))
