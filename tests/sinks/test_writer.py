"""LakeWriter on the real DuckDB/DuckLake engine: raw first, idempotent, atomic, compact."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import orjson
import pytest

from sinks.lake import LAKE, Store, open_reader
from sinks.orphans import file_name, store_tag
from sinks.writer import KEEP, MERGE_AT, LakeWriter, Stored, retention_cutoff
from tests.sinks import FIXTURES, recorded_pools
from transforms import Context, apply, defillama_protocols, defillama_yields
from yieldstream.contracts import Observation, RawRecord, Rejection

POOLS = "defillama-yields"
PROTOCOLS = "defillama-protocols"
FETCHED_AT = datetime(2026, 3, 12, 12, 34, 56, 789012, tzinfo=UTC)
KEY = "source, pool_id, observed_at"


def pool_records(
    n: int, *, fetched_at: datetime = FETCHED_AT, prefix: str = "pool"
) -> list[RawRecord]:
    """``n`` recorded real /pools items, each under its own pool id."""
    template = recorded_pools()
    records = []
    for i in range(n):
        pool_id = f"{prefix}-{i:05d}"
        item = {**template[i % len(template)], "pool": pool_id}
        records.append(
            RawRecord(
                source=POOLS,
                endpoint="/pools",
                fetched_at=fetched_at,
                run_id="test",
                kind="snapshot",
                native_id=pool_id,
                payload=orjson.dumps(item),
            )
        )
    return records


def transformed(
    records: Sequence[RawRecord],
    transform: Any = defillama_yields.transform,
    ctx: Context | None = None,
) -> list[Observation]:
    observations: list[Observation] = []
    for record in records:
        result = apply(transform, record, ctx or Context())
        assert isinstance(result, list), result
        observations.extend(result)
    return observations


def rejected(native_id: str, payload: bytes = b'{"pool": "no chain, no project"}') -> Rejection:
    record = RawRecord(
        source=POOLS,
        endpoint="/pools",
        fetched_at=FETCHED_AT,
        run_id="test",
        kind="snapshot",
        native_id=native_id,
        payload=payload,
    )
    result = apply(defillama_yields.transform, record, Context())
    assert isinstance(result, Rejection)
    return result


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> Any:
    row = con.execute(sql, list(params)).fetchone()
    assert row is not None
    return row[0]


def duplicate_keys(con: duckdb.DuckDBPyConnection) -> int:
    return int(
        scalar(
            con,
            f"""
        SELECT count(*) FROM (SELECT {KEY} FROM observations GROUP BY ALL HAVING count(*) > 1)
    """,
        )
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data")


@pytest.fixture
def writer(store: Store) -> Iterator[LakeWriter]:
    writer = LakeWriter(store, compact_every=None)  # compaction only when a test asks
    yield writer
    writer.close()


def test_archive_then_store(writer: LakeWriter) -> None:
    records = pool_records(7)

    assert writer.archive("b1", records)
    assert not writer.archive("b1", records)  # archived already: nothing added
    assert writer.pending() == ["b1"]
    stored = writer.store("b1", POOLS, len(records), transformed(records), [])

    assert stored == Stored(observations=7, duplicates=0, rejections=0)
    assert writer.pending() == []
    assert scalar(writer.con, "SELECT count(*) FROM raw_records") == 7
    assert scalar(writer.con, "SELECT count(*) FROM observations") == 7
    journal = writer.con.execute(
        "SELECT stage, source, records, observations FROM batches ORDER BY journaled_at"
    ).fetchall()
    assert journal == [("archived", POOLS, 7, None), ("stored", POOLS, 7, 7)]


def test_storing_the_same_observations_again_adds_nothing(writer: LakeWriter) -> None:
    observations = transformed(pool_records(50))

    first = writer.store("b1", POOLS, 50, observations, [])
    again = writer.store("b2", POOLS, 50, observations, [])
    overlapping = writer.store(
        "b3", POOLS, 50, observations[25:] + transformed(pool_records(25, prefix="new")), []
    )

    assert first == Stored(50, 0, 0)
    assert again == Stored(0, 50, 0)
    assert overlapping == Stored(25, 25, 0)
    assert scalar(writer.con, "SELECT count(*) FROM observations") == 75
    assert duplicate_keys(writer.con) == 0


def test_a_stored_key_keeps_its_first_values(writer: LakeWriter) -> None:
    [first] = transformed(pool_records(1))
    changed = msgspec.structs.replace(first, apy_pct=50.0, tvl_usd=1.0)
    assert first.apy_pct != 50.0

    writer.store("b1", POOLS, 1, [first], [])
    assert writer.store("b2", POOLS, 1, [changed], []) == Stored(0, 1, 0)

    assert writer.con.execute("SELECT apy_pct FROM observations").fetchall() == [(first.apy_pct,)]


def test_duplicates_within_one_batch_are_stored_once(writer: LakeWriter) -> None:
    early = pool_records(10)
    # The same pools fetched again later in the same hour: DefiLlama keys by fetch hour.
    late = pool_records(10, fetched_at=FETCHED_AT.replace(minute=59, second=59))
    observations = transformed(early) + transformed(late[:4])

    stored = writer.store("b1", POOLS, 14, observations, [])

    assert stored == Stored(observations=10, duplicates=4, rejections=0)
    assert scalar(writer.con, "SELECT count(*) FROM observations") == 10
    assert duplicate_keys(writer.con) == 0


def test_rejections_are_idempotent_on_raw_id(writer: LakeWriter) -> None:
    one, two = rejected("bad-1"), rejected("bad-2", payload=b"\xff not json")
    assert {one.stage, two.stage} == {"decode"}

    first = writer.store("b1", POOLS, 3, [], [one, two, one])
    again = writer.store("b2", POOLS, 2, [], [two, one])

    assert first == Stored(observations=0, duplicates=0, rejections=2)
    assert again == Stored(0, 0, 0)
    rows = writer.con.execute(
        "SELECT raw_id, payload, payload_sha256, reason FROM rejections ORDER BY native_id"
    ).fetchall()
    assert rows == [(r.raw_id, r.payload, r.payload_sha256, r.reason) for r in (one, two)]


def test_pending_lists_archived_batches_and_load_raw_returns_them_unchanged(
    store: Store,
) -> None:
    odd = RawRecord(
        source=POOLS,
        endpoint="/pools",
        fetched_at=FETCHED_AT,
        run_id="r1",
        kind="snapshot",
        native_id="odd",
        # Bytes exactly as upstream sent them: spacing, escapes, non-ASCII, big numbers.
        payload=(
            '{"pool":"odd",  "symbol":"stETH\u2013\u00dc \U0001f999 \\u0000 \\\\x41", '
            '"tvlUsd": 1.50e3, "apy": 123456789012345678901234567890}'
        ).encode(),
    )
    batches = {
        "b1": [*pool_records(3, prefix="one"), odd],
        "b2": pool_records(4, prefix="two"),
        "b3": pool_records(2, prefix="three", fetched_at=FETCHED_AT + timedelta(days=40)),
    }
    writer = LakeWriter(store)
    for batch_id, records in batches.items():
        writer.archive(batch_id, records)
    writer.store("b2", POOLS, 4, transformed(batches["b2"]), [])
    writer.close()

    restarted = LakeWriter(store)
    try:
        assert restarted.pending() == ["b1", "b3"]
        for batch_id in ("b1", "b3"):
            loaded = restarted.load_raw(batch_id)
            assert loaded == sorted(batches[batch_id], key=lambda r: r.raw_id)
            assert all(r.fetched_at.utcoffset() == timedelta(0) for r in loaded)
        [loaded_odd] = [r for r in restarted.load_raw("b1") if r.native_id == "odd"]
        assert loaded_odd.payload == odd.payload
        assert loaded_odd.fetched_at == FETCHED_AT  # to the microsecond
        assert loaded_odd.raw_id == odd.raw_id
    finally:
        restarted.close()


def test_a_batch_is_stored_whole_or_not_at_all(
    store: Store, writer: LakeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = pool_records(30)
    observations = transformed(records)
    rejection = rejected("bad-1")
    writer.archive("b1", records)
    journal = writer._journal
    seen_inside: list[int] = []

    def die_before_journaling(
        con: duckdb.DuckDBPyConnection, batch_id: str, stage: str, *args: Any
    ) -> None:
        if stage == "stored":
            # The inserts ran: the failure comes in the middle of the transaction.
            seen_inside.append(scalar(con, "SELECT count(*) FROM observations"))
            raise RuntimeError("killed mid-transaction")
        journal(con, batch_id, stage, *args)

    monkeypatch.setattr(writer, "_journal", die_before_journaling)
    with pytest.raises(RuntimeError, match="mid-transaction"):
        writer.store("b1", POOLS, 30, observations, [rejection])

    assert seen_inside == [30]
    assert scalar(writer.con, "SELECT count(*) FROM observations") == 0
    assert scalar(writer.con, "SELECT count(*) FROM rejections") == 0
    reader = open_reader(store)
    try:
        assert scalar(reader, "SELECT count(*) FROM observations") == 0
        assert scalar(reader, "SELECT count(*) FROM rejections") == 0
    finally:
        reader.close()
    assert writer.pending() == ["b1"]

    monkeypatch.undo()  # the restart: the batch is stored from its archive
    assert writer.store("b1", POOLS, 30, observations, [rejection]) == Stored(30, 0, 1)
    assert writer.pending() == []


def test_reference_data_comes_from_the_archived_provider_items_of_its_time(
    writer: LakeWriter,
) -> None:
    rows = orjson.loads(
        (FIXTURES / PROTOCOLS / "protocols-rows-onchain-analytics-first6.json").read_bytes()
    )

    def protocol_records(fetched_at: datetime, **changed: dict[str, Any]) -> list[RawRecord]:
        items = [{**row, **changed.get(row["slug"], {})} for row in rows]
        items += [
            {"slug": slug, "name": slug, **fields}
            for slug, fields in changed.items()
            if slug not in {row["slug"] for row in rows}
        ]
        return [
            RawRecord(
                source=PROTOCOLS,
                endpoint="/protocols",
                fetched_at=fetched_at,
                run_id="test",
                kind="snapshot",
                native_id=item["slug"],
                payload=orjson.dumps(item),
            )
            for item in items
        ]

    providers = {PROTOCOLS: defillama_protocols.reference}
    assert writer.reference(providers) == {}
    writer.archive("old", protocol_records(FETCHED_AT - timedelta(days=3), gone={"category": "X"}))
    first = protocol_records(FETCHED_AT, aave={"category": "Lending", "tvl": None})
    [aave] = [r for r in first if r.native_id == "aave"]
    # No TVL: rejected as an observation, yet its category classifies its pools.
    assert isinstance(apply(defillama_protocols.transform, aave, Context()), Rejection)
    writer.archive("p1", first)
    writer.archive(
        "p2", protocol_records(FETCHED_AT + timedelta(hours=1), lido={"category": "Restaking"})
    )
    writer.archive("y1", pool_records(3))  # pools name a project, not a category

    expected = {row["slug"]: row["category"] for row in rows if row.get("category")}
    newest = {**expected, "aave": "Lending", "lido": "Restaking"}
    assert writer.reference(providers) == {PROTOCOLS: newest}
    # As of an earlier time: what the archive held then (versioned by fetch time).
    assert writer.reference(providers, FETCHED_AT + timedelta(minutes=1)) == {
        PROTOCOLS: {**expected, "aave": "Lending"}
    }
    assert writer.reference(providers, FETCHED_AT - timedelta(days=2)) == {
        PROTOCOLS: {**expected, "gone": "X"}
    }
    # Before anything was archived: the oldest there is, the nearest in time.
    assert writer.reference(providers, FETCHED_AT - timedelta(days=30)) == {
        PROTOCOLS: {**expected, "gone": "X"}
    }


def _observations_at(month: int, n: int, prefix: str) -> list[Observation]:
    moment = datetime(2026, month, 3, 9, 15, tzinfo=UTC)
    return transformed(pool_records(n, fetched_at=moment, prefix=prefix))


def _active_files(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(f"SELECT data_file FROM ducklake_list_files('{LAKE}', 'observations')")
    return [str(r[0]) for r in rows.fetchall()]


def _active_paths(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Active observation files, relative to the table's folder."""
    rows = con.execute(
        f"SELECT f.path FROM __ducklake_metadata_{LAKE}.ducklake_data_file AS f "
        f"JOIN __ducklake_metadata_{LAKE}.ducklake_table AS t USING (table_id) "
        "WHERE f.end_snapshot IS NULL AND t.table_name = 'observations'"
    )
    return {str(r[0]) for r in rows.fetchall()}


