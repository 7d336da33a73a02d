"""Backfill: a source's history endpoint, entity by entity, into the store.

``yieldstream backfill SOURCE`` first takes the source's snapshot (``/pools``,
``/protocols``), which names the entities and gives each history point its pool's
protocol and chain; it is stored like any daemon fetch. Then it fetches every
entity's history:

* **bounded**: at most ``history_concurrency`` requests in flight and
  ``history_rate_per_s`` a second per source; 429 and 5xx are retried with backoff
  (``Retry-After`` honoured) by the same fetch code as the daemon's;
* **through the daemon's parts**: the records go through the source's transform and
  the store writer, in batches of ``batch_size`` records;
* **resumable**: each commit holds the raw records, observations and rejections of up
  to :data:`COMMIT_BATCHES` batches and the checkpoints of the entities they complete,
  in one transaction (:meth:`sinks.writer.LakeWriter.store_history`). Run again, a
  backfill skips the entities whose checkpoint covers the window and fetches the
  rest; rows are keyed ``(source, pool_id, observed_at)``, so nothing is stored twice
  either way;
* **failures are recorded**: an entity whose fetch keeps failing gets a ``failed``
  checkpoint with the reason (and a rejection when the body was unusable); the run
  goes on, and the next run tries it again;
* **flat in memory**: fetching waits while a batch waits for its transform, and a
  commit waits for the one before.

Without ``--until`` the window ends at the end of the current UTC day: the same
backfill run again that day skips what is done; a day later it fetches the new day.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol, TypeVar, cast

import httpx
import pyarrow as pa
import structlog
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from ingest._history import History, Window, fetch_history
from ingest._http import SourceConfig
from sinks.staged import StagedFiles, StagedObservations
from sinks.tables import observations_table
from sinks.writer import Checkpoint, LakeWriter, Stored, raw_table
from transforms import Context
from yieldstream import metrics
from yieldstream.app import client_for
from yieldstream.contracts import Observation, RawRecord, Rejection, record_id
from yieldstream.errors import BadResponse, ConfigError, YieldstreamError
from yieldstream.registry import Source, providers, source
from yieldstream.registry import sources as registered_sources
from yieldstream.settings import Settings, store_of
from yieldstream.transformer import RawBatch, Transformer

log = structlog.get_logger(__name__)
T = TypeVar("T")

QUEUED_BATCHES = 1  # fetched batches waiting for their transform; fetching pauses beyond
COMMIT_BATCHES = 20  # batches (of batch_size records) a store commit gathers at most:
# each commit costs its catalog work, its latest-row update and its files to merge.
# A commit holds only its rows' keys (~1.3 MiB a batch; the rows are in files:
# sinks/staged.py), so 20 cost ~30 MiB more peak RSS than 5, and a third less CPU
# (2,000 x 1,000 benchmark; the 5 s below ends most commits before 20 batches)
COMMIT_EVERY_S = 5.0  # ... or what was transformed in this long, so progress is durable
FAILURES_KEPT = 20  # failed entities listed in the summary (all are in the store)


class NoHistory(ConfigError):
    """The source has no history endpoint."""


class ListingFailed(YieldstreamError):
    """The snapshot naming the entities could not be fetched: nothing to backfill."""


@dataclass(slots=True)
class BackfillSummary:
    source: str
    entities: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    points: int = 0  # history records fetched
    stored: int = 0  # observations added
    duplicates: int = 0  # observations already stored (by an earlier run or the daemon)
    rejected: int = 0
    elapsed_s: float = 0.0
    stopped: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.failed

    def line(self) -> str:
        text = (
            f"backfill {self.source}: {self.done} entities done, {self.skipped} skipped "
            f"(complete before), {self.failed} failed; {self.stored:,} rows stored, "
            f"{self.duplicates:,} already there, {self.rejected:,} rejected; "
            f"{self.elapsed_s:.1f} s"
        )
        if self.stopped:
            text += f"; stopped with {self.entities - self.finished} left: run it again to finish"
        elif self.failed:
            text += "; run it again to retry the failed ones"
        return text


class Reporter(Protocol):
    """Where progress goes: a live bar on a terminal, periodic log lines elsewhere."""

    def start(self, summary: BackfillSummary) -> None: ...
    def update(self, summary: BackfillSummary) -> None: ...
    def stop(self, summary: BackfillSummary) -> None: ...


class LogReporter:
    """A ``backfill_progress`` log line every ``every_s`` seconds, and one at the end."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self._started = 0.0
        self._last = 0.0

    def start(self, summary: BackfillSummary) -> None:
        self._started = self._last = time.monotonic()
        log.info("backfill_started", source=summary.source, entities=summary.entities)

    def update(self, summary: BackfillSummary) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._emit(summary, now)

    def stop(self, summary: BackfillSummary) -> None:
        self._emit(summary, time.monotonic())

    def _emit(self, summary: BackfillSummary, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        fetched = summary.done + summary.failed
        left = summary.entities - summary.finished
        log.info(
            "backfill_progress",
            source=summary.source,
            entities=summary.entities,
            done=summary.done,
            skipped=summary.skipped,
            failed=summary.failed,
            rows=summary.stored,
            rows_per_s=round(summary.stored / elapsed),
            eta_s=round(left * elapsed / fetched) if fetched else None,
        )


class BarReporter:
    """A live rich bar on the terminal: entities, rows stored, rows/s, failures, ETA.

    ``defillama-yields ━━━━━━━━━━╸━━━━━━━━━ 1040/2000 entities  1,040,000 rows  51,602/s
    0 failed  ETA 0:00:19`` (one line)
    """

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn(
                "entities  {task.fields[rows]:,} rows  {task.fields[rate]:,}/s  "
                "{task.fields[failed]} failed  ETA"
            ),
            TimeRemainingColumn(),
            console=console,
        )
        self._task: TaskID | None = None
        self._started = 0.0

    def start(self, summary: BackfillSummary) -> None:
        self._started = time.monotonic()
        self.progress.start()
        self._task = self.progress.add_task(
            summary.source,
            total=summary.entities,
            completed=summary.skipped,
            rows=0,
            rate=0,
            failed=0,
        )

    def update(self, summary: BackfillSummary) -> None:
        if self._task is None:
            return
        elapsed = max(time.monotonic() - self._started, 1e-9)
        self.progress.update(
            self._task,
            completed=summary.finished,
            rows=summary.stored,
            rate=round(summary.stored / elapsed),
            failed=summary.failed,
        )

    def stop(self, summary: BackfillSummary) -> None:
        self.update(summary)
        self.progress.stop()


