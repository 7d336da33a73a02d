"""A backfill commit's files written ahead of its transaction (sinks/staged.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from msgspec.structs import replace

from sinks.lake import LAKE, Store
from sinks.tables import observations_table
from sinks.writer import Checkpoint, LakeWriter, raw_table
from tests.sinks import lido_observations
from tests.sinks.test_latest import COMPUTED, KEPT
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


def files_on_disk(writer: LakeWriter, table: str = "raw_records") -> set[str]:
    folder = writer.table_dir / table
    return {str(p.relative_to(folder)) for p in folder.rglob("*.parquet")}


def files_in_catalog(con: duckdb.DuckDBPyConnection, table: str = "raw_records") -> set[str]:
    rows = con.execute(
        f"SELECT f.path FROM __ducklake_metadata_{LAKE}.ducklake_data_file AS f "
        f"JOIN __ducklake_metadata_{LAKE}.ducklake_table AS t USING (table_id) "
        "WHERE f.end_snapshot IS NULL AND t.table_name = ?",
        [table],
    )
    return {str(r[0]) for r in rows.fetchall()}


def done(entity: str) -> Checkpoint:
    return Checkpoint(POOLS, entity, None, MARCH + timedelta(days=30), "done", 1, None, "run")


def test_batches_written_ahead_are_archived_by_the_commit_in_their_month(
    writer: LakeWriter,
) -> None:
    march = pool_records(3, fetched_at=MARCH, prefix="a")
    april = pool_records(2, fetched_at=MARCH + timedelta(minutes=2), prefix="b")
    files = writer.staged_raw()
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
    first = writer.staged_raw()
    first.write(raw_table("c1", records))
    writer.store_history("c1", POOLS, first, transformed(records), [], checkpoints)
    kept = files_on_disk(writer)

    # A refetch of the same entities: the same items, word for word, and one changed.
    again = [*records[:3], pool_records(4, fetched_at=MARCH, prefix="pool")[3]]
    changed = again[3].payload.replace(b'"tvlUsd":', b'"tvlUsd":1', 1)
    again[3] = replace(again[3], payload=changed)
    second = writer.staged_raw()
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
    raw, observations = writer.staged_raw(), writer.staged_observations("c1")
    raw.write(raw_table("c1", records))
    observations.write(observations_table(transformed(records)))
    assert files_on_disk(writer)
    assert files_on_disk(writer, "observations")

    def full(*_: object) -> int:
        raise duckdb.IOException("No space left on device")

    monkeypatch.setattr(writer, "_insert_rejections", full)  # after the files are added
    with pytest.raises(duckdb.IOException):
        writer.store_history("c1", POOLS, raw, observations, [], [done("pool-00000")])
    assert files_on_disk(writer) == files_on_disk(writer, "observations") == set()
    assert writer.con.execute("SELECT count(*) FROM raw_records").fetchone() == (0,)
    assert writer.con.execute("SELECT count(*) FROM latest_observations").fetchone() == (0,)


def lido_rows(hours: range, pools: int = 3) -> pa.Table:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    return observations_table(
        [o for h in hours for o in lido_observations("p", pools, start + timedelta(hours=h))]
    )


def test_new_observations_written_ahead_are_registered_as_they_are(
    writer: LakeWriter,
) -> None:
    staged = writer.staged_observations("c1")
    staged.write(lido_rows(range(5, 10)))
    staged.write(lido_rows(range(0, 5), pools=4))  # older hours, one more pool
    assert staged.newest.num_rows == 3 + 4  # each pool's newest row of each batch
    stored = writer.store_history("c1", "lido", None, staged, [], [])
    assert (stored.observations, stored.duplicates) == (15 + 20, 0)
    assert files_on_disk(writer, "observations") == files_in_catalog(writer.con, "observations")
    assert writer.con.execute(KEPT).fetchall() == writer.con.execute(COMPUTED).fetchall()
    assert writer.con.execute(
        "SELECT count(*), count(DISTINCT batch_id), min(batch_id) FROM observations"
    ).fetchone() == (35, 1, "c1")


def test_observations_stored_before_are_left_out_and_the_files_deleted(
    writer: LakeWriter,
) -> None:
    writer.store_history("c1", "lido", None, lido_rows(range(0, 3)), [], [])
    before = files_on_disk(writer, "observations")
    staged = writer.staged_observations("c2")
    staged.write(lido_rows(range(2, 6)))  # hour 2 is stored already
    stored = writer.store_history("c2", "lido", None, staged, [], [])
    assert (stored.observations, stored.duplicates) == (9, 3)
    assert files_on_disk(writer, "observations") == files_in_catalog(writer.con, "observations")
    assert len(files_on_disk(writer, "observations") - before) == 1  # a copy of the new rows
    assert writer.con.execute(KEPT).fetchall() == writer.con.execute(COMPUTED).fetchall()
    assert writer.con.execute(
        "SELECT count(*), count(DISTINCT (source, pool_id, observed_at)) FROM observations"
    ).fetchone() == (18, 18)