def _files_on_disk(store: Store) -> set[Path]:
    """Observation files under the data path.

    (Not a word with the catalog through Python's sqlite3: closing its file in this
    process would drop the locks DuckDB's SQLite holds on it, POSIX locks being per
    process, and a reader's snapshot with them.)
    """
    lake = store.data_dir / "lake"
    return {p.relative_to(lake) for p in (lake / "main" / "observations").rglob("*.parquet")}


# Exact and independent of row order (float sums are not): counts and hashes.
SUMMARY = f"""
    SELECT count(*), count(DISTINCT ({KEY})),
           bit_xor(hash({KEY}, apy_pct, tvl_usd, symbol, underlying_tokens, reward_tokens)),
           (SELECT count(*) FROM latest_yields),
           (SELECT bit_xor(hash({KEY}, apy_change_pct)) FROM yield_history),
           list(DISTINCT month(observed_at) ORDER BY month(observed_at))
    FROM observations
"""


def test_compaction_merges_many_small_commits(store: Store, writer: LakeWriter) -> None:
    commits, rows = 100, 50
    batches = [_observations_at(1 + i % 3, rows, f"c{i:03d}") for i in range(commits)]
    halfway = 0
    for i, observations in enumerate(batches):
        writer.store(f"b{i}", POOLS, len(observations), observations, [])
        if i == commits // 2 - 1:
            halfway = scalar(writer.con, f"SELECT id FROM {LAKE}.current_snapshot()")
    before = writer.con.execute(SUMMARY).fetchone()
    files_before = len(_active_files(writer.con))
    reader = open_reader(store)
    reader.execute("BEGIN")  # a reader in the middle of a transaction, at this snapshot,
    assert scalar(reader, "SELECT count(*) FROM batches") == commits  # no file read yet

    writer.compact()

    files_after = len(_active_files(writer.con))
    print(f"observation files: {files_before} before compaction, {files_after} after")
    assert files_before >= commits
    assert files_after <= files_before // 10
    present = _files_on_disk(store)
    active = {Path("main", "observations", p) for p in _active_paths(writer.con)}
    # Merged away, but kept on disk for the snapshots (and queries) still reading them.
    assert active < present
    assert len(present) == files_before + files_after
    assert writer.con.execute(SUMMARY).fetchone() == before
    # The reader's snapshot reads its files now: none was deleted under it.
    assert reader.execute(SUMMARY).fetchone() == before
    reader.execute("COMMIT")
    assert reader.execute(SUMMARY).fetchone() == before
    reader.close()
    # Recent snapshots are kept: time travel still works.
    at_halfway = f"SELECT count(*) FROM observations AT (VERSION => {halfway})"
    assert scalar(writer.con, at_halfway) == commits // 2 * rows
    # Still idempotent over the merged files.
    assert writer.store("again", POOLS, rows, batches[7], []) == Stored(0, rows, 0)
    # Once the snapshots that read them expire, the merged-away files go.
    writer.con.execute(f"CALL ducklake_expire_snapshots('{LAKE}', older_than => now())")
    writer.con.execute(f"CALL ducklake_cleanup_old_files('{LAKE}', cleanup_all => true)")
    present = _files_on_disk(store)
    assert present == {Path("main", "observations", p) for p in _active_paths(writer.con)}


