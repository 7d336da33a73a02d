"""A full disk under the store: wait for space, or say so in one line.

Writing a Parquet file or committing the catalog fails with ENOSPC ("No space
left on device", SQLite's "database or disk is full"). The transaction is rolled
back, so nothing half-written is visible; its partial file is an orphan that
compaction deletes (:mod:`sinks.orphans`). A daemon then waits: it logs once,
retries the same transaction with a growing pause until space returns, and
meanwhile its queues fill, so it stops fetching; what is archived but not stored
stays in the journal. :meth:`SpaceWait.interrupt` (a stop) ends the wait with the
error. A command (backfill, replay) does not wait: the error is its one line.
"""

from __future__ import annotations

import errno
import shutil
import threading
from pathlib import Path

import duckdb
import structlog

log = structlog.get_logger(__name__)

_FULL = ("no space left on device", "database or disk is full", "disk quota exceeded")
# What SQLite says when it cannot grow its WAL or shared memory on a full disk, among
# other failures: a full disk only if the data directory's file system is (nearly) full.
_IO = "disk i/o error"
NEARLY_FULL = 16 * 1024 * 1024


def disk_full(exc: BaseException, data_dir: Path | None = None) -> bool:
    """Whether ``exc`` says the store's disk is full."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if not isinstance(exc, duckdb.Error):
        return False
    text = str(exc).lower()
    if any(full in text for full in _FULL):
        return True
    return data_dir is not None and _IO in text and _free(data_dir) < NEARLY_FULL


def _free(path: Path) -> int:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return NEARLY_FULL


def full_message(exc: BaseException, where: str) -> str:
    """One line for a full disk: what failed and what to do."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    reason = next((line.strip() for line in reason.splitlines() if line.strip()), "disk full")
    return (
        f"the store's disk is full ({reason}) in {where}; free some space and run it "
        "again: nothing stored was lost"
    )


class SpaceWait:
    """Waits between retries of a transaction that met a full disk."""

    def __init__(self, where: str, *, first_s: float = 1.0, most_s: float = 30.0) -> None:
        self.where = where
        self.first_s = first_s
        self.most_s = most_s
        self._pause: float | None = None  # None: the disk was not full at the last try
        self._interrupted = threading.Event()

    def interrupt(self) -> None:
        """End a wait in progress (and any later one): the error is raised instead."""
        self._interrupted.set()

    def wait(self, exc: BaseException) -> None:
        """Pause before the next try; re-raise ``exc`` once interrupted."""
        if self._pause is None:
            self._pause = self.first_s
            log.error(
                "store_disk_full",
                error=full_message(exc, self.where),
                note="fetching stops while the store waits for space; it resumes by itself",
            )
        if self._interrupted.wait(self._pause):
            raise exc
        self._pause = min(self._pause * 2, self.most_s)

    def succeeded(self) -> None:
        """The transaction committed: if it had waited for space, say that space is back."""
        if self._pause is not None:
            self._pause = None
            log.info("store_disk_space_back", data_dir=self.where)