def end_of_day(moment: datetime) -> datetime:
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1)


@dataclass(slots=True)
class _Fetched:
    entity: str
    records: list[RawRecord]
    error: str | None = None
    rejection: Rejection | None = None


@dataclass(slots=True)
class _Batch:
    batch_id: str
    records: list[RawRecord] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    entities: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Commit:
    """Transformed batches that one store transaction commits, with their checkpoints.

    Their raw records and observations are in files already (:mod:`sinks.staged`),
    not held until the transaction.
    """

    batch_id: str
    started: float
    raw: StagedFiles
    observations: StagedObservations
    records: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)

    @classmethod
    def start(cls, writer: LakeWriter) -> _Commit:
        batch_id = uuid.uuid4().hex
        return cls(
            batch_id,
            time.monotonic(),
            writer.staged_raw(),
            writer.staged_observations(batch_id),
        )

    def discard(self) -> None:
        """Delete the commit's files: it will not be stored."""
        self.raw.discard()
        self.observations.discard()

    def add(self, batch: _Batch, rejections: list[Rejection]) -> None:
        self.records += len(batch.records)
        self.rejections.extend(rejections)
        self.rejections.extend(batch.rejections)
        self.checkpoints.extend(batch.checkpoints)

    def full(self, batch_size: int) -> bool:
        return (
            self.records >= COMMIT_BATCHES * batch_size
            or time.monotonic() - self.started >= COMMIT_EVERY_S
        )


