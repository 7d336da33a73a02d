"""History endpoints: one entity's past values, for ``yieldstream backfill``.

A source with a history endpoint defines ``HISTORY``, a :class:`History`: the path
of one entity's history (``/chart/{entity}``), and how its response becomes
RawRecords of kind ``history``, one per upstream point, in a time :class:`Window`.
The entities are those the source's own snapshot names (every pool of ``/pools``,
every protocol of ``/protocols``), unless the source fixes them (``entities``).

Points are kept or dropped by their own time; a point whose time cannot be read is
kept, so that its transform rejects it with the reason instead of it vanishing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from ingest._http import SourceConfig, dump_item, fetch_json
from yieldstream.contracts import RawRecord


@dataclass(frozen=True, slots=True)
class Window:
    """``[since, until)`` in UTC; None is open on that side."""

    since: datetime | None = None
    until: datetime | None = None

    def holds(self, moment: datetime | None) -> bool:
        if moment is None:  # unreadable: keep it, its transform says why
            return True
        return (self.since is None or moment >= self.since) and (
            self.until is None or moment < self.until
        )


@dataclass(frozen=True, slots=True)
class Point:
    """One history item of a response: its native id, the item, and its time if readable."""

    native_id: str
    item: Any
    moment: datetime | None


# (parsed body, entity, url, head) -> the points; BadResponse when the shape is wrong.
Points = Callable[[Any, str, str, bytes], Iterable[Point]]


@dataclass(frozen=True, slots=True)
class History:
    path: str  # with ``{entity}``, e.g. ``/chart/{entity}``
    points: Points
    # Entities when the source's snapshot does not name them (one fixed series).
    entities: tuple[str, ...] = ()

    def endpoint(self, entity: str) -> str:
        return self.path.format(entity=entity)

    def entity_of(self, endpoint: str) -> str:
        """The entity whose history ``endpoint`` is (the inverse of :meth:`endpoint`)."""
        head, _, tail = self.path.partition("{entity}")
        return endpoint[len(head) : len(endpoint) - len(tail)]


async def fetch_history(
    client: httpx.AsyncClient,
    cfg: SourceConfig,
    history: History,
    *,
    source: str,
    entity: str,
    run_id: str,
    window: Window,
) -> list[RawRecord]:
    """Fetch one entity's history (retrying 429/5xx) and make its records in ``window``."""
    endpoint = history.endpoint(entity)
    fetched = await fetch_json(client, f"{cfg.base_url}{endpoint}", cfg)
    return [
        RawRecord(
            source=source,
            endpoint=endpoint,
            fetched_at=fetched.fetched_at,
            run_id=run_id,
            kind="history",
            native_id=point.native_id,
            payload=dump_item(point.item, fetched.lenient),
        )
        for point in history.points(fetched.body, entity, fetched.url, fetched.head)
        if window.holds(point.moment)
    ]


def points_of(
    items: Iterable[Any], id_key: str, time_of: Callable[[Any], datetime | None], prefix: str = ""
) -> Iterator[Point]:
    """Points of a list of items, each named by ``prefix`` + its ``id_key`` (or its index)."""
    for index, item in enumerate(items):
        value = item.get(id_key) if isinstance(item, dict) else None
        native = str(value) if value is not None and value != "" else f"#{index}"
        yield Point(prefix + native, item, time_of(value))
