"""``yieldstream alerts``: list the store's alerts through the read-only door, and follow.

The reader is :func:`sinks.lake.open_reader` (read-only at the engine level); the
query is :func:`yieldstream.alerts.listing`. ``--follow`` keeps the reader and asks
every ``every_s`` seconds for the alerts the writer opened since the newest one
shown (by ``detected_at``, the writer's clock), until SIGINT (Ctrl-C) or SIGTERM.
Those only set a flag the loop looks at: raised as ``KeyboardInterrupt`` instead, a
signal that came while DuckDB ran a query could be taken by DuckDB's own interrupt
check and lost, and the command would follow on.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import BinaryIO, Final

import duckdb

from sinks.lake import Store, open_reader
from sinks.readonly import statements
from yieldstream.alerts import NEWEST, listing
from yieldstream.sqlout import Format, write_results


def show(
    store: Store,
    *,
    since: datetime | None,
    open_only: bool,
    fmt: Format,
    out: BinaryIO,
    note: Callable[[str], None],
    follow: bool = False,
    every_s: float = 5.0,
) -> None:
    """Write the alerts (then, with ``follow``, each new one) to ``out`` in ``fmt``;
    returns when done, or when a follow is stopped."""
    con = open_reader(store)
    try:
        seen = _newest(con)
        # Up to the newest one now: one the writer adds meanwhile is the next poll's.
        text = listing(since, open_only=open_only, seen=(None, seen or _NONE_YET))
        write_results(con, statements(text), fmt, out, note, 0)
        if not follow:
            return
        with _stopped_by_signals() as stopped:
            while not stopped.wait(every_s):
                newest = _newest(con)
                if newest is None or newest == seen:
                    continue
                text = listing(since, open_only=open_only, seen=(seen, newest))
                write_results(con, statements(text), fmt, out, _quiet, 0)
                seen = newest
    finally:
        con.close()


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[threading.Event]:
    """An event SIGINT and SIGTERM set, while in the block (main thread only)."""
    stopped = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stopped
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stopped.set())
    try:
        yield stopped
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_NONE_YET: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _newest(con: duckdb.DuckDBPyConnection) -> datetime | None:
    row = con.execute(NEWEST).fetchone()
    return row[0] if row else None


def _quiet(line: str) -> None:
    """Following, the row counts of each poll are left out of stderr."""
