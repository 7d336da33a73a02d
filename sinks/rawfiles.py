"""A backfill commit's raw archive, written to Parquet batch by batch as it fills.

A backfill commit gathers several batches before its transaction, and one commit
fills while the one before is written. Kept as Arrow until the transaction, their
raw records were ~36 MiB a commit (2,000 x 1,000 benchmark), held twice. Here each
batch's :func:`sinks.writer.raw_table` is appended to the commit's file, one row
group a batch, as soon as it is transformed (off the store's thread), and the
commit's transaction registers the files with ``ducklake_add_data_files``
(:meth:`sinks.writer.LakeWriter.store_history`). Until then no query sees them; a
commit that never commits (a kill) leaves files named after the store, which
compaction deletes as its own orphans (:mod:`sinks.orphans`).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


class RawFiles:
    """The ``raw_records`` files of one commit: ``name`` in each ``year=/month=`` folder."""

    def __init__(self, table_dir: Path, name: str) -> None:
        self.table_dir = table_dir
        self.name = name
        self.rows = 0
        self._open: dict[int, pq.ParquetWriter] = {}
        self._paths: list[Path] = []

    def write(self, rows: pa.Table) -> None:
        """Append ``rows`` (a ``raw_table``) to the file of each month they span."""
        times = rows["fetched_at"]
        parts = pc.add(pc.multiply(pc.year(times), 100), pc.month(times))
        distinct = pc.unique(parts).to_pylist()
        for key in distinct:
            part = rows if len(distinct) == 1 else rows.filter(pc.equal(parts, key))
            self._writer(key, part.schema).write_table(part)
        self.rows += rows.num_rows

    def _writer(self, key: int, schema: pa.Schema) -> pq.ParquetWriter:
        writer = self._open.get(key)
        if writer is None:
            year, month = divmod(key, 100)
            folder = self.table_dir / f"year={year}" / f"month={month}"
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
        return self.table_dir / "year=*" / "month=*" / f"{self.name}.parquet"

    def read(self) -> pa.Table:
        """The rows written, back from the files (a refetch checks them against the archive)."""
        tables = [pq.ParquetFile(path).read() for path in self.close()]
        return pa.concat_tables(tables) if tables else pa.table({})

    def discard(self) -> None:
        """Delete the files: their commit will not be made."""
        for path in self.close():
            path.unlink(missing_ok=True)
