"""Endpoints and the RawRecords made from their responses, one per upstream item."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx

from ingest._http import Check, Fetched, Request, SourceConfig, fetch_json
from ingest._items import checked_records
from yieldstream.contracts import RawRecord, RecordKind
from yieldstream.errors import BadResponse, UpstreamRejected, YieldstreamError


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One upstream endpoint: where its items sit in the body and what names them."""

    path: str
    items_at: tuple[str, ...] = ()  # keys leading to the items; () is the body itself
    # The item field that names it natively; an int is a position, for APIs whose
    # items are arrays (Bitfinex's ``["fUSD", 0.0002, ...]``).
    id_key: str | int = "id"
    single: bool = False  # the value at items_at is one item, not a list
    params: tuple[tuple[str, str], ...] = ()  # the query, e.g. (("symbols", "fUSD"),)
    method: str = "GET"  # or "POST", with ``json`` as its body
    json: Any = None
    # Raises when a status-200 body says the request failed (see ingest._http.Check).
    check: Check | None = None
    # Paging: the request for the page after one, from its items and its request (None:
    # it was the last). At most ``max_pages`` requests; a listing still going on after
    # them fails the fetch (its records so far are kept), since a cut listing would
    # look like products that vanished.
    next_page: Callable[[list[Any], Request], Request | None] | None = None
    max_pages: int = 1
    # One request per entity (a chain, a market): ``path`` holds ``{entity}`` and this
    # names the source's setting that lists them (``chains``), so users choose them.
    entities: str | None = None

    @property
    def request(self) -> Request:
        return Request(self.params, self.method, self.json, self.check)

    def paths(self, cfg: SourceConfig) -> list[str]:
        """The paths to request: ``path`` itself, or one per entity of the setting."""
        if self.entities is None:
            return [self.path]
        return [self.concrete(str(entity)) for entity in getattr(cfg, self.entities)]

    def concrete(self, entity: str) -> str:
        """The path of one entity, the entity percent-encoded as one segment."""
        if entity in ("", ".", ".."):
            raise ValueError(f"entity {entity!r} cannot be a path segment")
        return self.path.replace("{entity}", quote(entity, safe=""))

    def entity_of(self, path: str) -> str | None:
        """The entity a concrete path names (its ``{entity}`` part, unescaped), or None."""
        if self.entities is None:
            return None
        match = re.fullmatch(re.escape(self.path).replace(r"\{entity\}", "([^/]+)"), path)
        return unquote(match.group(1)) if match else None

    def items(self, body: Any, url: str, *, head: bytes = b"") -> list[Any]:
        """The items of a parsed body, or BadResponse saying what was found instead.

        ``head`` (the start of the raw body) is kept in the error for its rejection.
        """
        node = body
        where = "$"
        for key in self.items_at:
            if not isinstance(node, dict) or key not in node:
                raise BadResponse(
                    f"expected an object with {key!r} at {where} of {url}", url=url, body=head
                )
            node = node[key]
            where += f".{key}"
        if self.single:
            if not isinstance(node, dict):
                raise BadResponse(f"expected an object at {where} of {url}", url=url, body=head)
            return [node]
        if not isinstance(node, list):
            raise BadResponse(
                f"expected a list at {where} of {url}, got {type(node).__name__}",
                url=url,
                body=head,
            )
        return node

    def native_id(self, item: Any, index: int) -> Any:
        """``item[id_key]`` as upstream gave it (None when the item lacks it)."""
        if isinstance(self.id_key, int):
            if isinstance(item, list) and -len(item) <= self.id_key < len(item):
                return item[self.id_key]
            return None
        return item.get(self.id_key) if isinstance(item, dict) else None

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
        """One RawRecord per item, payload re-serialised without changing its values.

        ``path`` is the concrete path fetched (an entity's), ``self.path`` by default;
        records name it as their endpoint. An item that cannot be used as it is (see
        :mod:`ingest._items`) is a record with ``problem`` set, which the runners
        reject; the others are unaffected.
        """
        yield from checked_records(
            self.items(body, url or self.path, head=head),
            self.native_id,
            source=source,
            endpoint=path or self.path,
            fetched_at=fetched_at,
            run_id=run_id,
            lenient=lenient,
            kind=kind,
        )


