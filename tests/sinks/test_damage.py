"""A store protects its history: a lost or damaged catalog is refused, never replaced,
and compaction deletes only the files it wrote."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from sinks.lake import LAKE, Store, open_reader
from sinks.orphans import file_name, store_tag
from sinks.writer import LakeWriter
from tests.sinks.test_writer import POOLS, pool_records, scalar, transformed
from yieldstream.errors import ConfigError


def _filled(data_dir: Path, batches: int = 3) -> Store:
    """A store with ``batches`` archived and stored batches, one per month."""
    store = Store(data_dir)
    writer = LakeWriter(store, compact_every=None)
    try:
        for month in range(1, batches + 1):
            moment = datetime(2026, month, 3, 9, 15, tzinfo=UTC)
            records = pool_records(5, fetched_at=moment, prefix=f"m{month}")
            writer.archive(f"b{month}", records)
            observations = transformed(records)
            writer.store(f"b{month}", POOLS, len(records), observations, [])
    finally:
        writer.close()
    return store


def _parquet(store: Store) -> list[Path]:
    return sorted(store.lake.rglob("*.parquet"))


def _age(path: Path, days: int = 3) -> None:
    then = (datetime.now(UTC) - timedelta(days=days)).timestamp()
    os.utime(path, (then, then))


@pytest.mark.parametrize("damage", ["missing", "empty"])
def test_a_lost_catalog_beside_data_files_is_refused_not_replaced(
    tmp_path: Path, damage: str
) -> None:
    store = _filled(tmp_path / "data")
    catalog = store.sqlite_file
    assert catalog is not None
    files = _parquet(store)
    assert len(files) >= 6
    for extra in catalog.parent.glob("catalog.sqlite*"):
        extra.unlink()
    if damage == "empty":
        catalog.write_bytes(b"")

    for opening in (lambda: LakeWriter(store), lambda: open_reader(store), lambda: store.exists):
        with pytest.raises(ConfigError) as info:
            opening()
        message = str(info.value)
        assert "\n" not in message
        assert f"the catalog {catalog} is {damage}" in message
        assert "restore the catalog from a backup" in message
        assert f"move {store.lake} away to start a new store" in message

    assert catalog.exists() == (damage == "empty")  # no new catalog was created
    assert _parquet(store) == files


def test_a_catalog_of_garbage_bytes_is_a_one_line_error(tmp_path: Path) -> None:
    store = _filled(tmp_path / "data")
    catalog = store.sqlite_file
    assert catalog is not None
    for extra in catalog.parent.glob("catalog.sqlite-*"):
        extra.unlink()
    catalog.write_bytes(os.urandom(4096))
    for opening in (lambda: LakeWriter(store), lambda: open_reader(store), lambda: store.exists):
        with pytest.raises(ConfigError, match=r"is not a SQLite database \(damaged\?\); restore"):
            opening()


def test_a_new_store_starts_where_lake_holds_no_data_file(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    (store.lake / "main").mkdir(parents=True)
    assert store.sqlite_file is not None
    store.sqlite_file.write_bytes(b"")  # touched, never written
    writer = LakeWriter(store)
    writer.close()
    assert store.exists


def test_compaction_deletes_its_own_orphans_and_keeps_every_unknown_file(
    tmp_path: Path,
) -> None:
    """The defect: a new catalog over an old lake/ deleted the old store's every file."""
    other = _filled(tmp_path / "other")
    store = Store(tmp_path / "data")
    writer = LakeWriter(store, compact_every=None)
    try:
        writer.store("b1", POOLS, 4, transformed(pool_records(4, prefix="mine")), [])
        # Another store's files (an older version's names, DuckLake's own), and one by hand.
        strangers = []
        for path in _parquet(other):
            target = store.lake / path.relative_to(other.lake)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
            strangers.append(target)
        by_hand = store.lake / "main" / "observations" / "notes.parquet"
        by_hand.write_bytes(b"PAR1 mine, not the store's")
        strangers.append(by_hand)
        # This store's own orphan: a batch file whose transaction never committed.
        folder = store.lake / "main" / "observations" / "year=2026"
        orphan = folder / f"{file_name('observations', store_tag(writer.con, LAKE))}.parquet"
        orphan.write_bytes(b"PAR1 unfinished")
        for path in [*strangers, orphan]:
            _age(path)

        with capture_logs() as logs:
            writer.compact()
            writer.compact()

        assert not orphan.exists()
        assert all(path.exists() for path in strangers)
        kept = [e for e in logs if e["event"] == "store_unknown_files_kept"]
        assert len(kept) == 1, logs  # logged once, not at every compaction
        assert kept[0]["files"] == len(strangers)
        assert scalar(writer.con, "SELECT count(*) FROM observations") == 4
    finally:
        writer.close()


def test_an_empty_postgres_catalog_beside_data_files_is_refused(
    tmp_path: Path, postgres_catalog: str
) -> None:
    """A PostgreSQL catalog dropped or pointed elsewhere: its lake/ is not taken over."""
    data_dir = tmp_path / "data"
    _filled(data_dir)  # a SQLite store's files; the PostgreSQL database holds no store
    store = Store(data_dir, postgres_catalog)
    files = _parquet(store)
    for opening in (lambda: LakeWriter(store), lambda: open_reader(store), lambda: store.exists):
        with pytest.raises(ConfigError) as info:
            opening()
        message = str(info.value)
        assert message.startswith("the catalog at postgresql://"), message
        assert "holds no store, but " in message
        assert ":***@" in message
        assert "move " in message
    assert _parquet(store) == files
    assert not Store(tmp_path / "elsewhere", postgres_catalog).exists  # still no store
