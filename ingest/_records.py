"""Endpoints and the RawRecords made from their responses, one per upstream item."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from ingest._http import Fetched, SourceConfig, fetch_json
from ingest._items import Items
from yieldstream.contracts import RawRecord, RecordKind
from yieldstream.errors import BadResponse


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One upstream endpoint: where its items sit in the body and what names them."""

    path: str
    items_at: tuple[str, ...] = ()  # keys leading to the items; () is the body itself
    id_key: str = "id"  # the item field that names it natively
    single: bool = False  # the value at items_at is one item, not a list

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
        fetched: Fetched = await fetch_json(client, f"{cfg.base_url}{endpoint.path}", cfg)
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
