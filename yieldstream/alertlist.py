"""``yieldstream alerts``: list the store's alerts through the read-only door, and follow.

The reader is :func:`sinks.lake.open_reader` (read-only at the engine level); the
query is :func:`yieldstream.alerts.listing`. ``--follow`` keeps the reader and asks
every ``every_s`` seconds for the alerts the writer opened since the newest one
shown (by ``detected_at``, the writer's clock), until interrupted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Write the alerts (then, with ``follow``, each new one) to ``out`` in ``fmt``.

    Returns when done, or raises ``KeyboardInterrupt`` out of ``sleep`` while following.
    """
    con = open_reader(store)
    try:
        seen = _newest(con)
        # Up to the newest one now: one the writer adds meanwhile is the next poll's.
        text = listing(since, open_only=open_only, seen=(None, seen or _NONE_YET))
        write_results(con, statements(text), fmt, out, note, 0)
        while follow:
            sleep(every_s)
            newest = _newest(con)
            if newest is None or newest == seen:
                continue
            text = listing(since, open_only=open_only, seen=(seen, newest))
            write_results(con, statements(text), fmt, out, _quiet, 0)
            seen = newest
    finally:
        con.close()


_NONE_YET: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _newest(con: duckdb.DuckDBPyConnection) -> datetime | None:
    row = con.execute(NEWEST).fetchone()
    return row[0] if row else None


def _quiet(line: str) -> None:
    """Following, the row counts of each poll are left out of stderr."""
