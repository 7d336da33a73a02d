"""Bybit Earn: flexible savings products and their estimated APR.

``GET https://api.bybit.com/v5/earn/product?category=FlexibleSaving`` (public, no
key) answers ``{"retCode": 0, "retMsg": "", "result": {"list": [{"category",
"estimateApr": "3%", "coin", "productId", "status", ...}]}, "time": <ms>}``.
``estimateApr`` is a PERCENT STRING with its ``%`` sign, updated every 10 minutes.
A failed request is a status-200 body with ``retCode != 0``: ``10006`` (too many
visits) and ``10018`` (IP rate limit) are retriable, the others (``10001``
parameter error, ``10016`` server error, ...) are not.
Docs: https://bybit-exchange.github.io/docs/v5/earn/product-info

Only ``FlexibleSaving`` is fetched. ``category=OnChain`` (on-chain staking) is the
same path with another query, and a source's endpoints are distinct paths (the
contract suite serves one recorded response per path and checks each request's
query against its endpoint's), so it cannot be a second Endpoint; the transform
reads OnChain items already (as staking) for when it is added as its own source.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse, UpstreamUnavailable

SOURCE = "bybit"
OFFERS = ((Strategy.LENDING, Venue.CEFI),)
RATE_LIMITED = frozenset({10006, 10018})


def check(body: Any, url: str, head: bytes) -> None:
    """A Bybit error answer (``{"retCode": 10006, "retMsg": "..."}``) as its error."""
    if not isinstance(body, dict) or "retCode" not in body:
        return  # no envelope: the items' shape check says what is wrong
    code, msg = body["retCode"], body.get("retMsg")
    if code == 0:
        return
    if code in RATE_LIMITED:
        raise UpstreamUnavailable(f"Bybit rate limit {code} ({msg}) from {url}")
    raise BadResponse(f"Bybit error {code} from {url}: {msg}", url=url, body=head)


ENDPOINTS = (
    Endpoint(
        "/v5/earn/product",
        items_at=("result", "list"),
        id_key="productId",
        params=(("category", "FlexibleSaving"),),
        check=check,
    ),
)


class Config(SourceConfig):
    base_url: str = "https://api.bybit.com"
    interval_s: Seconds = 600.0  # estimateApr is updated every 10 minutes
    rate_per_s: float = 2.0


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
