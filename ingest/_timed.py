"""History bodies read without parsing their items: the fast path of the common shape.

Most history responses are a list of small objects, each named by its time
(DefiLlama's ``/chart``: ``{"data": [{"timestamp": "2024-02-29T23:00:26.566Z", ...}]}``).
Parsing such a body into Python dicts, encoding each dict back to text for its
record and reading each time with ``datetime`` was most of a backfill's work.
:func:`timed_items` reads it with msgspec into each item's JSON text as upstream sent
it (``msgspec.Raw``) and its id, and Arrow parses the ids as times, all at once.

It answers None for anything else: another shape, an id that is not a plain UTC
time (``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``), a repeated id, an item nested deeper than
:data:`~yieldstream.items.MAX_DEPTH`, NaN literals or any other JSON msgspec refuses.
The response is then parsed and checked item by item (:mod:`ingest._history`,
:mod:`ingest._items`), which finds and says what is wrong. For a body it reads it
gives the records the item-by-item path gives, with one difference: each payload
is upstream's own text, not the same values encoded again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from transforms.units import PLAIN_UTC_TIME
from yieldstream.contracts import RawRecord
from yieldstream.items import too_deep_each

_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True, slots=True)
class TimedItems:
    """A response's items: their ids (times), JSON texts and the ids as times."""

    ids: list[str]
    payloads: list[bytes]
    moments: pa.Array

    def records(
        self,
        *,
        source: str,
        endpoint: str,
        fetched_at: datetime,
        run_id: str,
        since: datetime | None,
        until: datetime | None,
    ) -> list[RawRecord]:
        """The records of the items at ``since`` or later and before ``until``."""
        bounds: list[pa.Array] = []
        if since is not None:
            bounds.append(pc.greater_equal(self.moments, pa.scalar(since, _TS)))
        if until is not None:
            bounds.append(pc.less(self.moments, pa.scalar(until, _TS)))
        keep: Any = range(len(self.ids))
        if bounds:
            keep = pc.indices_nonzero(functools.reduce(pc.and_, bounds)).to_pylist()
        ids, payloads = self.ids, self.payloads
        return [
            RawRecord(
                source=source,
                endpoint=endpoint,
                fetched_at=fetched_at,
                run_id=run_id,
                kind="history",
                native_id=ids[i],
                payload=payloads[i],
            )
            for i in keep
        ]


def timed_items(items_at: tuple[str, ...], id_key: str) -> Callable[[bytes], TimedItems | None]:
    """A reader of bodies holding a list of objects at ``items_at``, each named by its
    ``id_key``, a plain UTC time; None for any other body (see the module docstring)."""

    def at(inner: Any) -> Any:
        for depth, key in enumerate(reversed(items_at)):
            inner = msgspec.defstruct(f"At{depth}", [("f", inner)], rename={"f": key})
        return inner

    item: Any = msgspec.defstruct("TimedItem", [("f", str)], rename={"f": id_key})
    read_ids = msgspec.json.Decoder(at(list[item])).decode
    read_raw = msgspec.json.Decoder(at(list[msgspec.Raw])).decode
    down = attrgetter(".".join(["f"] * len(items_at)))
    id_of = attrgetter("f")

    def read(body: bytes) -> TimedItems | None:
        try:
            ids: list[str] = list(map(id_of, down(read_ids(body))))
            raws = down(read_raw(body))
        except msgspec.MsgspecError:
            return None
        if len(set(ids)) != len(ids):
            return None
        stamps = pa.array(ids, pa.string())
        # Plain times hold nothing an id check (yieldstream.items.id_problem) refuses.
        if ids and not pc.all(pc.match_substring_regex(stamps, PLAIN_UTC_TIME)).as_py():
            return None
        try:
            moments = stamps.cast(_TS)
        except pa.ArrowInvalid:  # a plain time of no real day: 2024-02-30
            return None
        payloads = [bytes(raw) for raw in raws]
        if any(too_deep_each(payloads)):
            return None
        return TimedItems(ids, payloads, moments)

    return read
