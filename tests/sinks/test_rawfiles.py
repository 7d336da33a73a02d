"""A backfill commit's raw archive written ahead of its transaction (sinks/rawfiles.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from msgspec.structs import replace

from sinks.lake import LAKE, Store
from sinks.writer import Checkpoint, LakeWriter, raw_table
from tests.sinks.test_writer import pool_records, transformed

POOLS = "defillama-yields"
MARCH = datetime(2026, 3, 31, 23, 59, tzinfo=UTC)


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[LakeWriter]:
    w = LakeWriter(Store(tmp_path / "data"), compact_every=None)
    try:
        yield w
    finally:
        w.close()


def files_on_disk(writer: LakeWriter) -> set[str]:
    folder = writer.table_dir / "raw_records"
    return {str(p.relative_to(folder)) for p in folder.rglob("*.parquet")}


def files_in_catalog(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        f"SELECT f.path FROM __ducklake_metadata_{LAKE}.ducklake_data_file AS f "
        f"JOIN __ducklake_metadata_{LAKE}.ducklake_table AS t USING (table_id) "
        "WHERE f.end_snapshot IS NULL AND t.table_name = 'raw_records'"
    )
    return {str(r[0]) for r in rows.fetchall()}


def done(entity: str) -> Checkpoint:
    return Checkpoint(POOLS, entity, None, MARCH + timedelta(days=30), "done", 1, None, "run")


def test_batches_written_ahead_are_archived_by_the_commit_in_their_month(
    writer: LakeWriter,
) -> None:
    march = pool_records(3, fetched_at=MARCH, prefix="a")
    april = pool_records(2, fetched_at=MARCH + timedelta(minutes=2), prefix="b")
    files = writer.raw_files()
    files.write(raw_table("c1", march))
    files.write(raw_table("c1", march[:1] + april))  # a batch across the month's end
    assert writer.con.execute("SELECT count(*) FROM raw_records").fetchone() == (0,)

    observations = transformed(march + april)
    checkpoints = [done(r.native_id) for r in march + april]
    stored = writer.store_history("c1", POOLS, files, observations, [], checkpoints)
    assert stored.observations == 5
    rows = writer.con.execute(
        "SELECT month(fetched_at), count(*), count(DISTINCT batch_id) FROM raw_records "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert rows == [(3, 4, 1), (4, 2, 1)]
    assert files_on_disk(writer) == files_in_catalog(writer.con)
    assert sorted(p.split("/")[1] for p in files_on_disk(writer)) == ["month=3", "month=4"]


def test_files_of_records_archived_before_are_deleted_not_registered(
    writer: LakeWriter,
) -> None:
    records = pool_records(4, fetched_at=MARCH)
    checkpoints = [done(r.native_id) for r in records]
    first = writer.raw_files()
    first.write(raw_table("c1", records))
    writer.store_history("c1", POOLS, first, transformed(records), [], checkpoints)
    kept = files_on_disk(writer)

    # A refetch of the same entities: the same items, word for word, and one changed.
    again = [*records[:3], pool_records(4, fetched_at=MARCH, prefix="pool")[3]]
    changed = again[3].payload.replace(b'"tvlUsd":', b'"tvlUsd":1', 1)
    again[3] = replace(again[3], payload=changed)
    second = writer.raw_files()
    second.write(raw_table("c2", again))
    writer.store_history("c2", POOLS, second, transformed(again), [], checkpoints)
    assert writer.con.execute(
        "SELECT batch_id, count(*) FROM raw_records GROUP BY ALL ORDER BY ALL"
    ).fetchall() == [("c1", 4), ("c2", 1)]
    # The commit's own file went; a copy holding the changed item is archived.
    assert files_on_disk(writer) == files_in_catalog(writer.con)
    assert len(files_on_disk(writer) - kept) == 1


def test_a_failed_commit_leaves_no_file(
    writer: LakeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = pool_records(2, fetched_at=MARCH)
    files = writer.raw_files()
    files.write(raw_table("c1", records))
    assert files_on_disk(writer)

    def full(*_: object) -> int:
        raise duckdb.IOException("No space left on device")

    monkeypatch.setattr(writer, "_insert_observations", full)  # after the files are added
    with pytest.raises(duckdb.IOException):
        writer.store_history("c1", POOLS, files, transformed(records), [], [done("pool-00000")])
    assert files_on_disk(writer) == set()
    assert writer.con.execute("SELECT count(*) FROM raw_records").fetchone() == (0,)
