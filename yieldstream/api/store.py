"""The API's door to the store: a small pool of read-only connections, off the event loop.

Each connection is :func:`sinks.lake.open_reader`'s (read-only at the engine level,
so the API cannot write whatever it runs). DuckDB's calls block, so a query runs
on a worker thread (``anyio.to_thread``), one query per connection at a time, with
at most ``size`` of them at once; a request waiting for a connection waits on the
event loop, never on a thread. A query still running after ``timeout_s`` is
interrupted (``con.interrupt()``): its request is answered 503 and the connection
goes back to the pool for the next one, so one slow query cannot stall the others.

Connections are opened on first use, not at start: the API starts (and answers
503) before a daemon has created the store, and serves it once it is there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import duckdb
import structlog

from sinks.lake import Store, damaged, open_reader, store_failure
from yieldstream.errors import ConfigError

log = structlog.get_logger(__name__)
T = TypeVar("T")


class StoreUnavailable(Exception):
    """The store cannot answer now (missing, damaged, or too slow): a 503."""


@dataclass(frozen=True, slots=True)
class Rows:
    """A query's answer: column names and rows, in order."""

    columns: list[str]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


Opener = Callable[[], duckdb.DuckDBPyConnection]


class Readers:
    """At most ``size`` read-only connections, each running one query at a time."""

    def __init__(self, opener: Opener, *, size: int, timeout_s: float) -> None:
        self._opener = opener
        self._timeout_s = timeout_s
        self._slots = anyio.Semaphore(size)
        self._threads = anyio.CapacityLimiter(size)
        self._idle: list[duckdb.DuckDBPyConnection] = []

    @classmethod
    def over(cls, store: Store, *, size: int, timeout_s: float) -> Readers:
        return cls(lambda: open_reader(store), size=size, timeout_s=timeout_s)

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> Rows:
        """The rows of ``sql`` with its ``?`` bound to ``params``; StoreUnavailable
        when the store cannot be read or the query ran past its deadline."""
        return await self.run(lambda con: _fetch(con, sql, params))

    async def run(self, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """``work`` on a connection of the pool, on a worker thread, within the deadline."""
        async with self._slots:
            con = self._idle.pop() if self._idle else None
            try:
                if con is None:
                    con = await anyio.to_thread.run_sync(self._open, limiter=self._threads)
                timer = asyncio.get_running_loop().call_later(self._timeout_s, con.interrupt)
                try:
                    return await anyio.to_thread.run_sync(work, con, limiter=self._threads)
                finally:
                    timer.cancel()
            except duckdb.InterruptException:
                log.warning("api_query_interrupted", timeout_s=self._timeout_s)
                raise StoreUnavailable(
                    f"the query ran longer than {self._timeout_s:g} s and was stopped; "
                    "narrow it (filters, a shorter time range) or try again"
                ) from None
            except duckdb.Error as exc:
                if isinstance(exc, duckdb.FatalException) and con is not None:
                    con.close()  # DuckDB invalidated it: the next query opens another
                    con = None
                if not _store_fault(exc):
                    raise
                log.warning("api_store_failed", error=store_failure(exc))
                raise StoreUnavailable(store_failure(exc)) from None
            finally:
                if con is not None:
                    self._idle.append(con)

    def _open(self) -> duckdb.DuckDBPyConnection:
        try:
            return self._opener()
        except ConfigError as exc:  # no store yet, or a lost catalog: one line says which
            raise StoreUnavailable(str(exc)) from None
        except duckdb.Error as exc:
            raise StoreUnavailable(store_failure(exc)) from None

    def close(self) -> None:
        """Close the idle connections (at shutdown, when no query runs)."""
        while self._idle:
            self._idle.pop().close()


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object]) -> Rows:
    result = con.execute(sql, list(params))
    columns = [d[0] for d in result.description or []]
    return Rows(columns, result.fetchall())


def _store_fault(exc: duckdb.Error) -> bool:
    """Whether ``exc`` is the store failing (a file, the catalog), not the query being wrong."""
    faults = duckdb.IOException | duckdb.HTTPException | duckdb.FatalException
    return isinstance(exc, faults) or damaged(exc) is not None
