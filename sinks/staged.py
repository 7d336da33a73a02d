"""A backfill commit's files, written batch by batch before its transaction.

A backfill commit gathers several batches before its transaction, and one commit
fills while the one before is written. Kept as Arrow until the transaction, their
raw records and observations were ~70 MiB a commit (2,000 x 1,000 benchmark), held
twice. Here each batch is appended to the commit's files, one row group a batch,
as soon as it is transformed (off the store's thread), and the commit's
transaction registers them with ``ducklake_add_data_files``
(:meth:`sinks.writer.LakeWriter.store_history`). Until then no query sees them; a
commit that never commits (a kill) leaves files named after the store, which
compaction deletes as its own orphans (:mod:`sinks.orphans`).

Observations are written before the idempotency check, which usually finds them
all new (a first backfill of its pools). :class:`StagedObservations` keeps what the
check and ``latest_observations`` need without reading the files back: the keys,
and each pool's newest row. When some rows are stored already the writer reads the
files back, stores the new rows as any commit does and deletes them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sinks.tables import TS

KEY = ["source", "pool_id", "observed_at"]


class StagedFiles:
    """The files of one table that one commit registers: ``name`` in each partition
    folder (``year=``, or ``year=/month=`` with ``by_month``) of ``time_column``."""

    def __init__(self, table_dir: Path, name: str, time_column: str, *, by_month: bool) -> None:
        self.table_dir = table_dir
        self.name = name
        self.time_column = time_column
        self.by_month = by_month
        self.rows = 0
        self._open: dict[int, pq.ParquetWriter] = {}
        self._paths: list[Path] = []

    def write(self, rows: pa.Table) -> None:
        """Append ``rows`` to the file of each partition they span."""
        if not rows.num_rows:
            return
        times = rows[self.time_column]
        parts = pc.year(times)
        if self.by_month:
            parts = pc.add(pc.multiply(parts, 100), pc.month(times))
        distinct = pc.unique(parts).to_pylist()
        for key in distinct:
            part = rows if len(distinct) == 1 else rows.filter(pc.equal(parts, key))
            self._writer(key, part.schema).write_table(part)
        self.rows += rows.num_rows

    def _writer(self, key: int, schema: pa.Schema) -> pq.ParquetWriter:
        writer = self._open.get(key)
        if writer is None:
            year, month = divmod(key, 100) if self.by_month else (key, 0)
            folder = self.table_dir / f"year={year}"
            if self.by_month:
                folder = folder / f"month={month}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{self.name}.parquet"
            writer = pq.ParquetWriter(path, schema, compression="zstd", compression_level=1)
            self._open[key] = writer
            self._paths.append(path)
        return writer

    def close(self) -> list[Path]:
        """Finish the files (again: a no-op); their paths."""
        for writer in self._open.values():
            writer.close()
        self._open.clear()
        return list(self._paths)

    def glob(self) -> Path:
        """A pattern naming exactly these files, for ``ducklake_add_data_files``."""
        folders = ("year=*", "month=*") if self.by_month else ("year=*",)
        return self.table_dir.joinpath(*folders, f"{self.name}.parquet")

    def read(self) -> pa.Table:
        """The rows written, back from the files."""
        return pa.concat_tables([pq.ParquetFile(path).read() for path in self.close()])

    def discard(self) -> None:
        """Delete the files: no commit registers them."""
        for path in self.close():
            path.unlink(missing_ok=True)


class StagedObservations(StagedFiles):
    """Observations of one commit as ``observations`` rows (with ``batch_id`` and
    ``stored_at``, the time they were written), with their keys and each pool's
    newest row (:attr:`keys`, :attr:`newest`)."""

    def __init__(self, table_dir: Path, name: str, batch_id: str) -> None:
        super().__init__(table_dir, name, "observed_at", by_month=False)
        self.batch_id = batch_id
        self._keys: list[pa.Table] = []
        self._newest: list[pa.Table] = []

    def write(self, rows: pa.Table) -> None:
        """Append observations (``sinks.tables.OBS_SCHEMA``)."""
        if not rows.num_rows:
            return
        n = rows.num_rows
        rows = rows.append_column("batch_id", pa.repeat(pa.scalar(self.batch_id), n))
        rows = rows.append_column("stored_at", pa.repeat(pa.scalar(datetime.now(UTC), TS), n))
        super().write(rows)
        self._keys.append(rows.select(KEY))
        self._newest.append(newest(rows))

    @property
    def keys(self) -> pa.Table:
        """The key columns of every row written, in order."""
        if not self._keys:
            return pa.table({k: pa.array([], t) for k, t in zip(KEY, _KEY_TYPES, strict=True)})
        return pa.concat_tables(self._keys)

    @property
    def newest(self) -> pa.Table:
        """Each pool's newest row per batch written, with the pool's oldest time in that
        batch as ``first_observed_at`` (:func:`sinks.latest.advance` takes the newest)."""
        return pa.concat_tables(self._newest)


_KEY_TYPES = (pa.string(), pa.string(), TS)


def newest(rows: pa.Table) -> pa.Table:
    """Each pool's newest row of ``rows`` and its oldest time (``first_observed_at``).

    A key twice in ``rows`` gives its pool two rows here; the writer then stores
    the commit the other way (it is not all new), without these.
    """
    keyed = rows.select(KEY).append_column("_i", pa.array(range(rows.num_rows), pa.int64()))
    bounds = keyed.group_by(KEY[:2]).aggregate([("observed_at", "max"), ("observed_at", "min")])
    found = keyed.join(
        bounds, keys=KEY, right_keys=[*KEY[:2], "observed_at_max"], join_type="inner"
    )
    return rows.take(found["_i"]).append_column("first_observed_at", found["observed_at_min"])