def endpoint_for(endpoints: Sequence[Endpoint], recorded: Path) -> Endpoint | None:
    """The endpoint a recorded response was fetched from, by its file name.

    A file names the endpoint whose last path segments, joined by ``-``, start its
    name: ``pools-*.json`` is ``/pools``, ``apr-sma-*.json`` is ``.../apr/sma``. None:
    it names none (a history response, read by the history tests).
    """
    named = recorded_path(endpoints, recorded)
    return named[0] if named else None


def recorded_path(endpoints: Sequence[Endpoint], recorded: Path) -> tuple[Endpoint, str] | None:
    """The endpoint and concrete path a recorded response names (see :func:`endpoint_for`).

    An entity endpoint's ``{entity}`` segment matches any text in the name:
    ``56-markets-active-*.json`` is ``/core/v1/{entity}/markets/active`` for entity
    ``56``; a name that stops before the entity names the template itself.
    """
    matches = []
    for endpoint in endpoints:
        segments = endpoint.path.strip("/").split("/")
        for k in range(len(segments), 0, -1):
            tail = segments[-k:]
            if all(part == "{entity}" for part in tail):
                continue  # an entity alone names nothing: every file would match
            pattern = "-".join(
                "(?P<entity>.+?)" if part == "{entity}" else re.escape(part) for part in tail
            )
            match = re.fullmatch(f"{pattern}(?:-.*)?", recorded.stem)
            if match:
                entity = match.groupdict().get("entity")
                path = endpoint.concrete(entity) if entity else endpoint.path
                matches.append((endpoint, path))
                break
    if len(matches) > 1:
        raise ValueError(f"{recorded.name} names several endpoints: {matches}")
    return matches[0] if matches else None


async def collect_endpoints(
    client: httpx.AsyncClient,
    cfg: SourceConfig,
    run_id: str,
    *,
    source: str,
    endpoints: Sequence[Endpoint],
) -> AsyncIterator[RawRecord]:
    """Fetch each endpoint in turn (each entity's, page by page) and yield its records.

    An entity that fails does not stop the others: the records of those that answer
    are yielded, then the fetch fails naming the entities that did not.
    """
    failed: list[str] = []
    for endpoint in endpoints:
        for path in endpoint.paths(cfg):
            try:
                async for record in _collect_path(client, cfg, run_id, source, endpoint, path):
                    yield record
            except YieldstreamError as exc:
                if endpoint.entities is None:
                    raise
                failed.append(f"{path}: {exc}")
    if failed:
        raise UpstreamRejected(f"{len(failed)} of the requests failed: " + "; ".join(failed))


async def _collect_path(
    client: httpx.AsyncClient,
    cfg: SourceConfig,
    run_id: str,
    source: str,
    endpoint: Endpoint,
    path: str,
) -> AsyncIterator[RawRecord]:
    """One path's records, page by page where it pages.

    The records of every page carry the first page's fetch time, so that one poll is
    one snapshot; an item already seen on an earlier page (a listing that shifted
    while it was paged) is yielded once.
    """
    url = f"{cfg.base_url}{path}"
    request: Request | None = endpoint.request
    fetched_at = None
    seen: set[str] = set()
    for _ in range(endpoint.max_pages):
        assert request is not None
        fetched: Fetched = await fetch_json(client, url, cfg, request=request)
        fetched_at = fetched_at or fetched.fetched_at
        for record in endpoint.records(
            fetched.body,
            source=source,
            fetched_at=fetched_at,
            run_id=run_id,
            lenient=fetched.lenient,
            url=fetched.url,
            head=fetched.head,
            path=path,
        ):
            if record.problem is None and record.native_id in seen:
                continue
            seen.add(record.native_id)
            yield record
        if endpoint.next_page is None:
            return
        request = endpoint.next_page(endpoint.items(fetched.body, fetched.url), request)
        if request is None:
            return
    if endpoint.next_page is not None:
        raise BadResponse(
            f"{url} had more pages after {endpoint.max_pages} (max_pages); the listing is cut",
            url=url,
        )
