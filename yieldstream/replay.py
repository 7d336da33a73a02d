"""Replay: re-run the transforms over the raw archive after a transform change.

Every stored batch whose raw records match the selection is transformed again by
the current code, oldest fetch first, and what it produced is replaced by the new
outcome (:meth:`sinks.writer.LakeWriter.replace`): changed rows are replaced, rows
that no longer pass become rejections, rejections that now pass become rows, and
nothing is duplicated; a key first stored by another batch keeps that row, as in a
fresh run. Each batch is one transaction, so a replay that is stopped can simply be
run again. Pools are classified with the newest archived ``/protocols`` categories.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

import structlog

from sinks.lake import Store
from sinks.writer import LakeWriter
from transforms import Context
from yieldstream.registry import Source, source
from yieldstream.registry import sources as registered_sources
from yieldstream.transformer import transform_records

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class ReplaySummary:
    batches: int = 0
    records: int = 0
    added: int = 0
    removed: int = 0
    changed: int = 0
    rejections_before: int = 0
    rejections_after: int = 0

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
    try:
        ctx = Context(MappingProxyType(writer.categories()))
        for batch_id in writer.batches(only, since, until):
            records = writer.load_raw(batch_id)
            src = known.get(records[0].source) if records else None
            if src is None:
                continue
            observations, rejections = transform_records(records, src, ctx)
            result = writer.replace(batch_id, observations, rejections, dry_run=dry_run)
            summary.batches += 1
            summary.records += len(records)
            summary.added += result.added
            summary.removed += result.removed
            summary.changed += result.changed
            summary.rejections_before += result.rejections_before
            summary.rejections_after += result.rejections_after
            log.info(
                "batch_replayed",
                source=src.name,
                batch_id=batch_id,
                dry_run=dry_run,
                added=result.added,
                removed=result.removed,
                changed=result.changed,
            )
    finally:
        writer.close()
    return summary
