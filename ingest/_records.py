"""Endpoints and the RawRecords made from their responses, one per upstream item."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from ingest._http import Check, Fetched, Request, SourceConfig, fetch_json
from ingest._items import Items
from yieldstream.contracts import RawRecord, RecordKind
from yieldstream.errors import BadResponse


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

    @property
    def request(self) -> Request:
        return Request(self.params, self.method, self.json, self.check)

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
    ) -> Iterator[RawRecord]:
        """One RawRecord per item, payload re-serialised without changing its values.

        An item that cannot be used as it is (see :mod:`ingest._items`) is a record
        with ``problem`` set, which the runners reject; the others are unaffected.
        """
        items = Items(lenient=lenient)
        for index, item in enumerate(self.items(body, url or self.path, head=head)):
            native_id, payload, problem = items.check(index, self.native_id(item, index), item)
            yield RawRecord(
                source=source,
                endpoint=self.path,
                fetched_at=fetched_at,
                run_id=run_id,
                kind=kind,
                native_id=native_id,
                payload=payload,
                problem=problem,
            )


def endpoint_for(endpoints: Sequence[Endpoint], recorded: Path) -> Endpoint | None:
    """The endpoint a recorded response was fetched from, by its file name.

    A file names the endpoint whose last path segments, joined by ``-``, start its
    name: ``pools-*.json`` is ``/pools``, ``apr-sma-*.json`` is ``.../apr/sma``. None:
    it names none (a history response, read by the history tests).
    """
    matches = []
    for endpoint in endpoints:
        segments = endpoint.path.strip("/").split("/")
        names = {"-".join(segments[-k:]) for k in range(1, len(segments) + 1)}
        if any(recorded.stem == n or recorded.stem.startswith(f"{n}-") for n in names):
            matches.append(endpoint)
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
    """Fetch each endpoint in turn and yield its records."""
    for endpoint in endpoints:
        fetched: Fetched = await fetch_json(
            client, f"{cfg.base_url}{endpoint.path}", cfg, request=endpoint.request
        )
        for record in endpoint.records(
            fetched.body,
            source=source,
            fetched_at=fetched.fetched_at,
            run_id=run_id,
            lenient=fetched.lenient,
            url=fetched.url,
            head=fetched.head,
        ):
            yield record
