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
import multiprocessing
import uuid
from collections.abc import Mapping
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

import msgspec
import pyarrow as pa

from sinks.writer import observations_table
from transforms import Context, apply
from yieldstream.contracts import Observation, RawRecord, Rejection
from yieldstream.registry import Source, sources


@dataclass(slots=True)
class RawBatch:
    batch_id: str
    source: str
    records: list[RawRecord]
    archived: bool = False  # True when recovered from the archive


def _token() -> str:
    return uuid.uuid4().hex


@dataclass(slots=True)
class Outcome:
    batch_id: str | None  # None for a whole-response rejection
    source: str
    records: int
    observations: pa.Table = field(default_factory=lambda: observations_table([]))
    rejections: list[Rejection] = field(default_factory=list)
    token: str = field(default_factory=_token)


@dataclass(slots=True)
class FetchReport:
    source: str
    run_id: str
    started_at: datetime
    ok: bool
    records: int
    error: str | None
    token: str = field(default_factory=_token)


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


_RECORDS = msgspec.msgpack.Decoder(list[RawRecord])
_REJECTIONS = msgspec.msgpack.Decoder(list[Rejection])
_ENCODER = msgspec.msgpack.Encoder()


def _transform_encoded(
    source_name: str, encoded: bytes, categories: Mapping[str, str]
) -> tuple[pa.Table, bytes]:
    """Worker-process entry: msgpack records in, Arrow observations and msgpack out."""
    observations, rejections = transform_records(
        _RECORDS.decode(encoded), sources()[source_name], Context(MappingProxyType(categories))
    )
    return observations_table(observations), _ENCODER.encode(rejections)


def _warm_up() -> None:
    sources()  # import every source module once, at worker start


class Transformer:
    """Runs transforms off the event loop, in worker processes or on a thread."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: Executor
        if processes > 0:
            self._pool = ProcessPoolExecutor(
                processes, mp_context=multiprocessing.get_context("spawn"), initializer=_warm_up
            )
        else:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="transform")

    async def run(self, batch: RawBatch, source: Source, ctx: Context) -> Outcome:
        loop = asyncio.get_running_loop()
        if self.processes > 0:
            table, rejected = await loop.run_in_executor(
                self._pool,
                _transform_encoded,
                source.name,
                _ENCODER.encode(batch.records),
                dict(ctx.categories),
            )
            rejections = _REJECTIONS.decode(rejected)
        else:
            observations, rejections = await loop.run_in_executor(
                self._pool, transform_records, batch.records, source, ctx
            )
            table = observations_table(observations)
        return Outcome(
            batch.batch_id,
            batch.source,
            len(batch.records),
            table,
            rejections,
            token=batch.batch_id,
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
