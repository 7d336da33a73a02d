"""Transforms: pure, synchronous functions from a RawRecord to observations or a rejection.

A source's module here has the source's name (``-`` as ``_``) and defines
``transform(record, ctx) -> list[Observation] | Rejection``. No I/O: everything a
transform needs beyond the record comes in the :class:`Context`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import msgspec

from yieldstream.contracts import (
    Observation,
    ObservationError,
    RawRecord,
    Rejection,
    Stage,
)
from yieldstream.items import MAX_DEPTH, too_deep

_EMPTY: Mapping[str, str] = MappingProxyType({})

# What a source that others read provides: its raw items' payloads -> key -> value,
# e.g. protocol slug -> category. A transform module defines it as ``reference``.
Reference = Callable[[Iterable[bytes]], dict[str, str]]
# Reference data by the name of the source that provides it.
ReferenceData = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class Context:
    """Reference data a transform may use; built by the runner, never fetched here.

    Reference data is one mechanism for every source: a source whose transform
    module defines ``reference(payloads) -> dict[str, str]`` provides it, from its
    newest raw items, and a source that reads it names the provider in its ``AFTER``
    (so that a daemon's first cycle fetches the provider first). The runners fill
    ``reference`` the same way everywhere: the daemon as it transforms the
    provider's batches (shared between Kafka transform workers through a compacted
    topic), replay and backfill from the provider's raw items archived up to the
    time of the records at hand (:meth:`sinks.writer.LakeWriter.reference`).
    """

    # Provider source name -> its reference data (key -> value).
    reference: ReferenceData = field(default_factory=lambda: MappingProxyType({}))
    # Entity -> its item in the source's snapshot listing (a /pools or /protocols
    # payload), for history points that carry only values: the pools and protocols a
    # batch of history records names, from the listing the backfill fetched.
    listing: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}))

    def of(self, provider: str) -> Mapping[str, str]:
        """The reference data that ``provider`` gives (empty when none is known)."""
        return self.reference.get(provider, _EMPTY)

    def learned(self, provider: str, values: Mapping[str, str]) -> Context:
        """This context with ``values`` added to (and winning over) ``provider``'s data."""
        if not values:
            return self
        merged = {**self.reference, provider: MappingProxyType({**self.of(provider), **values})}
        return Context(MappingProxyType(merged), self.listing)

    def merged(self, reference: ReferenceData) -> Context:
        """This context with every provider's data of ``reference`` added."""
        ctx = self
        for provider, values in reference.items():
            ctx = ctx.learned(provider, values)
        return ctx


Result = list[Observation] | Rejection
Transform = Callable[[RawRecord, Context], Result]


def reject(record: RawRecord, stage: Stage, reason: str) -> Rejection:
    return Rejection(
        source=record.source,
        endpoint=record.endpoint,
        stage=stage,
        reason=reason,
        native_id=record.native_id,
        payload=record.payload,
        rejected_at=datetime.now(UTC),
        raw_id=record.raw_id,
    )


def apply(transform: Transform, record: RawRecord, ctx: Context) -> Result:
    """Run one transform; any failure becomes a Rejection with its reason.

    A record found unusable as it was split from its response (``problem``), or
    nested deeper than :data:`yieldstream.items.MAX_DEPTH` (one read back from the
    archive or the bus), is rejected without running the transform.
    """
    if record.problem is not None:
        return reject(record, "decode", record.problem)
    if too_deep(record.payload):
        return reject(record, "decode", f"item nested deeper than {MAX_DEPTH} levels")
    try:
        return transform(record, ctx)
    except msgspec.ValidationError as exc:
        return reject(record, "decode", f"undecodable item: {exc}")
    except msgspec.DecodeError as exc:
        return reject(record, "decode", f"undecodable item: {_non_finite(record.payload) or exc}")
    except ObservationError as exc:
        return reject(record, "validate", str(exc))
    except Exception as exc:  # noqa: BLE001 - a transform bug must not stop the daemon
        return reject(record, "validate", f"transform failed: {type(exc).__name__}: {exc}")


def _non_finite(payload: bytes) -> str | None:
    """Say where a payload holds NaN/Infinity literals, or None.

    Strict JSON has no such literals, so msgspec reports only "invalid character
    (byte N)"; the lenient fetch keeps them (see ``ingest._http.parse_json``) so
    that the item is rejected on its own, and this names the field. A payload
    nested too deep for :data:`yieldstream.items.MAX_DEPTH` is not read.
    """
    if too_deep(payload):
        return None
    try:
        item = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    found = [
        f"{value!r} at `{path}`" for path, value in _floats(item, "$") if not math.isfinite(value)
    ]
    return f"not a finite number: {', '.join(found)}" if found else None


def _floats(node: Any, path: str) -> Iterator[tuple[str, float]]:
    if isinstance(node, float):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _floats(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _floats(value, f"{path}[{index}]")


@lru_cache(maxsize=256)  # a batch shares one fetch time: compute it once
def floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour holding ``moment``.

    Sources that give no time per item (DefiLlama's ``/pools`` and ``/protocols``)
    are refreshed hourly upstream, so their observations are stamped with the hour
    they were fetched in: fetching the same snapshot twice gives the same key.
    """
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


# How far an upstream clock may run ahead of ours before a point counts as future.
CLOCK_SKEW = timedelta(hours=1)


def listed(ctx: Context, entity: str, listing: str, gives: str) -> bytes:
    """The listing item a history point of ``entity`` needs, or why there is none."""
    item = ctx.listing.get(entity)
    if item is None:
        raise ObservationError(
            f"{entity} is in no {listing} listing, which gives its {gives}; backfill it "
            f"again (it fetches {listing} first), or replay once {listing} lists it"
        )
    return item


def history_time(moment: datetime | None, raw: object, record: RawRecord) -> datetime:
    """A history point's time, floored to its hour like a snapshot's; checked for sense.

    Flooring makes a daily history point and the hourly snapshot of the same hour one
    key, so a backfill and the daemon never store the same moment twice.
    """
    if moment is None:
        raise ObservationError(f"unreadable point time {raw!r}")
    if moment > record.fetched_at + CLOCK_SKEW:
        raise ObservationError(
            f"point time {moment.isoformat()} is after its fetch ({record.fetched_at.isoformat()})"
        )
    return floor_hour(moment)
