"""Cosmos SDK chains' inflation, bonded ratio and community tax, from their LCD (REST).

One keyless host for many chains: cosmos.directory's REST proxy,
``https://rest.cosmos.directory/{chain}/...``, where ``{chain}`` is the chain's
Chain Registry name (``cosmoshub``, ``akash``, ``celestia``). The proxy load-balances
over the public REST APIs the Chain Registry lists (docs:
https://github.com/eco-stake/cosmos-directory, README: "RPC and REST proxies for the
public APIs listed in the Chain Registry"; the registry's own ``cosmoshub/chain.json``
lists ``https://rest.cosmos.directory/cosmoshub`` as an API). Three ``GET`` per chain
(Cosmos SDK x/mint, x/staking, x/distribution; docs: https://docs.cosmos.network):

- ``/{chain}/cosmos/mint/v1beta1/inflation`` -> ``{"inflation": "0.130197115720711261"}``:
  the annual inflation as a ``LegacyDec`` **fraction** string; the x/mint README shows
  its 1e18-scaled integer form ``"130197115720711261"`` too (both read by
  :func:`transforms.units.legacy_dec`).
- ``/{chain}/cosmos/staking/v1beta1/pool`` -> ``{"pool": {"not_bonded_tokens",
  "bonded_tokens"}}``: integer strings in the base denom (``uatom``, ``uakt``).
- ``/{chain}/cosmos/distribution/v1beta1/params`` -> ``{"params": {"community_tax",
  "base_proposer_reward", "bonus_proposer_reward", "withdraw_addr_enabled"}}``:
  ``LegacyDec`` fraction strings.

Failures come with an HTTP status (gRPC-gateway's ``{"code": 5, "message": ...,
"details": []}``), mapped by :mod:`ingest._http`; :func:`check` also refuses such a
body served with status 200.

One observation per chain needs the three answers: :func:`collect` fetches them per
chain and yields **one record per chain**, ``{"inflation": <the inflation string>,
"pool": <the pool object>, "params": <the params object>}``: the three upstream
values verbatim side by side, under the chain's inflation path (native id
``inflation``). A chain whose inflation fails makes no record; one whose pool or
params fail still yields its inflation (that part ``null``); the fetch then fails
naming them. :func:`join_bodies` is the same join from one chain's parsed bodies.

History: none. The LCD answers for an older block only with the
``x-cosmos-block-height`` header on an archive (unpruned) node, which the public
proxy does not promise; not wired here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import structlog
from pydantic import field_validator

from ingest._http import Seconds, SourceConfig, fetch_json
from ingest._items import checked_records
from ingest._records import Endpoint
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse, UpstreamRejected, YieldstreamError

SOURCE = "cosmos-inflation"
OFFERS = ((Strategy.OTHER, Venue.DEFI),)
NATIVE_ID = "inflation"  # one record per chain; its path names the chain

log = structlog.get_logger(__name__)


def check(body: Any, url: str, head: bytes) -> None:
    """A gRPC-gateway error body (``{"code": 5, "message": ...}``) served with status 200."""
    if isinstance(body, dict) and isinstance(body.get("code"), int) and body["code"] != 0:
        raise BadResponse(
            f"Cosmos LCD error {body['code']} for {url}: {body.get('message')}",
            url=url,
            body=head,
        )


INFLATION = Endpoint(
    "/{entity}/cosmos/mint/v1beta1/inflation",
    single=True,
    id_key="",
    check=check,
    entities="chains",
)
POOL = Endpoint(
    "/{entity}/cosmos/staking/v1beta1/pool",
    items_at=("pool",),
    single=True,
    id_key="",
    check=check,
    entities="chains",
)
PARAMS = Endpoint(
    "/{entity}/cosmos/distribution/v1beta1/params",
    items_at=("params",),
    single=True,
    id_key="",
    check=check,
    entities="chains",
)
ENDPOINTS = (INFLATION, POOL, PARAMS)


def join(inflations: list[Any], pools: list[Any], params: list[Any]) -> list[dict[str, Any]]:
    """One chain's item: ``{"inflation", "pool", "params"}``, each as upstream gave it.

    ``inflations`` is the mint response itself (one object); the pool and params
    lists hold one object each, or none (``null``: that response failed).
    """
    return [
        {
            "inflation": mint.get("inflation"),
            "pool": pools[0] if pools else None,
            "params": params[0] if params else None,
        }
        for mint in inflations
    ]


def joined_id(item: dict[str, Any]) -> str:
    """A joined item's native id: ``inflation`` (one per chain; the path names the chain)."""
    return NATIVE_ID


def join_bodies(bodies: Sequence[Any]) -> list[dict[str, Any]]:
    """The joined item of one chain's parsed ``ENDPOINTS`` responses, in that order."""
    return join(*(e.items(b, e.path) for e, b in zip(ENDPOINTS, bodies, strict=True)))


class Config(SourceConfig):
    base_url: str = "https://rest.cosmos.directory"
    # Inflation moves block by block but slowly (x/mint adjusts it towards the bonded
    # goal over a year): hourly is plenty.
    interval_s: Seconds = 3600.0
    # Chain Registry names; each needs a row in transforms.cosmos_inflation.CHAINS.
    chains: tuple[str, ...] = ("cosmoshub", "akash", "celestia")
    # No documented limit on the public proxy: one request a second.
    rate_per_s: float = 1.0

    @field_validator("chains")
    @classmethod
    def _once_each(cls, chains: tuple[str, ...]) -> tuple[str, ...]:
        """A chain listed twice is polled once (it would be two rows a poll)."""
        return tuple(dict.fromkeys(chains))


async def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    """Per chain: its inflation, pool and params in one record (see the module doc)."""
    failed: list[str] = []
    for chain in cfg.chains:
        path = INFLATION.concrete(chain)
        try:
            mint = await fetch_json(client, f"{cfg.base_url}{path}", cfg, request=INFLATION.request)
            parts: list[list[Any]] = [INFLATION.items(mint.body, mint.url, head=mint.head)]
        except YieldstreamError as exc:
            failed.append(f"{path}: {exc}")
            continue
        lenient = mint.lenient
        for endpoint in (POOL, PARAMS):
            other = endpoint.concrete(chain)
            try:
                got = await fetch_json(
                    client, f"{cfg.base_url}{other}", cfg, request=endpoint.request
                )
                parts.append(endpoint.items(got.body, got.url, head=got.head))
                lenient = lenient or got.lenient
            except YieldstreamError as exc:
                log.warning("cosmos_lcd_part_failed", chain=chain, path=other, error=str(exc))
                failed.append(f"{other}: {exc}")
                parts.append([])
        for record in checked_records(
            join(*parts),
            lambda item, _: joined_id(item),
            source=SOURCE,
            endpoint=path,
            fetched_at=mint.fetched_at,
            run_id=run_id,
            lenient=lenient,
        ):
            yield record
    if failed:
        raise UpstreamRejected(f"{len(failed)} of the requests failed: " + "; ".join(failed))