class Backfill:
    """One backfill run of one source; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        src: Source,
        history: History,
        window: Window,
        *,
        writer: LakeWriter,
        transformer: Transformer,
        reporter: Reporter,
        stop: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.src = src
        self.history = history
        self.until = window.until or end_of_day(datetime.now(UTC))
        self.window = Window(window.since, self.until)
        self.cfg: SourceConfig = settings.source_config(src.name)
        self.writer = writer
        self.transformer = transformer
        self.reporter = reporter
        self.stop = stop
        self.run_id = uuid.uuid4().hex
        self.summary = BackfillSummary(src.name)
        # The reference data the source's transform reads, from the sources it names
        # in AFTER (see transforms.Context).
        self.providers = {name: read for name, read in providers().items() if name in src.after}
        self.ctx = Context()
        self.listing: dict[str, bytes] = {}
        self._db = ThreadPoolExecutor(1, thread_name_prefix="store")
        self._archive = ThreadPoolExecutor(1, thread_name_prefix="archive")

    async def _on_store(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def run(self, client: httpx.AsyncClient, only: Sequence[str], refetch: bool) -> None:
        started = time.monotonic()
        try:
            stored = await self._on_store(self.writer.reference, self.providers)
            self.ctx = self.ctx.merged(stored)
            entities = await self._entities(client, only)
            complete = (
                set()
                if refetch
                else await self._on_store(
                    self.writer.completed, self.src.name, self.window.since, self.until
                )
            )
            todo = [e for e in entities if e not in complete]
            listed = set(entities)
            unlisted = [e for e in dict.fromkeys(only) if e not in listed]
            self.summary.entities = len(entities) + len(unlisted)
            self.summary.skipped = len(entities) - len(todo)
            self.reporter.start(self.summary)
            try:
                await self._fetch_all(client, todo, unlisted)
            finally:
                self.summary.elapsed_s = time.monotonic() - started
                self.reporter.stop(self.summary)
        finally:
            self._db.shutdown(wait=True)
            self._archive.shutdown(wait=True)

    # --- entities --------------------------------------------------------------

    async def _entities(self, client: httpx.AsyncClient, only: Sequence[str]) -> list[str]:
        """The entities to backfill: fixed, or named by the source's snapshot (stored)."""
        if self.history.entities:
            return [e for e in self.history.entities if not only or e in only]
        for name in self.providers:  # e.g. /protocols, whose categories classify pools
            if self.ctx.of(name):
                continue
            try:
                await self._snapshot(client, registered_sources()[name])
            except ListingFailed as exc:  # the transform does without it
                log.warning("backfill_reference_failed", source=name, error=str(exc))
        records = await self._snapshot(client, self.src)
        wanted = set(only)
        for record in records:  # an item rejected as it was split names no entity
            if record.problem is None and (not wanted or record.native_id in wanted):
                self.listing[record.native_id] = record.payload
        return list(self.listing)

    async def _snapshot(self, client: httpx.AsyncClient, src: Source) -> list[RawRecord]:
        """Fetch a source's snapshot and store it as the daemon would; its records."""
        cfg = self.settings.source_config(src.name)
        try:
            records = [r async for r in src.collect(client, cfg, self.run_id)]
        except (YieldstreamError, httpx.HTTPError) as exc:
            raise ListingFailed(
                f"cannot list what to backfill: {src.name} snapshot failed: {exc}"
            ) from None
        if (read := self.providers.get(src.name)) is not None:
            self.ctx = self.ctx.learned(src.name, read(r.payload for r in records))
        size = self.settings.batch_size
        for start in range(0, len(records), size):
            batch = _Batch(uuid.uuid4().hex, records[start : start + size])
            commit = _Commit.start(self.writer)
            try:
                await self._add(src, commit, batch)
            except BaseException:
                commit.discard()
                raise
            await self._store(src, commit)
        log.info("backfill_listed", source=src.name, records=len(records))
        return records

    # --- fetching ------------------------------------------------------------------

    async def _fetch_all(
        self, client: httpx.AsyncClient, todo: list[str], unlisted: list[str]
    ) -> None:
        fetched: asyncio.Queue[_Fetched | None] = asyncio.Queue(self.cfg.history_concurrency)
        batches: asyncio.Queue[_Batch | None] = asyncio.Queue(QUEUED_BATCHES)
        entities = iter(todo)
        if self.history.entities:
            missing = f"not one of {self.src.name}'s: {', '.join(self.history.entities)}"
        else:
            missing = f"not in the {self.src.endpoints[0].path} listing"

        async def fetcher() -> None:
            for entity in entities:  # shared: each entity is taken once
                if self.stop.is_set():
                    return
                await fetched.put(await self._fetch(client, entity))

        async def fetchers() -> None:
            try:
                for entity in unlisted:
                    await fetched.put(_Fetched(entity, [], missing))
                await asyncio.gather(*(fetcher() for _ in range(self.cfg.history_concurrency)))
            finally:
                await fetched.put(None)

        fetching = asyncio.create_task(fetchers(), name="backfill:fetch")
        batching = asyncio.create_task(self._batcher(fetched, batches), name="backfill:batch")
        storing = asyncio.create_task(self._storer(batches), name="backfill:store")

        async def on_stop() -> None:
            # Fetches in flight are dropped (no checkpoint: fetched again next run);
            # what was fetched is stored.
            await self.stop.wait()
            fetching.cancel()

        stopper = asyncio.create_task(on_stop())
        tasks = [fetching, batching, storing]
        try:
            await asyncio.gather(batching, storing)
        finally:
            stopper.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(stopper, *tasks, return_exceptions=True)
            self.summary.stopped = self.summary.finished < self.summary.entities

    async def _fetch(self, client: httpx.AsyncClient, entity: str) -> _Fetched:
        try:
            records = await fetch_history(
                client,
                self.cfg,
                self.history,
                source=self.src.name,
                entity=entity,
                run_id=self.run_id,
                window=self.window,
            )
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            if not isinstance(exc, YieldstreamError | httpx.HTTPError):
                reason = f"collector failed: {type(exc).__name__}: {exc}"
                log.exception("backfill_entity_failed", entity=entity, error=reason)
            else:
                log.warning("backfill_entity_failed", entity=entity, error=reason)
            rejection = None
            if isinstance(exc, BadResponse):
                rejection = Rejection(
                    source=self.src.name,
                    endpoint=self.history.endpoint(entity),
                    stage="fetch",
                    reason=reason,
                    native_id=entity,
                    payload=exc.body,
                    rejected_at=datetime.now(UTC),
                    raw_id=record_id(
                        self.src.name, exc.url, datetime.now(UTC), f"#response:{self.run_id}"
                    ),
                )
            return _Fetched(entity, [], reason, rejection)
        metrics.RECORDS_FETCHED.labels(self.src.name).inc(len(records))
        return _Fetched(entity, records)

    async def _batcher(
        self, fetched: asyncio.Queue[_Fetched | None], batches: asyncio.Queue[_Batch | None]
    ) -> None:
        """Group whole entities into batches of about ``batch_size`` records."""
        batch = _Batch(uuid.uuid4().hex)
        try:
            while (item := await fetched.get()) is not None:
                batch.records.extend(item.records)
                batch.entities.add(item.entity)
                if item.rejection is not None:
                    batch.rejections.append(item.rejection)
                batch.checkpoints.append(
                    Checkpoint(
                        source=self.src.name,
                        entity=item.entity,
                        since=self.window.since,
                        until=self.until,
                        status="failed" if item.error else "done",
                        points=len(item.records),
                        reason=item.error,
                        run_id=self.run_id,
                    )
                )
                if len(batch.records) >= self.settings.batch_size:
                    await batches.put(batch)
                    batch = _Batch(uuid.uuid4().hex)
            if batch.checkpoints:
                await batches.put(batch)
        finally:
            await batches.put(None)

    async def _storer(self, batches: asyncio.Queue[_Batch | None]) -> None:
        """Transform batches into commits; each commit is stored while the next fills.

        A commit gathers transformed batches (written to its files as they come,
        :meth:`_add`) up to :data:`COMMIT_BATCHES` batches or
        :data:`COMMIT_EVERY_S` seconds: each
        commit has a fixed cost (catalog work, the latest-row update, the small
        files it leaves to merge), so fewer, larger commits cost less.
        """
        storing: asyncio.Task[None] | None = None
        commit = _Commit.start(self.writer)
        try:
            while (batch := await batches.get()) is not None:
                await self._add(self.src, commit, batch)
                if commit.full(self.settings.batch_size):
                    if storing is not None:
                        await storing
                    storing = asyncio.create_task(self._store(self.src, commit))
                    commit = _Commit.start(self.writer)
            if storing is not None:
                await storing
            if commit.checkpoints or commit.records:
                storing = asyncio.create_task(self._store(self.src, commit))
                commit = _Commit.start(self.writer)
                await storing
        finally:
            if storing is not None and not storing.done():
                await asyncio.shield(storing)  # a commit in progress finishes
            commit.discard()  # the files of a commit never handed to the store

    # --- transform and store ----------------------------------------------------------

    async def _add(self, src: Source, commit: _Commit, batch: _Batch) -> None:
        """Transform ``batch`` into ``commit``. Its raw records (meanwhile) and then
        its observations are appended to the commit's files on a thread of their
        own (Parquet's encoding and compression let go of the GIL), so the store's
        thread does not write them, and no commit holds them until its turn."""

        def archive() -> None:
            commit.raw.write(raw_table(commit.batch_id, batch.records))

        archived = asyncio.create_task(self._on_archive(archive)) if batch.records else None
        try:
            observations, rejections = await self._transform(src, batch)
        finally:
            if archived is not None:
                await asyncio.wait([archived])
        if archived is not None:
            archived.result()
        await self._on_archive(commit.observations.write, observations)
        commit.add(batch, rejections)

    async def _on_archive(self, fn: Callable[..., None], *args: Any) -> None:
        """``fn`` on the archive thread, waited for to its end even when cancelled:
        a commit's files are never deleted while they are written."""
        done = asyncio.get_running_loop().run_in_executor(self._archive, fn, *args)
        try:
            await asyncio.shield(done)
        finally:
            await asyncio.wait([done])

    async def _transform(self, src: Source, batch: _Batch) -> tuple[pa.Table, list[Rejection]]:
        if not batch.records:
            return observations_table([]), []
        listing = {e: self.listing[e] for e in batch.entities if e in self.listing}
        ctx = Context(self.ctx.reference, MappingProxyType(listing))
        raw = RawBatch(batch.batch_id, src.name, batch.records)
        outcome = await self.transformer.run(raw, src, ctx)
        observations = outcome.observations
        if not isinstance(observations, pa.Table):  # transformed on a thread
            observations = observations_table(cast(list[Observation], observations))
        return observations, outcome.rejections

    async def _store(self, src: Source, commit: _Commit) -> None:
        def store() -> Stored:  # on the store's thread, the event loop fetching meanwhile
            return self.writer.store_history(
                commit.batch_id,
                src.name,
                commit.raw,
                commit.observations,
                commit.rejections,
                commit.checkpoints,
            )

        stored = await self._on_store(store)
        metrics.OBSERVATIONS_STORED.labels(src.name).inc(stored.observations)
        metrics.DUPLICATES_SKIPPED.labels(src.name).inc(stored.duplicates)
        if not commit.checkpoints:  # the snapshot listing, not history
            return
        s = self.summary
        s.points += commit.records
        s.stored += stored.observations
        s.duplicates += stored.duplicates
        s.rejected += stored.rejections
        for checkpoint in commit.checkpoints:
            if checkpoint.status == "done":
                s.done += 1
            else:
                s.failed += 1
                if len(s.failures) < FAILURES_KEPT:
                    s.failures.append((checkpoint.entity, checkpoint.reason or ""))
        log.debug("backfill_committed", entities=len(commit.checkpoints), rows=stored.observations)
        self.reporter.update(s)


