"""Jito JitoSOL staking: the stake pool's daily stats from Jito's Kobe API.

``POST https://kobe.mainnet.jito.network/api/v1/stake_pool_stats`` with the JSON body
``{"bucket_type": "Daily", "range_filter": {"start": <ISO>, "end": <ISO>},
"sort_by": {"field": "BlockTime", "order": "Asc"}}`` (the request of Jito's Rust
client ``kobe-client``, ``StakePoolStatsRequest``: "currently only Daily is
supported") answers one object of parallel series, each ``[{"data", "date"}, ...]``:
``tvl`` (lamports, integers above 2**53), ``apy`` (an APY as a fraction),
``supply`` (JitoSOL, float), ``mev_rewards`` (lamports), ``num_validators``, and
the scalar ``aggregated_mev_rewards`` (lamports, over the requested range).
Docs: Jito's Kobe API pages (github.com/jito-foundation/jito-omnidocs,
``jitosol/jitosol-liquid-staking/for-developers``) and
https://docs.rs/kobe-client/latest/kobe_client/types/struct.StakePoolStatsRequest.html.

The body is no list of items: a point of one day is spread over the series. Each
record is one day, ``{"date", "tvl", "apy", "supply", "mev_rewards",
"num_validators", "aggregated_mev_rewards"}``: every series' ``data`` of that date
under the series' name, the scalars repeated in each day, values verbatim (big
integers stay integers). Nothing upstream said is dropped: the response is the
union of its records, so the archive keeps it all, and each record carries the
TVL and supply its APY goes with. (Taking ``apy`` as the items and looking the
TVL up would archive the APY series only.) A series without a point for a date
leaves that name out of the day; a date that two points of one series give is
two records of one id, which the item checks reject as a duplicate.

The snapshot asks for the last two days of daily buckets, computed when it is
fetched; the history (``backfill``) asks for the window's range in one request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ingest._history import History, Point, Window, points_of
from ingest._http import Request, Seconds, SourceConfig
from ingest._records import Endpoint, collect_endpoints
from transforms.units import iso_time
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse

SOURCE = "jito"
OFFERS = ((Strategy.STAKING, Venue.DEFI),)
PATH = "/api/v1/stake_pool_stats"
# The series a response must have for its days to be points at all.
REQUIRED = ("apy", "tvl")
SNAPSHOT_DAYS = 2
# Before the JitoSOL stake pool (late 2022): the start of an open backfill window.
EARLIEST = datetime(2022, 9, 1, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stats_request(start: datetime, end: datetime) -> dict[str, Any]:
    """The JSON body asking for the daily buckets of ``[start, end]``, oldest first."""
    return {
        "bucket_type": "Daily",
        "range_filter": {"start": _iso(start), "end": _iso(end)},
        "sort_by": {"field": "BlockTime", "order": "Asc"},
    }


def days(body: Any, url: str, head: bytes = b"") -> list[dict[str, Any]]:
    """The response's series joined by date: one item per day, values verbatim."""
    if not isinstance(body, dict) or not all(isinstance(body.get(k), list) for k in REQUIRED):
        found = sorted(body)[:10] if isinstance(body, dict) else type(body).__name__
        raise BadResponse(
            f"expected an object with the series {list(REQUIRED)} (lists) at $ of {url}, "
            f"found {found}",
            url=url,
            body=head,
        )
    scalars = {k: v for k, v in body.items() if not isinstance(v, list)}
    by_date: dict[str, list[dict[str, Any]]] = {}
    odd: list[dict[str, Any]] = []  # points without a text date: each its own day
    for name, series in body.items():
        if not isinstance(series, list):
            continue
        for point in series:
            date = point.get("date") if isinstance(point, dict) else None
            value = point.get("data") if isinstance(point, dict) else point
            if not isinstance(date, str):
                odd.append({"date": date, name: value, **scalars})
                continue
            same = by_date.setdefault(date, [])
            day = next((d for d in same if name not in d), None)
            if day is None:
                day = {"date": date}
                same.append(day)
            day[name] = value
    items = [{**day, **scalars} for same in by_date.values() for day in same]
    return items + odd


class StatsEndpoint(Endpoint):
    """Kobe's stake-pool stats: a POST for the last days; its items are days (:func:`days`)."""

    __slots__ = ()

    @property
    def request(self) -> Request:
        end = datetime.now(UTC)
        body = stats_request(end - timedelta(days=SNAPSHOT_DAYS), end)
        return Request(self.params, self.method, body, self.check)

    def items(self, body: Any, url: str, *, head: bytes = b"") -> list[Any]:
        return days(body, url, head)


ENDPOINTS = (StatsEndpoint(PATH, id_key="date", method="POST"),)


def _points(body: Any, entity: str, url: str, head: bytes) -> Iterable[Point]:
    return points_of(days(body, url, head), "date", iso_time)


def _window_request(window: Window, entity: str) -> dict[str, Any]:
    return stats_request(window.since or EARLIEST, window.until or datetime.now(UTC))


# The daily buckets since the stake pool began, in one POST for the window.
HISTORY = History(PATH, _points, entities=("jitosol",), json=_window_request)


class Config(SourceConfig):
    base_url: str = "https://kobe.mainnet.jito.network"
    interval_s: Seconds = 3600.0  # daily buckets: an hourly poll sees a new day within the hour
    rate_per_s: float = 1.0
    history_rate_per_s: float = 1.0
    history_concurrency: int = 1


def collect(client: httpx.AsyncClient, cfg: Config, run_id: str) -> AsyncIterator[RawRecord]:
    return collect_endpoints(client, cfg, run_id, source=SOURCE, endpoints=ENDPOINTS)
