"""Replay: re-run the transforms over the raw archive after a transform change.

Every stored batch whose raw records match the selection is transformed again by
the current code, oldest fetch first, and what it produced is replaced by the new
outcome (:meth:`sinks.writer.LakeWriter.replace`): changed rows are replaced, rows
that no longer pass become rejections, rejections that now pass become rows, and
nothing is duplicated; a key first stored by another batch keeps that row, as in a
fresh run. Consecutive batches of up to :data:`REPLAY_RECORDS` raw records are one
transaction, so a replay that is stopped can simply be run again. Reference data
(e.g. the protocol categories that classify pools) is what the archive held when
each batch was fetched (:meth:`sinks.writer.LakeWriter.reference`); backfilled
history points get their pool's ``/pools`` item from the listing the backfill
archived in the same run.

In Kafka mode the raw records are on ``yields.raw``, not in the store:
:func:`replay_kafka` re-reads the topic (from a time or an offset) and reconciles
the store key by key (:meth:`sinks.writer.LakeWriter.reconcile`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

import pyarrow as pa
import structlog

from sinks.lake import Store
from sinks.writer import LakeWriter, Replaced
from transforms import Context, Reference, ReferenceData
from yieldstream.contracts import RawRecord, Rejection
from yieldstream.registry import Source, providers, source
from yieldstream.registry import sources as registered_sources
from yieldstream.settings import Settings
from yieldstream.transformer import transform_table

log = structlog.get_logger(__name__)
# Raw records replayed in one transaction at most (whole stored batches): each
# transaction reads every stored row of the batches' times, so fewer cost less.
REPLAY_RECORDS = 100_000


@dataclass(slots=True)
class ReplaySummary:
    batches: int = 0
    records: int = 0
    added: int = 0
    removed: int = 0
    changed: int = 0
    rejections_before: int = 0
    rejections_after: int = 0

    def add(self, records: int, result: Replaced, *, batches: int = 1) -> None:
        self.batches += batches
        self.records += records
        self.added += result.added
        self.removed += result.removed
        self.changed += result.changed
        self.rejections_before += result.rejections_before
        self.rejections_after += result.rejections_after

    def line(self, dry_run: bool) -> str:
        verb = "would change" if dry_run else "changed"
        return (
            f"replayed {self.batches} batches ({self.records} raw records); {verb}: "
            f"{self.added} observations added, {self.removed} removed, {self.changed} updated; "
            f"rejections {self.rejections_before} -> {self.rejections_after}"
            + (" (dry run: nothing written)" if dry_run else "")
        )


def replay(
    store: Store,
    *,
    only: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    dry_run: bool = False,
    sources: Mapping[str, Source] | None = None,
) -> ReplaySummary:
    """Replay the matching archived batches; ``sources`` overrides the registry (tests)."""
    known = sources if sources is not None else registered_sources()
    for name in only:
        if name not in known:
            source(name)  # a ConfigError naming the known sources
    summary = ReplaySummary()
    writer = LakeWriter(store)
    group: list[tuple[str, pa.Table, list[Rejection]]] = []
    grouped = 0  # raw records in the group

    def flush() -> None:
        nonlocal group, grouped
        if group:
            result = writer.replace(group, dry_run=dry_run)
            summary.add(grouped, result, batches=len(group))
            log.info(
                "batches_replayed",
                batches=len(group),
                records=grouped,
                dry_run=dry_run,
                added=result.added,
                removed=result.removed,
                changed=result.changed,
            )
        group, grouped = [], 0

    reference = _ReferenceAsOf(writer, providers(known))
    try:
        for batch_id in writer.batches(only, since, until):
            records = writer.load_raw(batch_id)
            src = known.get(records[0].source) if records else None
            if src is None:
                continue
            # The group is replaced before this batch is transformed, and its raw
            # records go once it is: a backfill's batch is up to 400,000 records,
            # and holding one batch's outcome beside the next one's cost GiBs.
            if grouped + len(records) > REPLAY_RECORDS:
                flush()
            ctx = reference.at(records[0].fetched_at)
            observations, rejections = transform_table(
                records, src, _with_listing(ctx, writer, records, src)
            )
            group.append((batch_id, observations, rejections))
            grouped += len(records)
            del records
        flush()
    finally:
        writer.close()
    return summary


class _ReferenceAsOf:
    """The reference data in force at a time, read once per hour of fetches."""

    def __init__(self, writer: LakeWriter, known: Mapping[str, Reference]) -> None:
        self._writer, self._providers = writer, known
        self._hour: datetime | None = None
        self._ctx = Context()

    def at(self, fetched_at: datetime) -> Context:
        hour = fetched_at.replace(minute=0, second=0, microsecond=0)
        if self._providers and hour != self._hour:
            # A source is fetched after the providers it reads, within its cycle.
            as_of = hour + timedelta(hours=1)
            self._ctx = Context(_frozen(self._writer.reference(self._providers, as_of)))
            self._hour = hour
        return self._ctx


def _frozen(reference: Mapping[str, Mapping[str, str]]) -> ReferenceData:
    return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in reference.items()})


def _with_listing(
    ctx: Context, writer: LakeWriter, records: Sequence[RawRecord], src: Source
) -> Context:
    """``ctx`` with the listing items that history records need (backfilled batches)."""
    history = src.history
    if history is None or history.entities or not any(r.kind == "history" for r in records):
        return ctx
    return Context(ctx.reference, MappingProxyType(writer.listing(records, history.entity_of)))


async def replay_kafka(
    settings: Settings,
    *,
    only: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    from_offset: int | None = None,
    dry_run: bool = False,
    sources: Mapping[str, Source] | None = None,
) -> ReplaySummary:
    """Re-read ``yields.raw`` and make the store agree with what the current code makes.

    Records fetched before ``since`` or from ``until`` on are skipped; ``from_offset``
    starts every partition there instead of at ``since`` or the beginning. Reference
    data is what the transform workers share, and what the providers' records read
    on the way give.
    """
    from yieldstream.kafka import KafkaBus  # the one module importing aiokafka

    known = sources if sources is not None else registered_sources()
    for name in only:
        if name not in known:
            source(name)  # a ConfigError naming the known sources
    summary = ReplaySummary()
    bus = KafkaBus(settings.kafka, batch_size=settings.batch_size)
    writer = LakeWriter(Store(settings.data_dir, settings.catalog))
    try:
        await bus.start(produce=False, follow_reference=True)
        readers = providers(known)
        ctx = Context()
        async for batches in bus.read_raw(since=since, from_offset=from_offset):
            for batch in batches:
                records = [
                    r
                    for r in batch.records
                    if (since is None or r.fetched_at >= since)
                    and (until is None or r.fetched_at < until)
                ]
                if (read := readers.get(batch.source)) is not None:
                    ctx = ctx.learned(batch.source, read(r.payload for r in records))
                src = known.get(batch.source)
                if src is None or not records or (only and batch.source not in only):
                    continue
                ctx = Context(_frozen(bus.known_reference())).merged(ctx.reference)
                observations, rejections = transform_table(records, src, ctx)
                result = writer.reconcile(
                    f"replay-{uuid.uuid4().hex}",
                    observations,
                    rejections,
                    [r.raw_id for r in records],
                    dry_run=dry_run,
                )
                summary.add(len(records), result)
                log.info(
                    "batch_replayed",
                    source=src.name,
                    records=len(records),
                    dry_run=dry_run,
                    added=result.added,
                    changed=result.changed,
                )
    finally:
        writer.close()
        await bus.aclose()
    return summary
