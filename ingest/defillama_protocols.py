"""DefiLlama protocols: each protocol's TVL and ``category``.

``GET https://api.llama.fi/protocols`` answers a bare JSON list (~8,000 rows). The
category classifies the pools of ``defillama-yields`` by strategy, so that source
waits for this one in each daemon's first cycle. Docs: https://defillama.com/docs/api

History: ``GET https://api.llama.fi/protocol/{slug}`` answers the protocol with its
daily ``tvl`` series (``[{"date": <unix seconds>, "totalLiquidityUSD"}, ...]``, the
last point intraday) and ``chainTvls``: per chain the same series, next to series
that the default TVL leaves out and that must not be added to it. Those are named
with a suffix (``Ethereum-borrowed``, ``Solana-staking``, ``BSC-pool2``) or alone
(``borrowed``, ``staking``, ``pool2``: their sums over chains). The plain chain
series add up to ``tvl``; only they are kept per chain.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import httpx

from ingest._history import History, Point, points_of
from ingest._http import Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from transforms.defillama_protocols import TOTAL
from transforms.units import unix_time
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse

SOURCE = "defillama-protocols"
# What its products are (the strategy of each pool, from its category).
OFFERS = tuple((strategy, Venue.DEFI) for strategy in Strategy)
ENDPOINTS = (Endpoint("/protocols", id_key="slug"),)
# chainTvls series outside the default TVL, alone or as a chain's suffix (lowercase).
EXTRA_SERIES: Final = frozenset(
    {
        "borrowed",
        "staking",
        "pool2",
        "vesting",
        "offers",
        "treasury",
        "doublecounted",
        "liquidstaking",
        "dcandlsoverlap",
    }
)
_TOTAL = Endpoint("/protocol/{entity}", items_at=("tvl",))


class Config(SourceConfig):
    base_url: str = "https://api.llama.fi"
    interval_s: Seconds = 3600.0


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)


def is_chain(key: str) -> bool:
    """Whether a ``chainTvls`` key is a plain chain series (counted in the total)."""
    lowered = key.lower()
    if lowered in EXTRA_SERIES:
        return False
    _, dash, suffix = lowered.rpartition("-")
    return not (dash and suffix in EXTRA_SERIES)


def _protocol_points(body: Any, entity: str, url: str, head: bytes) -> Iterator[Point]:
    """The total series (``tvl@<date>``), then each plain chain's (``<chain>@<date>``)."""
    yield from points_of(_TOTAL.items(body, url, head=head), "date", unix_time, f"{TOTAL}@")
    chains = body.get("chainTvls") or {}
    if not isinstance(chains, dict):
        raise BadResponse(f"expected an object at $.chainTvls of {url}", url=url, body=head)
    for key, series in chains.items():
        if not is_chain(key):
            continue
        items = series.get("tvl") if isinstance(series, dict) else None
        if not isinstance(items, list):
            raise BadResponse(
                f"expected a list at $.chainTvls[{key!r}].tvl of {url}", url=url, body=head
            )
        yield from points_of(items, "date", unix_time, f"{key}@")


# Every protocol of /protocols has one; its /protocols row gives category and chain.
HISTORY = History("/protocol/{entity}", _protocol_points)
