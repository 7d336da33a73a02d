"""The transform stage: raw batches in, observations (as Arrow) and rejections out.

Transforms are pure Python and hold the GIL, so on a busy daemon they would compete
with collecting and storing for one core. :class:`Transformer` runs them in worker
processes (``transform_processes``, default 1): a batch goes over as msgpack
(~0.3 us a record), the observations come back as an Arrow table ready for the
store (~0.6 us a record), while the parent collects and stores. With
``transform_processes = 0`` they run on a thread of the parent instead.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from types import MappingProxyType

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import structlog

from sinks.tables import observations_table
from transforms import Context, ReferenceData, apply
from yieldstream import heap, wire
from yieldstream.contracts import Observation, RawRecord, Rejection
from yieldstream.registry import Source, sources

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class RawBatch:
    batch_id: str
    source: str
    records: list[RawRecord]
    archived: bool = False  # True when recovered from the archive
    # Messages that were rejected before any transform (undecodable on the bus).
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def run_id(self) -> str | None:
        """The fetch run the records came from."""
        return self.records[0].run_id if self.records else None


class Encoded(list[tuple[int, bytes, bytes]]):
    """Observations already encoded as (partition, key, value) messages for Kafka."""

    def __init__(self, messages: list[tuple[int, bytes, bytes]], rows: int) -> None:
        super().__init__(messages)
        self.rows = rows  # the observations they hold


@dataclass(frozen=True, slots=True)
class WireOut:
    """How the worker encodes for Kafka: where a key goes, how large a message may be.

    ``place`` is pickled to the worker with each batch: a module-level callable.
    """

    place: Callable[[bytes], int]
    max_bytes: int


def _token() -> str:
    return uuid.uuid4().hex


@dataclass(slots=True)
class Outcome:
    batch_id: str | None  # None for a whole-response rejection
    source: str
    records: int
    # An Arrow table from a worker process, or on a thread from a source's columnar
    # transform (Source.columns); else a list when transformed on a thread; wire
    # messages when the worker encodes for Kafka.
    observations: pa.Table | list[Observation] | Encoded = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    token: str = field(default_factory=_token)
    run_id: str | None = None  # the fetch run the records came from

    @property
    def observed(self) -> int:
        """How many observations it holds, however they are held."""
        if isinstance(self.observations, Encoded):
            return self.observations.rows
        return len(self.observations)


def transform_records(
    records: list[RawRecord], source: Source, ctx: Context
) -> tuple[list[Observation], list[Rejection]]:
    """Run a source's transform over records; every failure is a rejection."""
    observations: list[Observation] = []
    rejections: list[Rejection] = []
    for record in records:
        result = apply(source.transform, record, ctx)
        if isinstance(result, Rejection):
            rejections.append(result)
        else:
            observations.extend(result)
    return observations, rejections


def transform_table(
    records: list[RawRecord], source: Source, ctx: Context
) -> tuple[pa.Table, list[Rejection]]:
    """:func:`transform_records`, as an Arrow table, through the source's columnar
    transform where it has one (``Source.columns``): the records it does not take go
    through ``transform`` one by one, and the rows keep the records' order."""
    if source.columns is None:
        every, rejected = transform_records(records, source, ctx)
        return observations_table(every), rejected
    table, taken = source.columns(records, ctx)
    if len(taken) == len(records):
        return table, []
    chosen = set(taken)
    rest = [i for i in range(len(records)) if i not in chosen]
    observations: list[Observation] = []
    order: list[int] = []
    rejections: list[Rejection] = []
    for i in rest:
        result = apply(source.transform, records[i], ctx)
        if isinstance(result, Rejection):
            rejections.append(result)
        else:
            observations.extend(result)
            order.extend([i] * len(result))
    if not observations:
        return table, rejections
    merged = pa.concat_tables([table, observations_table(observations)])
    return merged.take(pc.sort_indices(pa.array(taken + order))), rejections


_RECORDS = msgspec.msgpack.Decoder(list[RawRecord])
_REJECTIONS = msgspec.msgpack.Decoder(list[Rejection])
_ENCODER = msgspec.msgpack.Encoder()


def _context(reference: Mapping[str, Mapping[str, str]], listing: Mapping[str, bytes]) -> Context:
    frozen = {source: MappingProxyType(values) for source, values in reference.items()}
    return Context(MappingProxyType(frozen), MappingProxyType(listing))


def _transform_encoded(
    source_name: str, encoded: bytes, reference: ReferenceData, listing: Mapping[str, bytes]
) -> tuple[pa.Table, bytes]:
    """Worker-process entry: msgpack records in, Arrow observations and msgpack out."""
    table, rejections = transform_table(
        _RECORDS.decode(encoded), sources()[source_name], _context(reference, listing)
    )
    return table, _ENCODER.encode(rejections)


