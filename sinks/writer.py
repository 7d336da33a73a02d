"""The batch writer: raw archive first, then observations and rejections, idempotently.

Two transactions per batch, the order the delivery guarantee rests on:

1. :meth:`LakeWriter.archive` stores the batch's raw records and journals the batch
   as ``archived``. From then on a kill loses nothing: on restart,
   :meth:`LakeWriter.pending` lists archived batches not yet ``stored``.
2. :meth:`LakeWriter.store` appends the observations whose key
   ``(source, pool_id, observed_at)`` is not stored yet, keeps each pool's latest
   row (:mod:`sinks.latest`), appends the rejections whose ``raw_id`` is new, and
   journals the batch as ``stored``: one transaction, so a batch is stored whole or
   not at all. The key check reads the history only for the rows inside their
   pool's stored range (an anti-join over their own time span): a poll, or a
   backfill of pools not stored yet, reads none.

The writer merges Parquet files (DuckLake's own maintenance functions) when the
file counts call for it (:meth:`LakeWriter.maybe_compact`), in size tiers, so
readers open a number of files that grows with the store's bytes over the largest
tier, not with its commits, and each byte is rewritten about once per tier. Files
merged away are deleted only once no snapshot younger than :data:`KEEP` needs
them, so a query that started before a compaction still finds its files.

Several writers (sink processes, on several hosts with a PostgreSQL catalog) may
share one store: their transactions and compactions take turns under
:func:`sinks.lake.write_lock`, and a commit that clashed all the same runs again.

Not thread-safe: the pipeline drives one writer from one thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from pathlib import Path
from typing import Any, Literal, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import stamina
import structlog

from sinks import latest
from sinks.lake import (
    LAKE,
    CatalogHold,
    Store,
    check_catalog,
    mask,
    open_writer,
    prepare_data_dir,
    write_lock,
)
from sinks.merge import merge
from sinks.orphans import delete_own_orphans, file_name, store_tag
from sinks.space import SpaceWait, disk_full
from sinks.staged import StagedFiles, StagedObservations
from sinks.tables import OBS_FIELDS as _OBS_FIELDS
from sinks.tables import TS as _TS
from sinks.tables import observations_table
from transforms import Reference
from yieldstream.contracts import FetchReport, Observation, RawRecord, Rejection, fetch_key

log = structlog.get_logger(__name__)

_VALUE_FIELDS = tuple(f for f in _OBS_FIELDS if f not in ("source", "pool_id", "observed_at"))
# How the tables the writer adds files to are partitioned (sinks/sql/001, 007).
PARTITIONS = {"observations": "year", "raw_records": "month"}
# Snapshots (and the files only they use) are kept at least this long for readers.
KEEP = timedelta(hours=1)
# Compaction tiers: files below a tier's size are merged into files of up to that
# size, once :data:`MERGE_AT` of them would go. A poll's or a small source's files
# gather in the first tier, those merged files in the next, and so on: a byte is
# rewritten once per tier, not at every compaction. 128 MiB files keep a merge's
# memory within a daemon's budget (a merge streams one row group at a time).
TIERS = (1024 * 1024, 16 * 1024 * 1024, 128 * 1024 * 1024)
SMALL_FILE = TIERS[0]
# Files a tier's merge would remove (beyond one per partition) before it runs.
MERGE_AT = 32
# Per tier, the active files below its size beyond one per table partition: what
# its merge would remove. Read from the catalog's own tables, in milliseconds.
# A tier takes the files from a quarter of the tier below's size up to its own: the
# first tier's merged files, once big enough, move on to the next.
BANDS = tuple(zip((0, *(t // 4 for t in TIERS[:-1])), TIERS, strict=True))
_IN = "size >= {0} AND size < {1}"
_EXCESS = f"count(*) FILTER ({_IN}) - count(DISTINCT part) FILTER ({_IN})"
_EXCESS_FILES = f"""
    SELECT {", ".join(_EXCESS.format(low, high) for low, high in BANDS)}
    FROM (SELECT file_size_bytes AS size, (table_id, regexp_replace(path, '[^/]*$', '')) AS part
          FROM __ducklake_metadata_{LAKE}.ducklake_data_file WHERE end_snapshot IS NULL)
"""
T = TypeVar("T")
# What a commit fails with, in DuckDB 1.4.4 and DuckLake 0.3, when another writer
# committed since the transaction began. Under write_lock that does not happen
# between writers; should it all the same (a process writing without the lock),
# the whole transaction runs again, from a snapshot that includes the other commit:
_CONCURRENT = (
    # SQLite: the catalog changed since this transaction first read it (WAL snapshot).
    "database is locked",
    # PostgreSQL: DuckLake misparses the change log when another writer created
    # tables or views since this transaction began.
    "failed to parse catalog entry",
    # Either: a snapshot-id or file-id clash (DuckLake's own retry is off, see
    # open_writer), a conflict, a serialization failure.
    "exceeded the maximum retry count",
    "primary key",
    "unique",
    "conflict",
    "concurrent",
    "could not serialize",
)


def _raced(exc: BaseException) -> bool:
    """Whether ``exc`` is a commit that lost a race with another writer's."""
    if disk_full(exc):  # "Exceeded the maximum retry count" too, but not a race
        return False
    return isinstance(exc, duckdb.Error) and any(text in str(exc).lower() for text in _CONCURRENT)