def history_of(name: str, known: Mapping[str, Source] | None = None) -> tuple[Source, History]:
    """The source called ``name`` and its history endpoint, or a one-line ConfigError."""
    known = known if known is not None else registered_sources()
    src = known.get(name) or source(name)
    if src.history is None:
        have = ", ".join(n for n, s in known.items() if s.history is not None)
        raise NoHistory(
            f"{name} has no history endpoint, so there is nothing to backfill; "
            f"sources with one: {have}"
        )
    return src, src.history


async def backfill(
    settings: Settings,
    name: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    only: Sequence[str] = (),
    refetch: bool = False,
    reporter: Reporter | None = None,
    stop: asyncio.Event | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    sources: Mapping[str, Source] | None = None,
) -> BackfillSummary:
    """Backfill ``name``'s history in ``[since, until)``; ``sources`` overrides the registry."""
    src, history = history_of(name, sources)
    if since is not None and until is not None and since >= until:
        raise ConfigError(f"--since {since:%Y-%m-%d} is not before --until {until:%Y-%m-%d}")
    cfg = settings.source_config(name)
    writer = LakeWriter(store_of(settings), compact_every=settings.compact_every)
    # Transforms run on a thread here, not in worker processes: a backfill's CPU goes
    # to fetching and storing as much as to transforming, and a worker process cost
    # ~150 MiB for ~20% more rows/s (docs/design-notes.md).
    transformer = Transformer(0)
    job = Backfill(
        settings,
        src,
        history,
        Window(since, until),
        writer=writer,
        transformer=transformer,
        reporter=reporter or LogReporter(),
        stop=stop or asyncio.Event(),
    )
    try:
        async with client_for(cfg, transport, rate_per_s=cfg.history_rate_per_s) as client:
            await job.run(client, only, refetch)
    finally:
        transformer.close()
        writer.close()
    return job.summary
