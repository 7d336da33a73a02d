"""A full disk under the store (ENOSPC writing Parquet): nothing half-stored; a daemon's
writer waits for space, a command's raises."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from structlog.testing import capture_logs

from sinks.lake import Store
from sinks.writer import LakeWriter
from tests.sinks.test_writer import POOLS, pool_records, scalar, transformed


class FullDisk:
    """``pyarrow.parquet.write_table`` failing as on a full disk, until :meth:`free`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = True
        self.failed = 0
        real = pq.write_table

        def write_table(table: Any, where: Any, *args: Any, **kwargs: Any) -> None:
            if self.full:
                self.failed += 1
                Path(where).write_bytes(b"PAR1 cut")  # what a full disk leaves behind
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))
            real(table, where, *args, **kwargs)

        monkeypatch.setattr(pq, "write_table", write_table)

    def free(self) -> None:
        self.full = False


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> FullDisk:
    return FullDisk(monkeypatch)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data")


@pytest.fixture
def daemon_writer(store: Store) -> Iterator[LakeWriter]:
    writer = LakeWriter(store, wait_for_space=True)
    yield writer
    writer.close()


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_command_gets_the_error_and_nothing_is_half_stored(store: Store, disk: FullDisk) -> None:
    writer = LakeWriter(store)
    try:
        records = pool_records(5)
        with pytest.raises(OSError, match="No space left on device") as info:
            writer.archive("b1", records)
        assert info.value.errno == errno.ENOSPC
        assert writer.pending() == []
        assert scalar(writer.con, "SELECT count(*) FROM raw_records") == 0
        disk.free()
        assert writer.archive("b1", records)
        assert writer.pending() == ["b1"]
    finally:
        writer.close()


def test_a_daemon_writer_waits_for_space_then_commits(
    daemon_writer: LakeWriter, disk: FullDisk
) -> None:
    records = pool_records(5)
    observations = transformed(records)
    done: list[object] = []

    def archive_and_store() -> None:
        daemon_writer.archive("b1", records)
        done.append(daemon_writer.store("b1", POOLS, len(records), observations, []))

    with capture_logs() as logs:
        worker = threading.Thread(target=archive_and_store)
        worker.start()
        _wait_for(lambda: disk.failed >= 2)  # it tried again, and again
        assert not done
        disk.free()
        worker.join(timeout=10)
    assert done, "the writer did not resume when space came back"
    events = [e["event"] for e in logs]
    assert events.count("store_disk_full") == 1  # logged once, not at every try
    assert "store_disk_space_back" in events
    full = next(e for e in logs if e["event"] == "store_disk_full")
    assert "No space left on device" in full["error"]
    assert scalar(daemon_writer.con, "SELECT count(*) FROM observations") == 5
    assert daemon_writer.pending() == []


def test_a_wait_for_space_ends_when_the_writer_is_interrupted(
    daemon_writer: LakeWriter, disk: FullDisk
) -> None:
    failed: list[BaseException] = []

    def archive() -> None:
        try:
            daemon_writer.archive("b1", pool_records(5))
        except OSError as exc:
            failed.append(exc)

    worker = threading.Thread(target=archive)
    worker.start()
    _wait_for(lambda: disk.failed >= 1)
    started = time.monotonic()
    daemon_writer.interrupt()  # what a stopping daemon does after its drain timeout
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert time.monotonic() - started < 2
    assert failed
    assert isinstance(failed[0], OSError)
    assert failed[0].errno == errno.ENOSPC