@dataclass(frozen=True, slots=True)
class Replaced:
    """What one :meth:`LakeWriter.replace` changed (or would change, on a dry run)."""

    added: int
    removed: int
    changed: int
    rejections_before: int
    rejections_after: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How one entity of a backfill ended (a row of ``backfill_checkpoints``)."""

    source: str
    entity: str
    since: datetime | None
    until: datetime
    status: Literal["done", "failed"]
    points: int
    reason: str | None
    run_id: str


@dataclass(frozen=True, slots=True)
class Stored:
    """What one :meth:`LakeWriter.store` call added."""

    observations: int
    duplicates: int
    rejections: int


def _as_table(observations: Sequence[Observation] | pa.Table) -> pa.Table:
    return observations if isinstance(observations, pa.Table) else observations_table(observations)


def _settle_arrow_pool() -> None:
    """Make jemalloc Arrow's allocator in a writing process, where it is built in.

    pyarrow's default, mimalloc, kept the pages of each commit's tables: a
    500,000-point backfill peaked at 549 MiB with it, 474 MiB with jemalloc (and
    spent less system time), at the same speed (bench/backfill.py).
    """
    if pa.default_memory_pool().backend_name != "jemalloc":
        with suppress(NotImplementedError):  # a pyarrow built without jemalloc
            pa.set_memory_pool(pa.jemalloc_memory_pool())


_FETCH = attrgetter("source", "endpoint", "fetched_at", "run_id", "kind")


def raw_table(batch_id: str, records: Sequence[RawRecord]) -> pa.Table:
    """Records as the ``raw_records`` table's rows, column-wise.

    What the records of one fetch share (source, endpoint, time, run, kind and the
    fetch's part of the raw id: :func:`yieldstream.contracts.record_id`) is made
    once per fetch and repeated by Arrow; a history batch holds thousands of
    points of few fetches.
    """
    fetches = list(map(_FETCH, records))
    order = {fetch: i for i, fetch in enumerate(dict.fromkeys(fetches))}
    take = pa.array([order[fetch] for fetch in fetches], pa.int32())
    shared: list[Sequence[Any]] = list(zip(*order, strict=True)) or [()] * 5
    keys = [fetch_key(source, endpoint, at) for source, endpoint, at, *_ in order]
    native = pa.array([r.native_id for r in records], type=pa.string())
    payload = pa.array([r.payload for r in records], type=pa.binary()).cast(pa.string())

    def each(values: Sequence[Any], kind: pa.DataType) -> pa.Array:
        return pa.array(values, type=kind).take(take)

    return pa.table(
        {
            "raw_id": pc.binary_join_element_wise(each(keys, pa.string()), native, ":"),
            "batch_id": pa.repeat(pa.scalar(batch_id, pa.string()), len(records)),
            "source": each(shared[0], pa.string()),
            "endpoint": each(shared[1], pa.string()),
            "kind": each(shared[4], pa.string()),
            "native_id": native,
            "fetched_at": each(shared[2], _TS),
            "run_id": each(shared[3], pa.string()),
            "payload": payload,
        }
    )


def rejections_table(batch_id: str | None, rejections: Sequence[Rejection]) -> pa.Table:
    return pa.table(
        {
            "raw_id": pa.array([r.raw_id for r in rejections], type=pa.string()),
            "batch_id": pa.array([batch_id] * len(rejections), type=pa.string()),
            "source": pa.array([r.source for r in rejections], type=pa.string()),
            "endpoint": pa.array([r.endpoint for r in rejections], type=pa.string()),
            "stage": pa.array([r.stage for r in rejections], type=pa.string()),
            "reason": pa.array([r.reason for r in rejections], type=pa.string()),
            "native_id": pa.array([r.native_id for r in rejections], type=pa.string()),
            "payload": pa.array([r.payload for r in rejections], type=pa.binary()),
            "payload_sha256": pa.array([r.payload_sha256 for r in rejections], type=pa.string()),
            "rejected_at": pa.array([r.rejected_at for r in rejections], type=_TS),
        }
    )


def checkpoints_table(batch_id: str, checkpoints: Sequence[Checkpoint]) -> pa.Table:
    now = datetime.now(UTC)
    return pa.table(
        {
            "source": pa.array([c.source for c in checkpoints], type=pa.string()),
            "entity": pa.array([c.entity for c in checkpoints], type=pa.string()),
            "window_since": pa.array([c.since for c in checkpoints], type=_TS),
            "window_until": pa.array([c.until for c in checkpoints], type=_TS),
            "status": pa.array([c.status for c in checkpoints], type=pa.string()),
            "points": pa.array([c.points for c in checkpoints], type=pa.int64()),
            "reason": pa.array([c.reason for c in checkpoints], type=pa.string()),
            "batch_id": pa.array([batch_id] * len(checkpoints), type=pa.string()),
            "run_id": pa.array([c.run_id for c in checkpoints], type=pa.string()),
            "finished_at": pa.array([now] * len(checkpoints), type=_TS),
        }
    )


class LakeWriter:
    """Writes batches into the DuckLake store; see the module docstring for the protocol."""

    def __init__(
        self, store: Store, *, compact_every: int | None = 256, wait_for_space: bool = False
    ) -> None:
        """``compact_every``: commits after which a compaction runs whatever the file
        counts (it also expires old snapshots); None: compact only when asked.
        ``wait_for_space``: on a full disk, wait until a commit succeeds (a daemon)
        rather than raise (see :mod:`sinks.space`)."""
        prepare_data_dir(store.data_dir)
        _settle_arrow_pool()
        with write_lock(store):  # other writers may be starting on this store too
            check_catalog(store)  # never a new catalog over the data files of a store
            self._hold = CatalogHold(store)
            try:
                self.con = open_writer(store)
            except BaseException:
                self._hold.close()
                raise
        try:
            self._tag = store_tag(self.con, LAKE)  # in the name of each file it writes
        except BaseException:
            self.con.close()
            self._hold.close()
            raise
        self._unknown_files: set[str] = set()  # logged once
        self._space = SpaceWait(str(store.data_dir)) if wait_for_space else None
        self._store = store
        self.compact_every = compact_every
        self._commits = 0
        self.table_dir = store.lake / "main"

    def close(self) -> None:
        self.con.close()
        self._hold.close()

    def interrupt(self) -> None:
        """Stop what the writer's thread is doing: a query, or a wait for disk space."""
        if self._space is not None:
            self._space.interrupt()
        self.con.interrupt()

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = self.con
        con.execute("BEGIN")
        try:
            yield con
            con.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._commits += 1

    def _rollback(self) -> None:
        """End a failed transaction; a failed COMMIT may have ended it already."""
        with suppress(duckdb.TransactionException):  # no transaction is active
            self.con.execute("ROLLBACK")

    def _committed(self, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """``work`` in one transaction under :func:`write_lock`; run again if its commit clashed.

        Several writers (processes, hosts) may share one store; the lock keeps their
        transactions apart. A commit that clashed all the same (see :data:`_CONCURRENT`)
        runs ``work`` again from the start: it re-reads what the other writer
        committed, so the anti-joins stay right, and the Parquet files of the failed
        attempt are orphans that compaction deletes. A full disk waits for space with
        ``wait_for_space`` (:mod:`sinks.space`), else raises.
        """
        while True:
            try:
                result = self._committed_once(work)
            except (OSError, duckdb.Error) as exc:
                if self._space is None or not disk_full(exc, self._store.data_dir):
                    raise
                self._space.wait(exc)
                continue
            if self._space is not None:
                self._space.succeeded()
            return result

    def committed(self, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """``work`` in one write transaction of its own, as a batch is written: under
        the write lock, run again from the start if its commit clashed. For what the
        sink keeps beside the batches (alerts, :mod:`sinks.alerts`)."""
        return self._committed(work)

    def _committed_once(self, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        for attempt in stamina.retry_context(
            on=_raced,
            attempts=20,
            timeout=120.0,
            wait_initial=0.02,
            wait_max=1.0,
            wait_jitter=0.05,
        ):
            with attempt, write_lock(self._store, self.con), self._transaction() as con:
                return work(con)
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    def _journal(
        self,
        con: duckdb.DuckDBPyConnection,
        batch_id: str,
        stage: str,
        source: str,
        records: int,
        stored: Stored | None = None,
    ) -> None:
        con.execute(
            "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                batch_id,
                stage,
                source,
                records,
                stored.observations if stored else None,
                stored.duplicates if stored else None,
                stored.rejections if stored else None,
                datetime.now(UTC),
            ],
        )

    def archive(self, batch_id: str, records: Sequence[RawRecord]) -> bool:
        """Make a batch's raw records durable. False if the batch was archived already."""
        if not records:
            return False

        def archive(con: duckdb.DuckDBPyConnection) -> bool:
            seen = con.execute(
                "SELECT 1 FROM batches WHERE batch_id = ? AND stage = 'archived' LIMIT 1",
                [batch_id],
            ).fetchone()
            if seen:
                return False
            self._add_files(con, "raw_records", "fetched_at", raw_table(batch_id, records))
            self._journal(con, batch_id, "archived", records[0].source, len(records))
            return True

        return self._committed(archive)

    def _add_files(
        self, con: duckdb.DuckDBPyConnection, table_name: str, time_column: str, rows: pa.Table
    ) -> None:
        """Append ``rows`` to a time-partitioned table as Parquet files written by pyarrow.

        pyarrow's writer is several times faster than an INSERT through DuckDB's (the
        raw JSON text especially); ``ducklake_add_data_files`` then registers the
        files in the current transaction, in their partition folders (``year=`` for
        observations, ``year=/month=`` for the raw archive: :data:`PARTITIONS`). A
        file whose transaction never commits is an orphan that no query sees.
        """
        by_month = PARTITIONS[table_name] == "month"
        # year * 100 + month (or the year): integers, several times cheaper than strftime
        times = rows[time_column]
        parts = pc.year(times)
        if by_month:
            parts = pc.add(pc.multiply(parts, 100), pc.month(times))
        distinct = pc.unique(parts).to_pylist()
        name = file_name(table_name, self._tag)  # compaction deletes its orphans only
        for key in distinct:
            part = rows if len(distinct) == 1 else rows.filter(pc.equal(parts, key))
            year, month = divmod(key, 100) if by_month else (key, 0)
            folder = self.table_dir / table_name / f"year={year}"
            if by_month:
                folder = folder / f"month={month}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(
                part, folder / f"{name}.parquet", compression="zstd", compression_level=1
            )
        # One call for all of them (a history batch spans years): the glob names
        # exactly this call's files.
        glob = ("year=*", "month=*") if by_month else ("year=*",)
        self._register(
            con, table_name, self.table_dir.joinpath(table_name, *glob, f"{name}.parquet")
        )

    def _register(self, con: duckdb.DuckDBPyConnection, table_name: str, glob: Path) -> None:
        """Add the Parquet files ``glob`` names to ``table_name``, in the open transaction."""
        con.execute(
            f"CALL ducklake_add_data_files('{LAKE}', '{table_name}', ?, hive_partitioning => true)",
            [str(glob)],
        )

    def staged_raw(self) -> StagedFiles:
        """New ``raw_records`` files for one :meth:`store_history` call to register.

        Any thread may write them (they touch no connection), while this writer
        stores the commit before.
        """
        name = file_name("raw_records", self._tag)
        return StagedFiles(self.table_dir / "raw_records", name, "fetched_at", by_month=True)

    def staged_observations(self, batch_id: str) -> StagedObservations:
        """New ``observations`` files of the commit ``batch_id`` (as :meth:`staged_raw`)."""
        name = file_name("observations", self._tag)
        return StagedObservations(self.table_dir / "observations", name, batch_id)

    def store(
        self,
        batch_id: str | None,
        source: str,
        records: int,
        observations: Sequence[Observation] | pa.Table,
        rejections: Sequence[Rejection],
    ) -> Stored:
        """Append new observations and rejections; journal the batch as stored."""
        staged_obs = _as_table(observations)

        def store(con: duckdb.DuckDBPyConnection) -> Stored:
            added = self._insert_observations(con, batch_id, staged_obs)
            rejected = self._insert_rejections(con, batch_id, rejections)
            result = Stored(added, staged_obs.num_rows - added, rejected)
            if batch_id is not None:
                self._journal(con, batch_id, "stored", source, records, result)
            return result

        result = self._committed(store)
        self.maybe_compact()
        return result

    def store_history(
        self,
        batch_id: str,
        source: str,
        raw: pa.Table | StagedFiles | None,
        observations: Sequence[Observation] | pa.Table | StagedObservations,
        rejections: Sequence[Rejection],
        checkpoints: Sequence[Checkpoint],
    ) -> Stored:
        """Archive, store and checkpoint backfill batches in one transaction.

        ``raw`` is the raw records as a :func:`raw_table` of ``batch_id``, and
        ``observations`` the rows, or the files they were written to ahead
        (:meth:`staged_raw`, :meth:`staged_observations`): registered as they are
        when every row is new, else read back, what is new stored, and deleted.

        History can be fetched again, so unlike a snapshot it needs no archive
        committed ahead of its rows: the raw records, the observations, the
        rejections and the entities' checkpoints commit together or not at all, and
        a backfill killed at any point resumes from its checkpoints. A raw record
        archived already, word for word, by an earlier backfill of its entity (a
        ``--refetch``) is not archived again (:meth:`_unarchived`).
        """
        staged = [f for f in (raw, observations) if isinstance(f, StagedFiles)]
        kept: list[StagedFiles] = []  # registered by the transaction

        def store(con: duckdb.DuckDBPyConnection) -> Stored:
            kept.clear()
            try:
                records = self._archive_history(con, source, raw, checkpoints, kept)
                if records:
                    self._journal(con, batch_id, "archived", source, records)
                if isinstance(observations, StagedObservations):
                    total, added = observations.rows, self._insert_staged(con, observations, kept)
                else:
                    total, added = (
                        staged_obs.num_rows,
                        self._insert_observations(con, batch_id, staged_obs),
                    )
                rejected = self._insert_rejections(con, batch_id, rejections)
                result = Stored(added, total - added, rejected)
                if records:
                    self._journal(con, batch_id, "stored", source, records, result)
                if checkpoints:
                    staged_cp = checkpoints_table(batch_id, checkpoints)  # noqa: F841 - by name
                    con.execute("INSERT INTO backfill_checkpoints SELECT * FROM staged_cp")
            except BaseException:
                kept.clear()  # this transaction is rolled back
                raise
            return result

        try:
            for files in staged:
                files.close()
            staged_obs = (
                pa.table({})
                if isinstance(observations, StagedObservations)
                else _as_table(observations)
            )
            result = self._committed(store)
        finally:
            # Files no transaction registered (some rows were stored already, or the
            # transaction failed before its COMMIT) are nobody's. After a failed
            # COMMIT they stay: compaction deletes them if they are orphans.
            for files in staged:
                if files not in kept:
                    files.discard()
        self.maybe_compact()
        return result

    def _insert_staged(
        self,
        con: duckdb.DuckDBPyConnection,
        staged: StagedObservations,
        kept: list[StagedFiles],
    ) -> int:
        """Store the new rows of ``staged``: its files as they are when all are new
        (``kept`` then lists them), else a copy of the new rows; their count."""
        if not staged.rows:
            return 0
        picked = self._new_rows(con, staged.keys)
        if len(picked) == staged.rows:  # every row new, no key twice
            self._register(con, "observations", staged.glob())
            kept.append(staged)
            latest.advance(con, staged.newest)
            return staged.rows
        new = staged.read().take(picked)
        if new.num_rows:
            self._add_files(con, "observations", "observed_at", new)
            latest.advance(con, new)
        return int(new.num_rows)

    def _archive_history(
        self,
        con: duckdb.DuckDBPyConnection,
        source: str,
        raw: pa.Table | StagedFiles | None,
        checkpoints: Sequence[Checkpoint],
        kept: list[StagedFiles],
    ) -> int:
        """Archive the records of ``raw`` not archived before (:meth:`_unarchived`):
        how many. ``raw``'s own files, if registered as they are, go in ``kept``."""
        if raw is None or not (raw.rows if isinstance(raw, StagedFiles) else raw.num_rows):
            return 0
        before = self._archived_by(con, source, checkpoints)
        if isinstance(raw, StagedFiles) and not before:  # a first backfill of these entities
            self._register(con, "raw_records", raw.glob())
            kept.append(raw)
            return raw.rows
        table = raw.read() if isinstance(raw, StagedFiles) else raw
        new_raw = self._unarchived(con, table, before) if before else table
        if new_raw.num_rows:
            self._add_files(con, "raw_records", "fetched_at", new_raw)
        return int(new_raw.num_rows)

    def _archived_by(
        self, con: duckdb.DuckDBPyConnection, source: str, checkpoints: Sequence[Checkpoint]
    ) -> list[str]:
        """The backfill commits that stored these checkpoints' entities before."""
        entities = [c.entity for c in checkpoints]
        before = con.execute(
            """
            SELECT DISTINCT batch_id FROM backfill_checkpoints
            WHERE source = ? AND status = 'done' AND list_contains(?::VARCHAR[], entity)
            """,
            [source, entities],
        ).fetchall()
        return [str(row[0]) for row in before]

    def _unarchived(
        self, con: duckdb.DuckDBPyConnection, raw: pa.Table, before: list[str]
    ) -> pa.Table:
        """The records of ``raw`` not archived, with the same text, by the backfill
        commits ``before`` that stored these entities (their checkpoints name them).

        An identical item gives identical observations, which are stored already;
        the archive keeps it once. Only those earlier commits' records are read (a
        commit's files hold its batch id alone, so their statistics prune the rest);
        a first backfill of its entities reads none.
        """
        staged_raw = raw.append_column(  # noqa: F841 - read by name
            "_i", pa.array(range(raw.num_rows), pa.int64())
        )
        kept = con.execute(
            """
            SELECT s._i FROM staged_raw AS s
            WHERE NOT EXISTS (
                SELECT 1 FROM raw_records AS r
                WHERE r.batch_id IN (SELECT unnest(?::VARCHAR[])) AND r.source = s.source
                  AND r.native_id = s.native_id AND r.endpoint = s.endpoint
                  AND r.payload = s.payload)
            ORDER BY s._i
            """,
            [before],
        ).fetch_arrow_table()["_i"]
        return raw if len(kept) == raw.num_rows else raw.take(kept)

    def completed(self, source: str, since: datetime | None, until: datetime) -> set[str]:
        """Entities of ``source`` whose history in ``[since, until)`` a backfill stored."""
        rows = self.con.execute(
            """
            SELECT DISTINCT entity FROM backfill_checkpoints
            WHERE source = $source AND status = 'done' AND window_until >= $until
              AND (window_since IS NULL
                   OR ($since::TIMESTAMPTZ IS NOT NULL AND window_since <= $since::TIMESTAMPTZ))
            """,
            {"source": source, "since": since, "until": until},
        ).fetchall()
        return {str(r[0]) for r in rows}

    def listing(
        self, records: Sequence[RawRecord], entity_of: Callable[[str], str]
    ) -> dict[str, bytes]:
        """The listing items the history ``records`` were fetched with, by entity.

        A backfill archives the source's snapshot (its listing) in the same run as the
        history, so a replay finds each entity's item by run and fetch time.
        """
        history = [r for r in records if r.kind == "history"]
        if not history:
            return {}
        entities = sorted({entity_of(e) for e in {r.endpoint for r in history}})
        rows = self.con.execute(
            """
            SELECT native_id, arg_max(payload, fetched_at) FROM raw_records
            WHERE source = $source AND kind = 'snapshot'
              AND list_contains($runs::VARCHAR[], run_id)
              AND list_contains($entities::VARCHAR[], native_id)
              AND fetched_at BETWEEN $lo::TIMESTAMPTZ - INTERVAL 7 DAY AND $hi
            GROUP BY native_id
            """,
            {
                "source": history[0].source,
                "runs": sorted({r.run_id for r in history}),
                "entities": entities,
                "lo": min(r.fetched_at for r in history),
                "hi": max(r.fetched_at for r in history),
            },
        ).fetchall()
        return {str(r[0]): str(r[1]).encode() for r in rows}

    def replace(
        self,
        batches: Sequence[tuple[str, Sequence[Observation] | pa.Table, Sequence[Rejection]]],
        *,
        dry_run: bool = False,
    ) -> Replaced:
        """Make what stored batches produced equal a new outcome of their raw records.

        For a replay after a transform change: each ``(batch_id, observations,
        rejections)`` replaces that batch's observations and rejections, all in one
        transaction, with the same first-stored-wins rule as :meth:`store` (oldest
        batch first, here and against other batches' rows). Every row keeps its
        batch. With ``dry_run`` nothing is written and the result says what would
        change.
        """
        ids = [batch_id for batch_id, _, _ in batches]
        staged_obs = pa.concat_tables(
            _as_table(obs).append_column("batch_id", pa.repeat(pa.scalar(batch_id), len(obs)))
            for batch_id, obs, _ in batches
        )
        rejections = [(batch_id, list(rejected)) for batch_id, _, rejected in batches]
        if dry_run:
            return self._compare(self.con, ids, staged_obs, rejections)

        def replace(con: duckdb.DuckDBPyConnection) -> Replaced:
            result = self._compare(con, ids, staged_obs, rejections)
            dropped = latest.forget(con, ids, staged_obs)
            con.execute("DELETE FROM observations WHERE batch_id IN (SELECT unnest(?))", [ids])
            con.execute("DELETE FROM rejections WHERE batch_id IN (SELECT unnest(?))", [ids])
            self._insert_observations(con, None, staged_obs)
            for batch_id, rejected in rejections:
                self._insert_rejections(con, batch_id, rejected)
            latest.refresh(con, dropped)
            return result

        result = self._committed(replace)
        self.maybe_compact()
        return result

    def reconcile(
        self,
        batch_id: str,
        observations: Sequence[Observation] | pa.Table,
        rejections: Sequence[Rejection],
        raw_ids: Sequence[str],
        *,
        dry_run: bool = False,
    ) -> Replaced:
        """Make the store agree with a new outcome of raw records, key by key.

        For a replay from Kafka, where the store keeps no raw archive and its rows
        are not grouped by raw batch: a stored row whose key the new outcome has is
        replaced if any value differs, new keys are added, and the rejections of
        these raw records are replaced by the new ones (so one that now passes is
        gone, its row stored). One transaction; ``dry_run`` writes nothing.
        """
        staged_obs = _as_table(observations)
        if dry_run:
            return self._reconciled(self.con, staged_obs, rejections, raw_ids, write=False)

        def apply(con: duckdb.DuckDBPyConnection) -> Replaced:
            result = self._reconciled(con, staged_obs, rejections, raw_ids, write=True)
            self._insert_observations(con, batch_id, staged_obs)
            self._insert_rejections(con, batch_id, rejections)
            return result

        result = self._committed(apply)
        self.maybe_compact()
        return result

    def _reconciled(
        self,
        con: duckdb.DuckDBPyConnection,
        staged_obs: pa.Table,
        rejections: Sequence[Rejection],
        raw_ids: Sequence[str],
        *,
        write: bool,
    ) -> Replaced:
        """Count what :meth:`reconcile` changes; with ``write``, delete what it replaces."""
        staged = staged_obs  # noqa: F841 - read by name
        changed = " OR ".join(f"o.{c} IS DISTINCT FROM n.{c}" for c in _VALUE_FIELDS)
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE reconciled AS
            WITH n AS (SELECT DISTINCT ON (source, pool_id, observed_at) * FROM staged)
            SELECT n.source, n.pool_id, n.observed_at,
                   o.pool_id IS NULL AS added, o.pool_id IS NOT NULL AND ({changed}) AS changed
            FROM n LEFT JOIN observations AS o
              ON o.source = n.source AND o.pool_id = n.pool_id AND o.observed_at = n.observed_at
            """
        )
        row = con.execute(
            "SELECT count(*) FILTER (WHERE added), count(*) FILTER (WHERE changed) FROM reconciled"
        ).fetchone()
        ids = list(dict.fromkeys(raw_ids))
        before = con.execute(
            "SELECT count(*) FROM rejections WHERE list_contains(?::VARCHAR[], raw_id)", [ids]
        ).fetchone()
        assert row is not None  # aggregates answer one row
        assert before is not None
        if write:
            con.execute(
                """
                DELETE FROM observations AS o USING reconciled AS r
                WHERE r.changed AND o.source = r.source AND o.pool_id = r.pool_id
                  AND o.observed_at = r.observed_at
                """
            )
            con.execute("DELETE FROM rejections WHERE list_contains(?::VARCHAR[], raw_id)", [ids])
        con.execute("DROP TABLE reconciled")
        return Replaced(
            added=int(row[0]),
            removed=0,
            changed=int(row[1]),
            rejections_before=int(before[0]),
            rejections_after=len({r.raw_id for r in rejections}),
        )

    def _compare(
        self,
        con: duckdb.DuckDBPyConnection,
        batch_ids: list[str],
        staged_obs: pa.Table,
        rejections: Sequence[tuple[str, Sequence[Rejection]]],
    ) -> Replaced:
        added, removed, changed = self._diff(con, batch_ids, staged_obs)
        row = con.execute(
            "SELECT count(*) FROM rejections WHERE batch_id IN (SELECT unnest(?))", [batch_ids]
        ).fetchone()
        return Replaced(
            added=added,
            removed=removed,
            changed=changed,
            rejections_before=int(row[0]) if row else 0,
            rejections_after=sum(len({r.raw_id for r in rejected}) for _, rejected in rejections),
        )

    def _diff(
        self, con: duckdb.DuckDBPyConnection, batch_ids: list[str], staged_obs: pa.Table
    ) -> tuple[int, int, int]:
        """(added, removed, changed) keys between batches' stored rows and new ones."""
        staged = staged_obs  # noqa: F841 - read by name
        changed = " OR ".join(f"o.{c} IS DISTINCT FROM n.{c}" for c in _VALUE_FIELDS)
        bounds = pc.min_max(staged_obs["observed_at"])
        row = con.execute(
            f"""
            WITH o AS (SELECT * FROM observations WHERE batch_id IN (SELECT unnest(?))),
                 n AS (SELECT DISTINCT ON (source, pool_id, observed_at) * FROM staged)
            SELECT
              count(*) FILTER (WHERE o.pool_id IS NULL AND NOT EXISTS (
                  SELECT 1 FROM observations AS x
                  WHERE x.observed_at BETWEEN ? AND ?
                    AND x.source = n.source AND x.pool_id = n.pool_id
                    AND x.observed_at = n.observed_at)),
              count(*) FILTER (WHERE n.pool_id IS NULL),
              count(*) FILTER (WHERE o.pool_id IS NOT NULL AND n.pool_id IS NOT NULL
                               AND ({changed}))
            FROM o FULL OUTER JOIN n
              ON o.source = n.source AND o.pool_id = n.pool_id AND o.observed_at = n.observed_at
            """,
            [batch_ids, bounds["min"].as_py(), bounds["max"].as_py()],
        ).fetchone()
        assert row is not None  # an aggregate always answers one row
        return int(row[0]), int(row[1]), int(row[2])

    def _insert_observations(
        self, con: duckdb.DuckDBPyConnection, batch_id: str | None, staged_obs: pa.Table
    ) -> int:
        """Append the rows whose key is not stored yet (first of each key); their count.

        The rows get ``batch_id``, unless they come with a ``batch_id`` column.
        """
        if not staged_obs.num_rows:
            return 0
        picked = self._new_rows(con, staged_obs)
        new = staged_obs if len(picked) == staged_obs.num_rows else staged_obs.take(picked)
        if "batch_id" not in new.column_names:
            new = new.append_column("batch_id", pa.repeat(batch_id or "", new.num_rows))
        new = new.append_column(
            "stored_at", pa.repeat(pa.scalar(datetime.now(UTC), _TS), new.num_rows)
        )
        if new.num_rows:
            self._add_files(con, "observations", "observed_at", new)
            latest.advance(con, new)
        return int(new.num_rows)

    def _new_rows(self, con: duckdb.DuckDBPyConnection, staged_obs: pa.Table) -> pa.Array:
        """Indices of the rows of ``staged_obs`` to store: the first of each key not stored.

        Only rows inside their pool's stored range (:func:`sinks.latest.unsure`) are
        looked up in the history, within their own time span: a poll or a backfill of
        new pools reads no history at all. The new rows are then taken from the Arrow
        table, not copied through DuckDB.
        """
        keyed = staged_obs.select(["source", "pool_id", "observed_at"]).append_column(
            "_i", pa.array(range(staged_obs.num_rows), pa.int64())
        )
        doubt = latest.unsure(con, keyed)
        stored = pa.table({"_i": pa.array([], pa.int64())})
        if doubt.num_rows:
            bounds = pc.min_max(doubt["observed_at"])
            stored = con.execute(  # noqa: F841 - read by name
                """
                SELECT d._i FROM doubt AS d
                WHERE EXISTS (
                    SELECT 1 FROM observations AS o
                    WHERE o.observed_at BETWEEN ? AND ?
                      AND o.source = d.source AND o.pool_id = d.pool_id
                      AND o.observed_at = d.observed_at)
                """,
                [bounds["min"].as_py(), bounds["max"].as_py()],
            ).fetch_arrow_table()
        return con.execute(
            """
            SELECT min(k._i) AS i FROM keyed AS k ANTI JOIN stored USING (_i)
            GROUP BY k.source, k.pool_id, k.observed_at
            ORDER BY i
            """
        ).fetch_arrow_table()["i"]

    def _insert_rejections(
        self,
        con: duckdb.DuckDBPyConnection,
        batch_id: str | None,
        rejections: Sequence[Rejection],
    ) -> int:
        """Append the rejections whose raw_id is not stored yet; their count."""
        if not rejections:
            return 0
        staged_rej = rejections_table(batch_id, rejections)  # noqa: F841 - read by name
        row = con.execute(
            """
            INSERT INTO rejections
            SELECT DISTINCT ON (raw_id) * FROM staged_rej AS s
            WHERE NOT EXISTS (SELECT 1 FROM rejections AS r WHERE r.raw_id = s.raw_id)
            """
        ).fetchone()
        return int(row[0]) if row else 0

    def batches(
        self,
        sources: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[str]:
        """Stored batches whose raw records match, oldest fetch first (what replay reads)."""
        rows = self.con.execute(
            """
            SELECT r.batch_id FROM raw_records AS r
            WHERE (len(?::VARCHAR[]) = 0 OR list_contains(?::VARCHAR[], r.source))
              AND (?::TIMESTAMPTZ IS NULL OR r.fetched_at >= ?::TIMESTAMPTZ)
              AND (?::TIMESTAMPTZ IS NULL OR r.fetched_at < ?::TIMESTAMPTZ)
              AND r.batch_id IN (SELECT batch_id FROM batches WHERE stage = 'stored')
            GROUP BY r.batch_id ORDER BY min(r.fetched_at), r.batch_id
            """,
            [list(sources), list(sources), since, since, until, until],
        ).fetchall()
        return [str(r[0]) for r in rows]

    def record_fetch(self, report: FetchReport) -> None:
        # Once per run: over Kafka the same report may be delivered again.
        r = report
        finished_at = datetime.now(UTC)
        self._committed(
            lambda con: con.execute(
                """
                INSERT INTO fetches SELECT $1, $2, $3, $4, $5, $6, $7
                WHERE NOT EXISTS (SELECT 1 FROM fetches WHERE source = $1 AND run_id = $2)
                """,
                [r.source, r.run_id, r.started_at, finished_at, r.ok, r.records, r.error],
            )
        )

    def pending(self) -> list[str]:
        """Batches archived but not stored: a kill came between the two transactions."""
        rows = self.con.execute(
            """
            SELECT batch_id FROM batches WHERE stage = 'archived'
            EXCEPT SELECT batch_id FROM batches WHERE stage = 'stored'
            ORDER BY batch_id
            """
        ).fetchall()
        return [str(r[0]) for r in rows]

    def load_raw(self, batch_id: str) -> list[RawRecord]:
        """A batch's archived records, in raw id order.

        Column-wise: a batch of history is thousands of points of few fetches, so
        each distinct fetch time becomes a datetime once.
        """
        table = self.con.execute(
            """
            SELECT source, endpoint, fetched_at, run_id, kind, native_id,
                   encode(payload) AS payload
            FROM raw_records WHERE batch_id = ? ORDER BY raw_id
            """,
            [batch_id],
        ).fetch_arrow_table()
        times = table["fetched_at"].combine_chunks().dictionary_encode()
        moments = [t.astimezone(UTC) for t in times.dictionary.to_pylist()]
        fetched = [moments[i] for i in times.indices.to_pylist()]
        columns = zip(
            *(table[name].to_pylist() for name in ("source", "endpoint", "run_id", "kind")),
            table["native_id"].to_pylist(),
            table["payload"].to_pylist(),
            fetched,
            strict=True,
        )
        return [
            RawRecord(
                source=source,
                endpoint=endpoint,
                fetched_at=at,
                run_id=run_id,
                kind=kind,
                native_id=native_id,
                payload=payload,
            )
            for source, endpoint, run_id, kind, native_id, payload, at in columns
        ]

    def reference(
        self, providers: Mapping[str, Reference], as_of: datetime | None = None
    ) -> dict[str, dict[str, str]]:
        """Each provider's reference data from its raw items archived up to ``as_of``.

        The raw items, as the pipeline learns them during a run (a protocol whose
        TVL is null is rejected as an observation but still names its category): the
        newest version of each item among the day of snapshots up to the provider's
        newest fetch at or before ``as_of`` (None: its newest fetch). So a replay
        reads the reference data that was in force when its records were fetched,
        and only a day of the archive is read. A provider with no snapshot at or
        before ``as_of`` gives its oldest day's instead, the nearest there is.
        """
        found: dict[str, dict[str, str]] = {}
        for name, read in providers.items():
            rows = self.con.execute(
                """
                WITH newest AS (
                    SELECT coalesce(
                        (SELECT max(fetched_at) FROM raw_records WHERE source = $source
                           AND kind = 'snapshot' AND fetched_at <= $as_of),
                        (SELECT min(fetched_at) FROM raw_records WHERE source = $source
                           AND kind = 'snapshot')) AS t)
                SELECT arg_max(payload, fetched_at) FROM raw_records, newest
                WHERE source = $source AND kind = 'snapshot'
                  AND fetched_at > newest.t - INTERVAL 1 DAY AND fetched_at <= newest.t
                GROUP BY native_id
                """,
                {"source": name, "as_of": as_of or datetime.max.replace(tzinfo=UTC)},
            ).fetchall()
            if rows:
                found[name] = read(str(r[0]).encode() for r in rows)
        return found

    def maybe_compact(self) -> None:
        """Compact when a tier has :data:`MERGE_AT` files to merge, or after
        :attr:`compact_every` commits; a look at the catalog (milliseconds) otherwise."""
        if self.compact_every is None:
            return
        due = self._due_tiers()
        if due or self._commits >= self.compact_every:
            self.compact(due)

    def _due_tiers(self) -> list[int]:
        """The tiers whose merge would remove :data:`MERGE_AT` files or more."""
        try:
            row = self.con.execute(_EXCESS_FILES).fetchone()
        except duckdb.Error as exc:  # a catalog that went away: the next commit says so
            log.warning("store_file_count_failed", error=mask(str(exc)))
            return []
        assert row is not None  # aggregates answer one row
        return [tier for tier, excess in zip(TIERS, row, strict=True) if excess >= MERGE_AT]

    def compact(self, tiers: Sequence[int] = ()) -> None:
        """Merge small Parquet files; delete the files no snapshot kept needs.

        The first tier always, and ``tiers`` (from :meth:`_due_tiers`) besides.
        It holds :func:`write_lock` like any transaction: two writers compacting at
        once merged the same files and one commit failed. A compaction that fails
        all the same (a catalog that went away, a clash with a process writing
        without the lock) is logged, not raised: the next one does the work, and
        nothing is lost by merging later.
        """
        self._commits = 0
        try:
            with write_lock(self._store, self.con):
                self._compact(sorted({SMALL_FILE, *tiers}))
        except duckdb.Error as exc:
            self._rollback()
            log.warning("store_compaction_failed", error=mask(str(exc)))

    def _compact(self, tiers: Sequence[int]) -> None:
        # Journal, fetch log, single-point sources and a history commit's months
        # merge in the first tier; merged files in the next ones (see TIERS). As
        # ordinary commits (sinks/merge.py), not DuckLake's merge_adjacent_files,
        # whose commits readers running at that moment saw half done. On one
        # thread: a merge's memory is not held to memory_limit, and one thread halved
        # its peak.
        self.con.execute("SET threads = 1")
        merged = 0
        try:
            for low, tier in BANDS:
                if tier not in tiers:
                    continue
                with self._transaction() as con:
                    merged += merge(
                        con, LAKE, self.table_dir, lambda t: file_name(t, self._tag), tier, low
                    )
        finally:
            self.con.execute("RESET threads")
        cutoff = retention_cutoff(datetime.now(UTC))
        self.con.execute(f"CALL ducklake_expire_snapshots('{LAKE}', older_than => ?)", [cutoff])
        self.con.execute(f"CALL ducklake_cleanup_old_files('{LAKE}', older_than => ?)", [cutoff])
        # Files of a transaction that a kill interrupted are in no snapshot; they go
        # once older than the cut-off, so a file still being written is never touched.
        # Only this store's own (sinks.orphans): never a file it cannot prove it wrote.
        delete_own_orphans(self.con, LAKE, self._tag, cutoff, self._unknown_files)
        log.info("store_compacted", tiers=list(tiers), files_merged=merged)


def retention_cutoff(now: datetime) -> datetime:
    """The ``older_than`` to give DuckLake's expiry and cleanup: :data:`KEEP` or more ago.

    With a SQLite catalog, DuckLake 0.3 (DuckDB 1.4.4) compares these times by UTC
    date only: ``older_than => now() - INTERVAL 1 HOUR`` expired every snapshot of
    the day and deleted files merged away a moment before, under running queries.
    Passing the last microsecond of the day before ``now - KEEP`` keeps everything
    from that day on, whichever way the times are compared.
    """
    day = (now - KEEP).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(microseconds=1)
