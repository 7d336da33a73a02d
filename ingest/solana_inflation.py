"""Solana's annual supply inflation and its published schedule, from the public JSON-RPC.

Two ``POST https://api.mainnet-beta.solana.com/`` per poll (JSON-RPC 2.0; docs:
https://solana.com/docs/rpc/http/getinflationrate and ``.../getinflationgovernor``):

- ``{"jsonrpc": "2.0", "id": 1, "method": "getInflationRate"}`` -> ``{"result":
  {"total", "validator", "foundation", "epoch"}}``: annual inflation as FRACTIONS for
  the current epoch only (no history method).
- ``{"jsonrpc": "2.0", "id": 1, "method": "getInflationGovernor"}`` -> ``{"result":
  {"initial", "terminal", "taper", "foundation", "foundationTerm"}}``: the schedule,
  fractions a year (``foundationTerm`` in years). Mainnet's ``initial`` is 0.08; the
  docs' example shows 0.15.

Errors come with status 200 as ``{"error": {"code", "message"}}`` (:func:`check`).

One observation needs both answers: :func:`collect` yields **one record** per poll,
``{"rate": <getInflationRate result>, "governor": <getInflationGovernor result or
null>}``, the upstream values verbatim side by side, under the path ``/`` with the
epoch as native id. If the rate fails there is no record; if the governor fails (an
HTTP or JSON-RPC error, no ``result`` object) the rate is still yielded with
``governor`` null, and the fetch then fails naming it, as :mod:`ingest.cosmos_inflation`
does. A ``result`` that holds no schedule is kept as it came: the transform says so
(``schedule unreadable``) and keeps the rate. :func:`join_bodies` is the same join
from parsed bodies.

Both requests share one URL, so only the rate is in ``ENDPOINTS`` (recordings are
named after an endpoint's path); the governor is :data:`GOVERNOR`, recorded as
``getInflationGovernor-*.json``, which names no endpoint. A server that answers
every ``POST /`` alike (``yieldstream demo``'s loopback) gives the governor the
rate's answer: kept, and ``schedule unreadable``, not a failed fetch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import structlog

from ingest._http import Seconds, SourceConfig, fetch_json
from ingest._items import checked_records
from ingest._records import Endpoint
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse, UpstreamRejected, UpstreamUnavailable, YieldstreamError

SOURCE = "solana-inflation"
OFFERS = ((Strategy.OTHER, Venue.DEFI),)
# Rate-limit and node-busy codes of Solana's RPC (and 429 mirrored as a code).
_RETRIABLE = {429, -32005, -32004, -32014}

log = structlog.get_logger(__name__)


def check(body: Any, url: str, head: bytes) -> None:
    """Fail the fetch on a JSON-RPC ``error`` (retriable for rate limits / busy nodes)."""
    if not isinstance(body, dict):
        raise BadResponse(f"expected a JSON-RPC response object from {url}", url=url, body=head)
    error = body.get("error")
    if error is not None:
        code = error.get("code") if isinstance(error, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        text = f"JSON-RPC error {code} from {url}: {message}"
        if code in _RETRIABLE or "rate limit" in str(message).lower():
            raise UpstreamUnavailable(text)
        raise UpstreamRejected(text)
    if not isinstance(body.get("result"), dict):
        raise BadResponse(f"JSON-RPC response from {url} holds no result", url=url, body=head)


def _rpc(method: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method}


RATE = Endpoint(
    "/",
    items_at=("result",),
    id_key="epoch",
    single=True,
    method="POST",
    json=_rpc("getInflationRate"),
    check=check,
)
GOVERNOR = Endpoint(
    "/",
    items_at=("result",),
    id_key="",
    single=True,
    method="POST",
    json=_rpc("getInflationGovernor"),
    check=check,
)
ENDPOINTS = (RATE,)


def join(rates: list[Any], governors: list[Any]) -> list[dict[str, Any]]:
    """The poll's item: ``{"rate", "governor"}``, each as upstream gave it (or null)."""
    return [{"rate": rate, "governor": governors[0] if governors else None} for rate in rates]


def joined_id(item: dict[str, Any]) -> Any:
    """A joined item's native id: its rate's epoch, as upstream gave it."""
    rate = item.get("rate")
    return RATE.native_id(rate, 0)


def join_bodies(bodies: Sequence[Any], governor: Any = None) -> list[dict[str, Any]]:
    """The joined item of the parsed ``ENDPOINTS`` responses (the rate's) and, if
    given, the parsed getInflationGovernor response."""
    (rate,) = bodies
    governors = [] if governor is None else GOVERNOR.items(governor, "getInflationGovernor")
    return join(RATE.items(rate, RATE.path), governors)


class Config(SourceConfig):
    base_url: str = "https://api.mainnet-beta.solana.com"
    interval_s: Seconds = 3600.0  # an epoch lasts about two days
    rate_per_s: float = 1.0


async def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    """The rate and the schedule in one record (see the module doc)."""
    url = f"{cfg.base_url}{RATE.path}"
    fetched = await fetch_json(client, url, cfg, request=RATE.request)
    rates = RATE.items(fetched.body, fetched.url, head=fetched.head)
    lenient = fetched.lenient
    governors: list[Any] = []
    failure: str | None = None
    try:
        got = await fetch_json(client, url, cfg, request=GOVERNOR.request)
        governors = GOVERNOR.items(got.body, got.url, head=got.head)
        lenient = lenient or got.lenient
    except YieldstreamError as exc:
        log.warning("solana_governor_failed", error=str(exc))
        failure = str(exc)
    for record in checked_records(
        join(rates, governors),
        lambda item, _: joined_id(item),
        source=SOURCE,
        endpoint=RATE.path,
        fetched_at=fetched.fetched_at,
        run_id=run_id,
        lenient=lenient,
    ):
        yield record
    if failure is not None:
        raise UpstreamRejected(f"getInflationGovernor failed: {failure}")
