"""History endpoints: one entity's past values, for ``yieldstream backfill``.

A source with a history endpoint defines ``HISTORY``, a :class:`History`: the path
of one entity's history (``/chart/{entity}``), and how its response becomes
RawRecords of kind ``history``, one per upstream point, in a time :class:`Window`.
The entities are those the source's own snapshot names (every pool of ``/pools``,
every protocol of ``/protocols``), unless the source fixes them (``entities``).

Points are kept or dropped by their own time; a point whose time cannot be read is
kept, so that its transform rejects it with the reason instead of it vanishing.
Points are checked one by one like snapshot items (:mod:`ingest._items`).

An entity (an upstream id) goes into the URL as one percent-encoded path segment;
one that cannot be a segment (empty, ``.``, ``..``, holding ``/`` or ``\\``, not
storable text) is :class:`~yieldstream.errors.UnsafeId`: that entity fails with the
reason, and nothing is requested for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote

import httpx

from ingest._http import Check, Request, SourceConfig, fetch_json
from ingest._items import Items
from ingest._timed import TimedItems
from yieldstream.contracts import RawRecord
from yieldstream.errors import UnsafeId
from yieldstream.items import id_problem, shown


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


class Point(NamedTuple):
    """One history item of a response: its native id, the item, and its time if readable.

    A tuple, not a dataclass: a response makes one per point, thousands at a time.
    """

    native_id: str
    item: Any
    moment: datetime | None


# (parsed body, entity, url, head) -> the points; BadResponse when the shape is wrong.
Points = Callable[[Any, str, str, bytes], Iterable[Point]]


_FIELD = re.compile(r"\{(\w+)\}")


@lru_cache(maxsize=64)
def _endpoint_pattern(path: str) -> re.Pattern[str]:
    """The endpoints of a history ``path``, its fields as named groups."""
    return re.compile(
        _FIELD.sub(r"(?P<\1>.*?)", re.escape(path).replace(r"\{", "{").replace(r"\}", "}"))
    )


@dataclass(frozen=True, slots=True)
class History:
    # The path of one entity's history: ``/chart/{entity}``; or the entity as a query
    # parameter, ``/rates?ccy={entity}``, joined to the query of each request; or an
    # entity of several parts, one a segment (``/markets/{chain}/{address}/history``),
    # written ``<chain><separator><address>``; or after a ``#``, for an API that takes
    # the entity in a POST body (``/graphql#{entity}``: the request goes to ``/graphql``,
    # the records name the entity).
    path: str
    points: Points
    # Entities when the source's snapshot does not name them (one fixed series).
    entities: tuple[str, ...] = ()
    # The query of the first request for a window (``start``/``end``, ``limit``).
    query: Callable[[Window], dict[str, str]] | None = None
    # The query of the next page, from the points of the last one and its query, or
    # None when the history is complete; at most ``max_pages`` requests an entity.
    next_query: Callable[[list[Point], dict[str, str], Window], dict[str, str] | None] | None = None
    max_pages: int = 1
    check: Check | None = None  # see ingest._http.Check
    # The JSON body of a POST for a window and an entity (an API that takes its range
    # and its entity in a body: a GraphQL query's variables).
    json: Callable[[Window, str], Any] | None = None
    separator: str = ""  # between the parts of an entity of several (see ``path``)
    # Raises ValueError for an entity this API cannot be asked for (a malformed id).
    validate: Callable[[str], object] | None = None
    # A faster reading of a response of the common shape (ingest._timed.timed_items),
    # with ``points`` for any other; for a history of one page (no ``next_query``).
    read: Callable[[bytes], TimedItems | None] | None = None

    def _parts(self, entity: str) -> dict[str, str]:
        fields = _FIELD.findall(self.path)
        if len(fields) <= 1:
            return dict.fromkeys(fields, entity)
        parts = entity.split(self.separator, len(fields) - 1) if self.separator else [entity]
        if len(parts) != len(fields):
            shape = self.separator.join(f"<{f}>" for f in fields)
            raise UnsafeId(f"entity not requested: {shown(entity)} is not {shape}")
        return dict(zip(fields, parts, strict=True))

    def endpoint(self, entity: str) -> str:
        """The endpoint records of ``entity`` name (the entity as it is, unescaped)."""
        return self.path.format(**self._parts(entity))

    def url_path(self, entity: str) -> str:
        """The path to request: each part percent-encoded as one segment, or UnsafeId."""
        if self.validate is not None:
            try:
                self.validate(entity)
            except ValueError as exc:
                raise UnsafeId(f"entity not requested: {exc}") from None
        parts = self._parts(entity)
        for part in parts.values():
            problem = id_problem(part)
            if problem is None and (part in ("", ".", "..") or "/" in part or "\\" in part):
                problem = f"{shown(part)} would change the path"
            if problem is not None:
                raise UnsafeId(f"entity not requested: {problem}")
        path = self.path.format(**{k: quote(v, safe="") for k, v in parts.items()})
        return path.partition("#")[0]

    def entity_of(self, endpoint: str) -> str:
        """The entity whose history ``endpoint`` is (the inverse of :meth:`endpoint`)."""
        match = _endpoint_pattern(self.path).fullmatch(endpoint)
        if match is None:
            return ""
        return self.separator.join(match.groups())


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
    """Fetch one entity's history (retrying 429/5xx) and make its records in ``window``.

    A paged history (``next_query``) is fetched page after page, at most
    ``max_pages``; a point repeated on two pages is kept once.
    """
    # An entity given as a query parameter (``/rates?ccy={entity}``) joins the query.
    path, _, fixed = history.url_path(entity).partition("?")
    url = f"{cfg.base_url}{path}"
    query = {**dict(parse_qsl(fixed)), **(history.query(window) if history.query else {})}
    records: list[RawRecord] = []
    seen: set[str] = set()
    for _ in range(history.max_pages):
        request = Request(
            tuple(query.items()),
            method="GET" if history.json is None else "POST",
            json=None if history.json is None else history.json(window, entity),
            check=history.check,
            read=history.read if history.next_query is None else None,
        )
        fetched = await fetch_json(client, url, cfg, request=request)
        if fetched.read:  # the whole history in one response, read by history.read
            timed: TimedItems = fetched.body
            return timed.records(
                source=source,
                endpoint=history.endpoint(entity),
                fetched_at=fetched.fetched_at,
                run_id=run_id,
                since=window.since,
                until=window.until,
            )
        points = [
            p
            for p in history.points(fetched.body, entity, fetched.url, fetched.head)
            if p.native_id not in seen
        ]
        seen.update(p.native_id for p in points)
        records.extend(
            history_records(
                points,
                source=source,
                endpoint=history.endpoint(entity),
                fetched_at=fetched.fetched_at,
                run_id=run_id,
                lenient=fetched.lenient,
                window=window,
            )
        )
        following = history.next_query(points, query, window) if history.next_query else None
        if following is None or not points:
            break
        query = following
    return records


def history_records(
    points: Iterable[Point],
    *,
    source: str,
    endpoint: str,
    fetched_at: datetime,
    run_id: str,
    lenient: bool,
    window: Window | None = None,
) -> list[RawRecord]:
    """The records of one response's points in ``window`` (None: all), each checked.

    A tight loop: a backfill makes one record per point, millions in a run.
    """
    check = Items(lenient=lenient).check
    since, until = (window.since, window.until) if window is not None else (None, None)
    records: list[RawRecord] = []
    append = records.append
    for index, (native, item, moment) in enumerate(points):
        # Window.holds, inlined: a point whose time is unreadable is kept, its
        # transform says why.
        if moment is not None and (
            (since is not None and moment < since) or (until is not None and moment >= until)
        ):
            continue
        native_id, payload, problem = check(index, native, item)
        append(
            RawRecord(
                source=source,
                endpoint=endpoint,
                fetched_at=fetched_at,
                run_id=run_id,
                kind="history",
                native_id=native_id,
                payload=payload,
                problem=problem,
            )
        )
    return records


def points_of(
    items: Iterable[Any], id_key: str, time_of: Callable[[Any], datetime | None], prefix: str = ""
) -> Iterator[Point]:
    """Points of a list of items, each named by ``prefix`` + its ``id_key`` (or its index).

    An id that is neither text nor a number names the point by its index too; its
    transform rejects the point's time.
    """
    for index, item in enumerate(items):
        value = item.get(id_key) if isinstance(item, dict) else None
        if isinstance(value, str) and value:
            native = value
        elif isinstance(value, int | float):
            native = str(value)
        else:
            native = f"#{index}"
        yield Point(prefix + native, item, time_of(value))
