"""Merging small Parquet files into bigger ones, as an ordinary commit readers can follow.

DuckLake 0.3's ``ducklake_merge_adjacent_files`` replaces files in place in the
catalog: a reader whose query ran while such a merge committed saw tables with no
rows, or with columns read as NULL (tests/sinks/test_readers.py caught it; a loop
of 1,000-pool polls merged every 8 commits showed it within seconds). Here a merge
is what any other commit is: the rows of the small files are copied into one new
file, the small files' rows are deleted (which ends those files: no delete file)
and the new file is added, in one transaction. A reader sees the snapshot before
it or the one after, never a mixture; older snapshots keep their files until they
expire, so time travel still reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb

# Rows per row group of a merged file. DuckDB's default (122,880) buffered ~140 MiB
# to merge four of a backfill's raw files (~460 bytes a row before compression);
# 32,768 rows buffered ~50 MiB, no slower (measured on a 2M-point store).
ROW_GROUP_ROWS = 32_768


def small_files(
    con: duckdb.DuckDBPyConnection, lake: str, below: int, at_least: int = 0
) -> dict[tuple[str, str], list[tuple[str, int]]]:
    """Active files of ``at_least`` up to ``below`` bytes, by (table, partition folder):
    their (path, bytes), oldest first."""
    rows = con.execute(
        f"""
        SELECT t.table_name, regexp_replace(f.path, '[^/]*$', '') AS folder, f.path,
               f.file_size_bytes
        FROM __ducklake_metadata_{lake}.ducklake_data_file AS f
        JOIN __ducklake_metadata_{lake}.ducklake_table AS t USING (table_id)
        WHERE f.end_snapshot IS NULL AND t.end_snapshot IS NULL
          AND f.file_size_bytes >= ? AND f.file_size_bytes < ?
        ORDER BY t.table_name, folder, f.begin_snapshot, f.data_file_id
        """,
        [at_least, below],
    ).fetchall()
    found: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for table, folder, path, size in rows:
        found.setdefault((str(table), str(folder)), []).append((str(path), int(size)))
    return found


def groups(files: list[tuple[str, int]], target: int) -> list[list[str]]:
    """Consecutive files packed into groups of up to ``target`` bytes, two or more each."""
    packed: list[list[str]] = []
    current: list[str] = []
    size = 0
    for path, nbytes in files:
        if current and size + nbytes > target:
            packed.append(current)
            current, size = [], 0
        current.append(path)
        size += nbytes
    packed.append(current)
    return [group for group in packed if len(group) > 1]


def merge(
    con: duckdb.DuckDBPyConnection,
    lake: str,
    schema_dir: Path,
    name: Callable[[str], str],
    target: int,
    at_least: int = 0,
) -> int:
    """Merge the files of ``at_least`` up to ``target`` bytes of every table, in the
    open transaction.

    ``schema_dir`` is the folder of the tables' folders; ``name(table)`` names a new
    file (the writer's own names, so that an interrupted merge's file is an orphan
    it may delete). The number of files merged away.
    """
    merged = 0
    for (table, folder), files in small_files(con, lake, target, at_least).items():
        for group in groups(files, target):
            paths = [str(schema_dir / table / path) for path in group]
            out = schema_dir / table / folder / f"{name(table)}.parquet"
            out.parent.mkdir(parents=True, exist_ok=True)
            copied = con.execute(
                f"COPY (SELECT * FROM {table} WHERE filename IN (SELECT unnest($paths))) "
                f"TO $out (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_ROWS})",
                {"paths": paths, "out": str(out)},
            ).fetchone()
            deleted = con.execute(
                f"DELETE FROM {table} WHERE filename IN (SELECT unnest($paths))",
                {"paths": paths},
            ).fetchone()
            if copied is None or deleted is None or copied[0] != deleted[0]:
                raise duckdb.InvalidInputException(
                    f"merge of {len(paths)} files of {table}: copied {copied}, deleted {deleted}"
                )
            merged += len(group)
            if not copied[0]:  # every row of them deleted already (a replay)
                out.unlink()
                continue
            con.execute(
                f"CALL ducklake_add_data_files('{lake}', '{table}', $out, "
                "hive_partitioning => $hive)",
                {"out": str(out), "hive": bool(folder)},
            )
    return merged