def test_retention_cutoff_keeps_the_whole_day_of_now_minus_keep() -> None:
    for now in (
        datetime(2026, 3, 12, 0, 30, tzinfo=UTC),
        datetime(2026, 3, 12, 23, 59, tzinfo=UTC),
    ):
        kept_from = (now - KEEP).replace(hour=0, minute=0, second=0, microsecond=0)
        assert retention_cutoff(now) == kept_from - timedelta(microseconds=1)


def test_observations_land_in_year_partitions(store: Store, writer: LakeWriter) -> None:
    moments = [datetime(year, 6, 1, tzinfo=UTC) for year in (2024, 2025, 2026)]
    observations = [
        obs
        for moment in moments
        for obs in transformed(pool_records(20, fetched_at=moment, prefix=f"y{moment.year}"))
    ]
    writer.store("b1", POOLS, len(observations), observations, [])

    files = _active_files(writer.con)
    assert len(files) == 3  # a file a year, however many months the batch spans
    for file in files:
        year = int(Path(file).parent.name.removeprefix("year="))
        years = writer.con.execute(
            "SELECT DISTINCT year(observed_at) FROM read_parquet(?)", [file]
        ).fetchall()
        assert years == [(year,)], file
    folders = {p.parent.relative_to(store.data_dir / "lake") for p in map(Path, files)}
    assert folders == {Path("main/observations") / f"year={y}" for y in (2024, 2025, 2026)}


