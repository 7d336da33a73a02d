"""The embedded daemon: poll sources, archive raw records, transform, store.

Three kinds of tasks connected by the bus (:mod:`yieldstream.bus`):

* one **poller** per enabled source runs its collector every ``interval_s`` and
  publishes the records in batches of ``batch_size`` to ``yields.raw``;
* the **transformer** archives each raw batch in the store while its transform runs
  in a worker process, and publishes the observations and rejections to
  ``yields.observations`` only once the archive committed (raw first: a fetched
  snapshot cannot be fetched again);
* the **sink** stores them (idempotent on the natural key) and journals the batch,
  then opens and clears alerts for the pools stored (:mod:`sinks.alerts`; one pass at
  most every ``alerts.evaluate_every_s``, over the batches stored since), in a
  transaction of their own: a failure there is logged and counted, never the batch's.

All store calls run on one dedicated thread; DuckDB and pyarrow release the GIL, so
storing overlaps with collecting. At start, batches archived but not stored (a kill
came between) are transformed and stored first.

The same code runs each role on its own over Kafka (``roles``): a durable bus
(:class:`yieldstream.kafka.KafkaBus`) holds the raw records once acknowledged, so
nothing is archived in the store and a publish is done once the broker has it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
import uuid
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Mapping,
)
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeVar

import httpx
import structlog

from ingest._http import SourceConfig
from sinks.alerts import Alerting
from sinks.writer import LakeWriter, Stored
from transforms import Context, Reference, reject
from yieldstream import metrics
from yieldstream.alertpass import AlertPasses
from yieldstream.bus import OBSERVATIONS, RAW, Bus, Message
from yieldstream.contracts import FetchReport, RawRecord, Rejection, record_id
from yieldstream.errors import BadResponse, StageFailed, YieldstreamError
from yieldstream.health import Health
from yieldstream.registry import Source, providers
from yieldstream.registry import sources as registered_sources
from yieldstream.transformer import Outcome, RawBatch, Transformer

log = structlog.get_logger(__name__)
T = TypeVar("T")

Role = Literal["collect", "transform", "sink"]
ALL_ROLES: Final[frozenset[Role]] = frozenset(("collect", "transform", "sink"))
# Raw batches being archived and transformed at once (their outcomes stay in order).
TRANSFORMS_IN_FLIGHT = 2
# Outcomes received while the one before is being stored.
SINKS_IN_FLIGHT = 2
# A daemon's stage that failed unforeseen restarts after 1 s, then 2, 4... up to 60 s
# (back to 1 s once it ran that long without failing).
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
R = TypeVar("R")
# What a published batch came to: None once stored, else why it was not.
Done = asyncio.Future[str | None]


@dataclass(slots=True)
class SourceStats:
    """What one source did in a run."""

    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    fetches: int = 0
    fetch_failures: int = 0
    error: str | None = None  # why its last failed fetch failed

    @property
    def failed(self) -> bool:
        """Every fetch of the run failed."""
        return self.fetches > 0 and self.fetch_failures == self.fetches


@dataclass(slots=True)
class RunStats:
    """What a run did: each source's share in ``sources``, and their totals."""

    sources: dict[str, SourceStats] = field(default_factory=dict)

    def _total(self, name: str) -> int:
        return sum(getattr(mine, name) for mine in self.sources.values())

    @property
    def fetched(self) -> int:
        return self._total("fetched")

    @property
    def stored(self) -> int:
        return self._total("stored")

    @property
    def duplicates(self) -> int:
        return self._total("duplicates")

    @property
    def rejected(self) -> int:
        return self._total("rejected")

    @property
    def fetch_failures(self) -> int:
        return self._total("fetch_failures")

    def fetch_done(self, source: str, records: int, error: str | None) -> None:
        mine = self.sources.setdefault(source, SourceStats())
        mine.fetches += 1
        mine.fetched += records
        if error is not None:
            mine.fetch_failures += 1
            mine.error = error

    def batch_stored(self, source: str, stored: int, duplicates: int, rejected: int) -> None:
        mine = self.sources.setdefault(source, SourceStats())
        mine.stored += stored
        mine.duplicates += duplicates
        mine.rejected += rejected