def _transform_to_wire(
    source_name: str,
    encoded: bytes,
    reference: ReferenceData,
    listing: Mapping[str, bytes],
    out: WireOut,
) -> tuple[Encoded, bytes]:
    """Worker-process entry for Kafka: observations come back as column messages."""
    table, rejections = transform_table(
        _RECORDS.decode(encoded), sources()[source_name], _context(reference, listing)
    )
    messages = wire.encode_table(table, out.place, out.max_bytes)
    return Encoded(messages, table.num_rows), _ENCODER.encode(rejections)


def _warm_up() -> None:
    sources()  # import every source module once, at worker start


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _start_worker(parent: int, pdeathsig: bool, settle: bool = False) -> None:
    """Worker initializer: end with the parent, then import the sources (and, for a
    Kafka daemon's transform, tune the collector: :mod:`yieldstream.heap`).

    A parent killed with SIGKILL cannot stop its workers; without this they would
    wait on their queue forever. ``parent`` is the pid the parent read itself, so
    a parent that died before this ran (during the worker's start and imports) is
    noticed too: the worker now has another parent.
    """
    signalled = pdeathsig and sys.platform == "linux" and _die_with_parent()
    if os.getppid() != parent:
        os._exit(1)
    if not signalled:
        threading.Thread(target=_watch, args=(parent,), name="parent-watch", daemon=True).start()
    _warm_up()
    if settle:
        heap.settle()


def _die_with_parent() -> bool:
    """Linux: the kernel sends SIGKILL when the thread that started this process ends.

    That is the parent's thread, not its process: only a worker started from the
    main thread (which lasts as long as its process) may ask for it. False when
    the kernel refused.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        log.warning("parent_death_signal_unavailable", error=os.strerror(errno))
        return False
    return True


def _watch(parent: int) -> None:
    """Elsewhere: look every second whether the parent is still there."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


class Transformer:
    """Runs transforms off the event loop, in worker processes or on a thread.

    A worker process that dies (killed, out of memory) is replaced and the batch is
    tried once more in the new one; a second death is an error.
    """

    def __init__(self, processes: int, *, wire_out: WireOut | None = None) -> None:
        self.processes = processes
        # Over Kafka the worker also encodes the messages, off the event loop.
        self._wire = wire_out
        self._pool = self._new_pool()

    def _new_pool(self) -> Executor:
        if self.processes > 0:
            # The workers are started here, by this thread: with spawn, each submit
            # starts one until there are enough.
            on_main = threading.current_thread() is threading.main_thread()
            pool = ProcessPoolExecutor(
                self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(os.getpid(), on_main, self._wire is not None),
            )
            for _ in range(self.processes):
                pool.submit(_warm_up)  # start the workers now, not at the first batch
            return pool
        return ThreadPoolExecutor(1, thread_name_prefix="transform")

    async def run(self, batch: RawBatch, source: Source, ctx: Context) -> Outcome:
        observations: pa.Table | list[Observation] | Encoded
        if self.processes == 0:
            # The store, and the bus's encoder, take the table a columnar transform makes.
            run = transform_table if source.columns else transform_records
            observations, rejections = await asyncio.get_running_loop().run_in_executor(
                self._pool, run, batch.records, source, ctx
            )
        else:
            encoded = _ENCODER.encode(batch.records)
            reference = {source: dict(values) for source, values in ctx.reference.items()}
            context = (reference, dict(ctx.listing))
            pool = self._pool
            try:
                observations, rejected = await self._in_worker(pool, source.name, encoded, context)
            except BrokenProcessPool:
                log.warning("transform_worker_died", note="replacing it; the batch is retried")
                if self._pool is pool:  # the first batch to notice replaces the pool
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = self._new_pool()
                observations, rejected = await self._in_worker(
                    self._pool, source.name, encoded, context
                )
            rejections = _REJECTIONS.decode(rejected)
        return Outcome(
            batch.batch_id,
            batch.source,
            len(batch.records),
            observations,
            [*batch.rejections, *rejections],
            token=batch.batch_id,
            run_id=batch.run_id,
        )

    async def _in_worker(
        self,
        pool: Executor,
        source: str,
        encoded: bytes,
        context: tuple[dict[str, dict[str, str]], dict[str, bytes]],
    ) -> tuple[pa.Table | Encoded, bytes]:
        loop = asyncio.get_running_loop()
        if self._wire is not None:
            return await loop.run_in_executor(
                pool, _transform_to_wire, source, encoded, *context, self._wire
            )
        return await loop.run_in_executor(pool, _transform_encoded, source, encoded, *context)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