def test_compaction_deletes_old_orphaned_files_only(store: Store, writer: LakeWriter) -> None:
    """A kill between writing a batch file and committing it leaves an orphan file."""
    writer.store("b1", POOLS, 4, _observations_at(1, 4, "kept"), [])
    folder = store.data_dir / "lake" / "main" / "observations" / "year=2026"
    tag = store_tag(writer.con, LAKE)  # the writer's own files: others are never deleted
    old = folder / f"{file_name('observations', tag)}.parquet"  # killed days ago
    fresh = folder / f"{file_name('observations', tag)}.parquet"  # being written
    for orphan in (old, fresh):
        orphan.write_bytes(b"PAR1 unfinished")
    days_ago = (datetime.now(UTC) - timedelta(days=3)).timestamp()
    os.utime(old, (days_ago, days_ago))

    writer.compact()

    assert not old.exists()
    assert fresh.exists()  # may belong to a transaction still running
    assert scalar(writer.con, "SELECT count(*) FROM observations") == 4


@pytest.mark.parametrize("catalog", ["sqlite", "postgresql"])
def test_file_counts_not_commit_counts_call_for_compaction(
    tmp_path: Path, catalog: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_catalog") if catalog == "postgresql" else None
    store = Store(tmp_path / "data", url)
    writer = LakeWriter(store)  # the default: no commit count reached here
    try:
        counts = []
        for i in range(3 * MERGE_AT):
            observations = _observations_at(1, 5, f"f{i:03d}")
            writer.store(f"b{i}", POOLS, len(observations), observations, [])
            counts.append(len(_active_files(writer.con)))
        # No compaction while few files gathered (each commit adds one here) ...
        assert counts[:4] == [1, 2, 3, 4], counts
        # ... and one each time a merge would remove MERGE_AT: they never pile up.
        assert max(counts) <= MERGE_AT, counts
        assert any(after < before for before, after in itertools.pairwise(counts)), counts
        assert writer._due_tiers() == []
        assert scalar(writer.con, "SELECT count(*) FROM observations") == 3 * MERGE_AT * 5
    finally:
        writer.close()