class Pipeline:
    """One embedded pipeline over a bus and a store writer."""

    def __init__(
        self,
        *,
        sources: Mapping[str, Source],
        configs: Mapping[str, SourceConfig],
        clients: Mapping[str, httpx.AsyncClient],
        writer: LakeWriter | None,
        bus: Bus,
        batch_size: int,
        transformer: Transformer | None = None,
        roles: frozenset[Role] = ALL_ROLES,
        alerting: Alerting | None = None,
        health: Health | None = None,
    ) -> None:
        if "sink" in roles and writer is None:
            raise ValueError("the sink role needs a store writer")
        self.sources = sources
        self.configs = configs
        self.clients = clients
        self.writer = writer
        self.bus = bus
        self.batch_size = batch_size
        self.transformer = transformer or Transformer(processes=0)
        self.roles = roles
        self.health = health or Health()
        self.alerts = (
            AlertPasses(
                alerting, lambda pools: self._on_store(alerting.evaluate, self._writer, pools), bus
            )
            if alerting is not None and "sink" in roles
            else None
        )
        # Raw first: without a durable bus, raw records go to the store's archive.
        self.archives = writer is not None and not bus.durable
        self.stats = RunStats(sources={name: SourceStats() for name in sources})
        self._db = ThreadPoolExecutor(1, thread_name_prefix="store")
        self._done: dict[str, Done] = {}
        self._first_cycle = {name: asyncio.Event() for name in sources}
        self._ctx = Context()
        self._stop = asyncio.Event()
        self._once = False
        self._failures: dict[str, int] = {}  # batches failed in a row, by worker

    async def _on_store(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    @property
    def _writer(self) -> LakeWriter:
        assert self.writer is not None  # the roles that store have one (checked at init)
        return self.writer

    # --- running -------------------------------------------------------------

    async def run(
        self, *, once: bool, stop: asyncio.Event, shutdown_timeout: float = 9.0
    ) -> RunStats:
        """Run until ``stop`` is set (or, with ``once``, until every source ran once).

        On ``stop`` no new cycle starts; a cycle that is publishing a fetched response
        finishes it (a fetched snapshot cannot be fetched again), one still waiting
        for its upstream is cancelled after a grace period; then the queued batches
        are archived, transformed and stored. All of it within ``shutdown_timeout``:
        past it, what is archived but not stored is finished at the next start.
        """
        self._stop = stop
        self._once = once
        try:
            await self._run(once=once, stop=stop, shutdown_timeout=shutdown_timeout)
        finally:
            self._db.shutdown(wait=True)
            self.transformer.close()
        return self.stats

    async def _run(self, *, once: bool, stop: asyncio.Event, shutdown_timeout: float) -> None:
        """The stages as tasks that end together: a failure (``StageFailed``, the only
        error a stage lets out, and only with ``once``) cancels the others and is raised;
        a stop drains them."""
        if self.writer is not None:
            try:
                stored = await self._on_store(self._writer.reference, providers(self.sources))
            except Exception as exc:
                raise self._failed("store", exc) from exc
            self._ctx = self._ctx.merged(stored)
            self.health.ready("store")  # opened and read
        workers = []
        if "transform" in self.roles:
            workers.append(asyncio.create_task(self._transformer(), name="transformer"))
        if "sink" in self.roles:
            workers.append(asyncio.create_task(self._sink(), name="sink"))
        pollers: list[asyncio.Task[None]] = []
        try:
            if self.archives:
                await self._recover()
            if "collect" in self.roles:
                pollers = [
                    asyncio.create_task(self._poll(name, once=once), name=f"poll:{name}")
                    for name in self.sources
                ]
            await _first_done(stop, workers, pollers)
        except BaseException:  # a stage failed (with once), or this run was cancelled
            stop.set()
            await self._abort([*pollers, *workers])
            raise
        stop.set()
        await self._drain(workers, pollers, shutdown_timeout)

    async def _drain(
        self, workers: list[asyncio.Task[None]], pollers: list[asyncio.Task[None]], within_s: float
    ) -> None:
        """Stop collecting, then let the queued batches through, within ``within_s``."""
        deadline = asyncio.get_running_loop().time() + within_s
        log.info("pipeline_draining")
        # Cycles publishing a response finish it; those waiting upstream give up.
        if pollers:
            await asyncio.wait(pollers, timeout=within_s / 2)
        for task in pollers:
            task.cancel()
        ended = await asyncio.gather(*pollers, return_exceptions=True)
        try:
            for outcome in ended:
                if isinstance(outcome, StageFailed):
                    raise outcome
            async with asyncio.timeout_at(deadline):
                await self.bus.close(RAW)
                if "transform" not in self.roles:  # else the transformer closes it
                    await self.bus.close(OBSERVATIONS)
                await asyncio.gather(*workers)
        except TimeoutError:
            log.warning("drain_timeout", note="unfinished batches finish at next start")
            await self._abort(workers)
        except StageFailed:
            await self._abort(workers)
            raise

    async def _abort(self, tasks: list[asyncio.Task[None]]) -> None:
        """Cancel ``tasks`` and wait for them; archived batches finish at the next start."""
        if self.writer is not None:
            self.writer.interrupt()  # a query, or a wait for disk space
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _failed(self, stage: str, exc: Exception, **fields: Any) -> StageFailed:
        """Log and count an unforeseen failure of ``stage``: one line, where it came from."""
        failed = exc if isinstance(exc, StageFailed) else StageFailed(stage, exc)
        origin = exc.__cause__ if isinstance(exc, StageFailed) else exc
        metrics.STAGE_FAILURES.labels(failed.stage).inc()
        if failed.stage in ("store", "archive"):
            self.health.waiting("store", f"last write failed: {failed}")
        log.error(
            "stage_failed", stage=failed.stage, error=str(failed), at=_where(origin), **fields
        )
        return failed

    async def _supervised(self, stage: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run a stage; with ``once`` an unforeseen failure ends the run (raised).

        A daemon's stage that fails as a whole (over Kafka, a batch's failure too: its
        offsets must not be committed) is logged, counted and started again after a
        back-off, while the other stages and sources go on; the batches it held are
        not stored now (their cycles hear why; Kafka delivers them again), and what
        was archived of them is stored at the next start. Stopping, a failure ends
        the stage for good.
        """
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            began = loop.time()
            try:
                await work()
            except Exception as exc:
                if self._once:
                    raise self._failed(stage, exc) from exc
                if self._stop.is_set():
                    self._failed(stage, exc, note="stopping: not restarted")
                    return
                failures = 1 if loop.time() - began >= BACKOFF_MAX_S else failures + 1
                delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (failures - 1))
                self._failed(stage, exc, backoff_s=delay, failures=failures, note="restarting")
            else:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    def _skipping(self, worker: str) -> Callable[[Message, Exception], Awaitable[None]] | None:
        """How ``worker`` goes on past a failed batch: only in an embedded daemon."""
        if self._once or self.bus.durable:
            return None

        async def skip(message: Message, exc: Exception) -> None:
            self._failures[worker] = failures = self._failures.get(worker, 0) + 1
            delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (failures - 1))
            failed = self._failed(worker, exc, backoff_s=delay, failures=failures)
            self._dropped(message, failed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

        return skip

    async def _recover(self) -> None:
        try:
            pending = await self._on_store(self._writer.pending)
            for batch_id in pending:
                records = await self._on_store(self._writer.load_raw, batch_id)
                if records:
                    log.info("batch_recovered", batch_id=batch_id, records=len(records))
                    await self._publish_raw(RawBatch(batch_id, records[0].source, records, True))
        except Exception as exc:
            raise self._failed("store", exc) from exc

    async def _publish_raw(self, batch: RawBatch) -> Done:
        return await self._publish(RAW, batch.source, batch.batch_id, batch)

    async def _publish(self, topic: str, key: str, token: str, value: Any) -> Done:
        """Publish; the future is done once the value is stored (or, on a durable bus,
        once the bus acknowledged it: the sink may be another process)."""
        done = asyncio.get_running_loop().create_future()
        if self.bus.durable:
            await self.bus.publish(topic, key, value)
            done.set_result(None)
        else:
            self._done[token] = done
            await self.bus.publish(topic, key, value)
        return done

    # --- polling -------------------------------------------------------------

    async def _poll(self, name: str, *, once: bool) -> None:
        source = self.sources[name]
        for dependency in source.after:
            if dependency in self._first_cycle:
                await self._first_cycle[dependency].wait()
        while not self._stop.is_set():
            try:
                await self._cycle(source)
            except Exception as exc:  # not the collector's (a failed fetch): the cycle's
                failed = self._failed("collect", exc, source=name)
                if once:
                    raise failed from exc
            finally:
                self._first_cycle[name].set()
            if once:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.configs[name].interval_s)

    async def _cycle(self, source: Source) -> None:
        run_id = uuid.uuid4().hex
        started = datetime.now(UTC)
        began = time.perf_counter()
        pending: list[Done] = []
        batch: list[RawRecord] = []
        problems: list[Rejection] = []  # items unusable as they are (RawRecord.problem)
        count = 0
        error: str | None = None
        with structlog.contextvars.bound_contextvars(source=source.name, run_id=run_id):
            log.info("fetch_started")
            try:
                async for record in source.collect(
                    self.clients[source.name], self.configs[source.name], run_id
                ):
                    count += 1
                    if record.problem is not None:  # a rejection as it is, never archived
                        problems.append(reject(record, "decode", record.problem))
                        continue
                    batch.append(record)
                    if len(batch) >= self.batch_size:
                        pending.append(await self._publish_raw(self._raw_batch(source, batch)))
                        batch = []
            except (YieldstreamError, httpx.HTTPError) as exc:
                error = str(exc)
                log.warning(
                    "fetch_failed", error=error, error_type=type(exc).__name__, records=count
                )
                if isinstance(exc, BadResponse):
                    pending.append(
                        await self._publish_outcome(
                            self._fetch_rejection(source.name, run_id, started, exc)
                        )
                    )
            except Exception as exc:  # a collector bug must not stop the daemon
                error = f"collector failed: {type(exc).__name__}: {exc}"
                log.exception(
                    "fetch_failed", error=error, error_type=type(exc).__name__, records=count
                )
            if batch:
                pending.append(await self._publish_raw(self._raw_batch(source, batch)))
            if problems:
                rejected = Outcome(None, source.name, 0, rejections=problems, run_id=run_id)
                pending.append(await self._publish_outcome(rejected))
            metrics.FETCHES.labels(source.name, "failed" if error else "ok").inc()
            self.health.fetched(source.name, error is None, time.perf_counter() - began)
            metrics.RECORDS_FETCHED.labels(source.name).inc(count)
            self.stats.fetch_done(source.name, count, error)
            report = FetchReport(source.name, run_id, started, error is None, count, error)
            pending.append(await self._publish_outcome(report))
            unstored = [reason for reason in await asyncio.gather(*pending) if reason]
            if unstored:
                log.warning(
                    "batches_not_stored",
                    batches=len(unstored),
                    reason=unstored[0],
                    note="what was archived is stored at the next start",
                )
            log.info("fetch_finished", records=count, ok=error is None)

    @staticmethod
    def _raw_batch(source: Source, records: list[RawRecord]) -> RawBatch:
        return RawBatch(uuid.uuid4().hex, source.name, records)

    @staticmethod
    def _fetch_rejection(source: str, run_id: str, started: datetime, exc: BadResponse) -> Outcome:
        rejection = Rejection(
            source=source,
            endpoint=exc.url,
            stage="fetch",
            reason=str(exc),
            native_id=None,
            payload=exc.body,
            rejected_at=datetime.now(UTC),
            raw_id=record_id(source, exc.url, started, "#response"),
        )
        return Outcome(None, source, 0, rejections=[rejection], run_id=run_id)

    async def _publish_outcome(self, value: Outcome | FetchReport) -> Done:
        return await self._publish(OBSERVATIONS, value.source, value.token, value)

    # --- transform and sink ----------------------------------------------------

    async def _transformer(self) -> None:
        """Archive and transform raw batches, two at a time, publishing in order.

        While one batch's outcome waits for its archive to commit, the next is
        already being transformed, so the transform worker does not sit idle.
        """
        await self._supervised(
            "transform",
            lambda: _in_order(
                self.bus.subscribe(RAW),
                lambda message: self._prepare(message.value),
                self._publish_prepared,
                TRANSFORMS_IN_FLIGHT,
                self._dropped,
                self._skipping("transform"),
            ),
        )
        await self.bus.close(OBSERVATIONS)

    async def _prepare(self, batch: RawBatch) -> Outcome:
        """Archive and transform one raw batch; the outcome is returned once archived.

        The archive and the transform run at the same time (the archive on the store
        thread, the transform in its worker): raw first means the outcome is not
        stored before the raw records are durable, which holds since it is returned
        only after the archive committed.
        """
        # A recovered batch may come from a source this run does not poll.
        source = self.sources.get(batch.source) or registered_sources().get(batch.source)
        with structlog.contextvars.bound_contextvars(
            source=batch.source, run_id=batch.run_id, batch_id=batch.batch_id
        ):
            archiving = None
            if self.archives and not batch.archived and batch.records:
                archiving = asyncio.ensure_future(
                    self._on_store(self._writer.archive, batch.batch_id, batch.records)
                )
            try:
                if source is None or not batch.records:
                    return self._unprocessable(batch, source)
                if source.reference is not None:
                    await self._learn(source.name, source.reference, batch.records)
                elif shared := self.bus.known_reference():
                    # The workers' shared data is the newest (it holds what this one learned).
                    self._ctx = self._ctx.merged(shared)
                return await self.transformer.run(batch, source, self._ctx)
            except Exception as exc:
                raise StageFailed("transform", exc) from exc
            finally:
                if archiving is not None:
                    try:
                        await archiving  # raises if the archive failed: nothing is published
                    except Exception as exc:
                        raise StageFailed("archive", exc) from exc

    @staticmethod
    def _unprocessable(batch: RawBatch, source: Source | None) -> Outcome:
        """A batch with no transform to run: its records are rejected, with the reason."""
        rejections = list(batch.rejections)
        if source is None:
            log.error("batch_source_unknown", records=len(batch.records))
            now = datetime.now(UTC)
            rejections.extend(
                Rejection(
                    source=r.source,
                    endpoint=r.endpoint,
                    stage="decode",
                    reason=f"no source named {r.source!r} in this yieldstream version; "
                    "upgrade it, then replay",
                    native_id=r.native_id,
                    payload=r.payload,
                    rejected_at=now,
                    raw_id=r.raw_id,
                )
                for r in batch.records
            )
        return Outcome(
            batch.batch_id,
            batch.source,
            len(batch.records) + len(batch.rejections),
            rejections=rejections,
            token=batch.batch_id,
            run_id=batch.run_id,
        )

    async def _publish_prepared(self, message: Message, outcome: Outcome) -> None:
        await self.bus.publish(OBSERVATIONS, outcome.source, outcome)
        await self.bus.commit(message)
        self._failures["transform"] = 0
        if self.bus.durable:  # else batch_stored follows at once
            log.info(
                "batch_transformed",
                source=outcome.source,
                records=outcome.records,
                observations=outcome.observed,
                rejected=len(outcome.rejections),
            )

    async def _sink(self) -> None:
        """Store what arrives, in order; the next message is received and decoded while
        the previous one is being stored (the store thread releases the GIL)."""
        ticker = None
        if self.alerts is not None:  # no batch at all is when sources go stale
            ticker = asyncio.create_task(self.alerts.tick(self._stop), name="alerts")
        try:
            await self._supervised(
                "store",
                lambda: _in_order(
                    self.bus.subscribe(OBSERVATIONS),
                    lambda message: self._sink_one(message.value),
                    self._stored,
                    SINKS_IN_FLIGHT,
                    self._dropped,
                    self._skipping("store"),
                ),
            )
            if self.alerts is not None:  # what was stored since the last pass
                await self.alerts.flush()
        finally:
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)

    async def _stored(self, message: Message, _: None) -> None:
        self._resolve(message.value.token)
        await self.bus.commit(message)
        self._failures["store"] = 0

    def _dropped(self, message: Message, error: BaseException | None) -> None:
        """A message a failed stage took and did not finish: its cycle hears why."""
        value = message.value
        token = value.batch_id if isinstance(value, RawBatch) else value.token
        self._resolve(token, str(error) if error is not None else "stopped before it was stored")

    async def _sink_one(self, value: Outcome | FetchReport) -> None:
        try:
            if isinstance(value, FetchReport):
                await self._on_store(self._writer.record_fetch, value)
            else:
                await self._store(value)
        except Exception as exc:
            raise StageFailed("store", exc) from exc
        self.health.ready("store")
        if self.alerts is not None:
            await self.alerts.stored(value.observations if isinstance(value, Outcome) else None)

    async def _store(self, outcome: Outcome) -> None:
        with structlog.contextvars.bound_contextvars(
            source=outcome.source, run_id=outcome.run_id, batch_id=outcome.batch_id
        ):
            await self._store_bound(outcome)

    async def _store_bound(self, outcome: Outcome) -> None:
        stored = await self._on_store(self._commit, outcome)
        name = outcome.source
        metrics.OBSERVATIONS_STORED.labels(name).inc(stored.observations)
        metrics.DUPLICATES_SKIPPED.labels(name).inc(stored.duplicates)
        for rejection in outcome.rejections:
            metrics.REJECTIONS.labels(name, rejection.stage).inc()
        self.stats.batch_stored(
            name, stored.observations, stored.duplicates, len(outcome.rejections)
        )
        for rejection in outcome.rejections[:5]:
            log.warning(
                "record_rejected",
                stage=rejection.stage,
                reason=rejection.reason,
                native_id=rejection.native_id,
            )
        log.info(
            "batch_stored",
            records=outcome.records,
            stored=stored.observations,
            duplicates=stored.duplicates,
            rejected=len(outcome.rejections),
        )

    def _commit(self, outcome: Outcome) -> Stored:
        """Store ``outcome`` (on the store thread), timing the write and its commit."""
        began = time.perf_counter()
        stored = self._writer.store(
            outcome.batch_id,
            outcome.source,
            outcome.records,
            outcome.observations,
            outcome.rejections,
        )
        metrics.SINK_COMMIT.observe(time.perf_counter() - began)
        return stored

    async def _learn(self, provider: str, read: Reference, records: list[RawRecord]) -> None:
        """Take the reference data a provider's batch gives, and share it."""
        learned = read(r.payload for r in records)
        if learned:
            self._ctx = self._ctx.learned(provider, learned)
            await self.bus.share_reference(provider, learned)

    def _resolve(self, key: str, failure: str | None = None) -> None:
        future = self._done.pop(key, None)
        if future is not None and not future.done():
            future.set_result(failure)


async def _in_order(
    messages: AsyncIterator[Message],
    start: Callable[[Message], Coroutine[Any, Any, R]],
    finish: Callable[[Message, R], Awaitable[None]],
    in_flight: int,
    dropped: Callable[[Message, BaseException | None], None],
    skip: Callable[[Message, Exception], Awaitable[None]] | None = None,
) -> None:
    """``start`` each message as it arrives, ``finish`` them in arrival order.

    Up to ``in_flight`` messages are started and not finished. Reading and finishing
    are two tasks of one group: a failure in either (or in a start) ends the whole
    stage at once with that error, and nothing after it is finished, so nothing after
    it is committed; unless ``skip`` is given, which is handed a message whose start
    or finish failed, and the next ones go on. Every message taken and not finished
    when the stage ends is handed to ``dropped`` with the error (None if cancelled).
    """
    started: asyncio.Queue[tuple[Message, asyncio.Task[R]] | None] = asyncio.Queue(in_flight - 1)
    unfinished: deque[tuple[Message, asyncio.Task[R]]] = deque()

    async def read() -> None:
        try:
            async for message in messages:
                item = (message, asyncio.create_task(start(message)))
                unfinished.append(item)
                await started.put(item)
            await started.put(None)
        finally:
            if isinstance(messages, AsyncGenerator):  # its consumer stops now, not at GC
                await messages.aclose()

    async def finisher() -> None:
        while (item := await started.get()) is not None:
            message, task = item
            try:
                await finish(message, await task)
            except Exception as exc:
                if skip is None:
                    raise
                await skip(message, exc)
            unfinished.popleft()

    error: BaseException | None = None
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(read())
            group.create_task(finisher())
    except BaseExceptionGroup as failed:
        error = failed.exceptions[0]
        raise error from error.__cause__  # its own cause kept
    finally:
        for message, task in unfinished:
            # Its error is the one raised, or came after it: read, whenever it comes.
            task.add_done_callback(_read_outcome)
            task.cancel()
            dropped(message, error)


async def _first_done(
    stop: asyncio.Event, workers: list[asyncio.Task[None]], pollers: list[asyncio.Task[None]]
) -> None:
    """Wait for ``stop``, a worker's end, or every poller's; raise what a task raised."""
    stopper = asyncio.create_task(stop.wait())
    polling = asyncio.gather(*pollers)
    polling.add_done_callback(_read_outcome)  # whatever ends it, and whenever
    waiters: list[asyncio.Future[Any]] = [stopper, *workers]
    if pollers:
        waiters.append(polling)
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    ended: list[asyncio.Future[Any]] = [*workers, polling]
    for task in ended:
        if task.done() and not task.cancelled() and (error := task.exception()) is not None:
            raise error if isinstance(error, StageFailed) else StageFailed("pipeline", error)


def _read_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _where(exc: BaseException | None) -> str | None:
    """``file:line in function`` where ``exc`` was raised: a bug's place in one line."""
    frames = traceback.extract_tb(exc.__traceback__) if exc is not None else []
    if not frames:
        return None
    frame = frames[-1]
    return f"{frame.filename}:{frame.lineno} in {frame.name}"
