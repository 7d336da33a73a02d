"""The DuckLake catalog in PostgreSQL, and several writers on one store (SQLite or PostgreSQL).

Every test runs against a real PostgreSQL server (the ``postgres_url`` fixture: a
throwaway cluster, or ``YIELDSTREAM_TEST_POSTGRES``), each in a database of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import duckdb
import pytest

import yieldstream
from sinks.lake import Postgres, Store, mask, open_reader, open_writer
from sinks.writer import LakeWriter, Stored
from tests.conftest import postgres_execute
from tests.sinks import lido_observations
from yieldstream.contracts import Observation, RawRecord
from yieldstream.errors import ConfigError

MOMENT = datetime(2026, 3, 12, 12, tzinfo=UTC)


def observations(prefix: str, n: int) -> list[Observation]:
    return lido_observations(prefix, n, MOMENT)


def raw_records(prefix: str, n: int) -> list[RawRecord]:
    return [
        RawRecord(
            source="lido",
            endpoint="/apr",
            fetched_at=MOMENT,
            run_id="test",
            kind="snapshot",
            native_id=f"{prefix}-{i}",
            payload=b'{"apr": 3.1}',
        )
        for i in range(n)
    ]


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    assert row is not None
    return row[0]


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{password}@{host}"))


def test_a_postgres_catalog_holds_the_store(tmp_path: Path, postgres_catalog: str) -> None:
    data_dir = tmp_path / "data"
    store = Store(data_dir, postgres_catalog)
    password = urlsplit(postgres_catalog).password
    assert password
    assert password not in repr(store)
    assert not store.exists

    writer = LakeWriter(store)
    try:
        assert writer.archive("b1", raw_records("p", 40))
        assert writer.store("b1", "lido", 40, observations("p", 40), []) == Stored(40, 0, 0)
        # Idempotent: the same observations again (a redelivered batch) add nothing.
        assert writer.store("b2", "lido", 40, observations("p", 40), []) == Stored(0, 40, 0)
        assert writer.pending() == []
        writer.compact()
        databases = writer.con.execute("SELECT * FROM duckdb_databases()").fetchall()
        assert password not in str(databases)
    finally:
        writer.close()

    assert store.exists
    assert not (data_dir / "catalog.sqlite").exists()
    assert list((data_dir / "lake" / "main" / "observations").rglob("*.parquet"))
    reader = open_reader(store)
    try:
        assert scalar(reader, "SELECT count(*) FROM observations") == 40
        assert scalar(reader, "SELECT count(*) FROM latest_yields") == 40
        assert scalar(reader, "SELECT count(*) FROM raw_records") == 40
        # The catalog is PostgreSQL's: DuckLake's tables are in that database.
        assert scalar(reader, "SELECT count(*) FROM __ducklake_metadata_lake.ducklake_snapshot")
        with pytest.raises(duckdb.Error, match=r"read-only|read only"):
            reader.execute("DELETE FROM observations")
    finally:
        reader.close()
    analyst = yieldstream.connect(data_dir, postgres_catalog)
    try:
        assert scalar(analyst, "SELECT count(DISTINCT pool_id) FROM yield_history") == 40
    finally:
        analyst.close()
    # Another host, where the shared data volume is mounted at another path.
    elsewhere = data_dir.rename(tmp_path / "mounted-elsewhere")
    analyst = yieldstream.connect(elsewhere, postgres_catalog)
    try:
        assert scalar(analyst, "SELECT count(*) FROM observations") == 40
    finally:
        analyst.close()


# Two writers, each in its own process, on one fresh store: created, migrated and
# written to by both at once. Each stores its own keys (as with Kafka partitions
# split between sink processes) and compacts every few commits.
WRITER = textwrap.dedent("""
    import json, sys, time
    from datetime import UTC, datetime
    from pathlib import Path

    import structlog

    from sinks.lake import Store
    from sinks.writer import LakeWriter
    from yieldstream.contracts import RawRecord, make_observation

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    data_dir, catalog, name = sys.argv[1], sys.argv[2] or None, sys.argv[3]
    batches, rows = int(sys.argv[4]), int(sys.argv[5])
    print("ready", flush=True)
    sys.stdin.readline()  # every writer is ready: go, all at the same moment
    started = time.monotonic()
    writer = LakeWriter(Store(Path(data_dir), catalog), compact_every=4)
    opened = time.monotonic() - started
    added = 0
    for b in range(batches):
        batch_id = f"{name}-{b:03d}"
        moment = datetime(2026, 1 + b % 3, 3 + b % 20, 9, tzinfo=UTC)
        writer.archive(batch_id, [
            RawRecord(source="lido", endpoint="/apr", fetched_at=moment, run_id=name,
                      kind="snapshot", native_id=f"{batch_id}-{i}", payload=b"{}")
            for i in range(rows)
        ])
        stored = writer.store(batch_id, "lido", rows, [
            make_observation({
                "source": "lido", "pool_id": f"{batch_id}-{i}", "observed_at": moment,
                "protocol": "lido", "chain": "Ethereum", "symbol": "stETH",
                "product_id": "lido:ethereum:steth",
                "strategy": "staking", "venue": "defi", "apy_pct": 3.1,
            })
            for i in range(rows)
        ], [])
        added += stored.observations
    writer.close()
    print(json.dumps({"added": added, "opened": opened, "seconds": time.monotonic() - started}))
""")
WRITERS, BATCHES, ROWS = 2, 30, 200


@pytest.mark.timeout(90)
@pytest.mark.parametrize("catalog", ["sqlite", "postgres"])
def test_writers_started_together_store_every_key_exactly_once(
    tmp_path: Path, catalog: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_catalog") if catalog == "postgres" else ""
    data_dir = tmp_path / "data"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(data_dir), url, f"w{n}", str(BATCHES), str(ROWS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for n in range(WRITERS)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n", proc.communicate()[1]
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outcomes = [proc.communicate(timeout=80) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()

    for proc, (_out, err) in zip(procs, outcomes, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
    results = [json.loads(out.splitlines()[-1]) for out, _err in outcomes]
    logs = "".join(err for _out, err in outcomes)
    print(
        f"{catalog}: {WRITERS} writers x {BATCHES} batches x {ROWS} rows; "
        + "; ".join(f"opened {r['opened']:.2f}s, done {r['seconds']:.2f}s" for r in results)
        + f"; commits run again {logs.count('stamina.retry_scheduled')}, compactions "
        f"{logs.count('store_compacted')} done, {logs.count('store_compaction_failed')} failed"
    )
    assert [r["added"] for r in results] == [BATCHES * ROWS] * WRITERS

    expected = WRITERS * BATCHES * ROWS
    reader = open_reader(Store(data_dir, url or None))
    try:
        keys = "source, pool_id, observed_at"
        assert scalar(reader, "SELECT count(*) FROM observations") == expected
        assert scalar(reader, f"SELECT count(DISTINCT ({keys})) FROM observations") == expected
        assert scalar(reader, "SELECT count(*) FROM raw_records") == expected
        assert scalar(reader, "SELECT count(DISTINCT raw_id) FROM raw_records") == expected
        journal = reader.execute(
            "SELECT stage, count(*), count(DISTINCT batch_id) FROM batches GROUP BY stage"
        ).fetchall()
        assert sorted(journal) == [
            ("archived", WRITERS * BATCHES, WRITERS * BATCHES),
            ("stored", WRITERS * BATCHES, WRITERS * BATCHES),
        ]
        # Each migration ran once, though both writers found the store new.
        migrations = reader.execute(
            "SELECT version, count(*) FROM schema_migrations GROUP BY version ORDER BY version"
        ).fetchall()
        assert migrations == [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1), (7, 1)]
        assert scalar(reader, "SELECT count(*) FROM latest_yields") == expected
    finally:
        reader.close()


@pytest.mark.parametrize("catalog", ["sqlite", "postgres"])
def test_a_commit_that_lost_a_race_runs_again(
    tmp_path: Path, catalog: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process writing without the write lock commits in the middle of a store.

    The commit fails (DuckDB 1.4.4, DuckLake 0.3): "database is locked" with SQLite,
    whose snapshot the transaction began with is stale; a snapshot-id clash with
    PostgreSQL, which DuckLake is not left to retry. The whole transaction runs again.
    """
    url = request.getfixturevalue("postgres_catalog") if catalog == "postgres" else None
    store = Store(tmp_path / "data", url)
    writer = LakeWriter(store, compact_every=None)
    rival = open_writer(store)  # another writer's connection (no lock of this process)
    journal = writer._journal
    runs: list[str] = []

    def journal_after_a_rival_commit(
        con: duckdb.DuckDBPyConnection, batch_id: str, stage: str, *args: Any
    ) -> None:
        runs.append(batch_id)
        if len(runs) == 1:
            rival.execute("CREATE TABLE rival_a (x INTEGER)")
            rival.execute("CREATE TABLE rival_b (x INTEGER)")
        journal(con, batch_id, stage, *args)

    monkeypatch.setattr(writer, "_journal", journal_after_a_rival_commit)
    try:
        assert writer.store("b1", "lido", 30, observations("p", 30), []) == Stored(30, 0, 0)
        assert runs == ["b1", "b1"]
        assert scalar(writer.con, "SELECT count(*) FROM observations") == 30
        assert scalar(writer.con, "SELECT count(*) FROM batches") == 1
    finally:
        rival.close()
        writer.close()


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path

    from sinks.lake import Store, write_lock
    from sinks.writer import LakeWriter

    store = Store(Path(sys.argv[1]), sys.argv[2] or None)
    writer = LakeWriter(store)
    with write_lock(store, writer.con):
        print("locked", flush=True)
        time.sleep(120)
""")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("catalog", ["sqlite", "postgres"])
def test_a_writer_killed_holding_the_write_lock_leaves_the_store_writable(
    tmp_path: Path, catalog: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_catalog") if catalog == "postgres" else ""
    store = Store(tmp_path / "data", url or None)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store.data_dir), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    opened: list[LakeWriter] = []
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        waiting = threading.Thread(target=lambda: opened.append(LakeWriter(store)))
        waiting.start()
        waiting.join(1.0)
        assert waiting.is_alive()  # the other writer waits for the lock
        holder.kill()
        killed = time.monotonic()
        waiting.join(20)
        assert opened, "the lock outlived the process holding it"
        print(f"{catalog}: the next writer got the lock {time.monotonic() - killed:.2f}s after")
        assert opened[0].store("b1", "lido", 5, observations("p", 5), []) == Stored(5, 0, 0)
    finally:
        holder.kill()
        holder.communicate()
        for writer in opened:
            writer.close()


def test_an_unreachable_catalog_is_a_one_line_config_error(
    tmp_path: Path, postgres_url: str
) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    password = "Pa55-not-shown"
    real = urlsplit(postgres_url).password
    cases = {
        f"postgresql://yieldstream:{password}@127.0.0.1:{closed}/store": "connection refused",
        f"postgres://yieldstream:{password}@nohost.invalid/store": "could not translate host",
        with_password(postgres_url, password): "password authentication failed",
        with_password(
            urlunsplit(urlsplit(postgres_url)._replace(path="/no_such_db")), real or ""
        ): "does not exist",
        f"mysql://yieldstream:{password}@127.0.0.1/store": (
            "use sqlite:PATH or postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
        ),
    }
    if real is None:  # a server that trusts its clients (YIELDSTREAM_TEST_POSTGRES)
        del cases[with_password(postgres_url, password)]
    opens: dict[str, Callable[[str], object]] = {
        "writer": lambda url: LakeWriter(Store(tmp_path / "data", url)),
        "reader": lambda url: open_reader(Store(tmp_path / "data", url)),
        "connect": lambda url: yieldstream.connect(tmp_path / "data", url),
        "exists": lambda url: Store(tmp_path / "data", url).exists,
    }
    for url, reason in cases.items():
        for how, open_store in opens.items():
            with pytest.raises(ConfigError) as caught:
                open_store(url)
            message = str(caught.value)
            print(f"{how}: {message}")
            assert reason in message, (how, message)
            assert "\n" not in message, (how, message)
            assert password not in message, (how, message)
            assert not real or real not in message, (how, message)
            assert ":***@" in message, (how, message)
            if not url.startswith("mysql"):
                assert message.startswith("cannot open the DuckLake catalog at "), message
                assert message.endswith("; check --catalog / YIELDSTREAM_CATALOG"), message


def test_an_empty_postgres_database_holds_no_store(tmp_path: Path, postgres_catalog: str) -> None:
    store = Store(tmp_path / "data", postgres_catalog)

    assert not store.exists
    with pytest.raises(ConfigError, match=r"^no store in the catalog at postgresql://\S+:\*\*\*@"):
        open_reader(store)
    assert not store.exists  # the reader created nothing


def test_a_postgres_url_becomes_libpq_settings_and_a_password() -> None:
    url = "postgresql://app%40x:p%40ss:w0rd@db.example:6432/yields?sslmode=require"
    assert Postgres.parse(url) == Postgres(
        conninfo="host=db.example port=6432 dbname=yields user=app@x sslmode=require",
        password="p@ss:w0rd",
    )
    assert Postgres.parse("postgres://[::1]/my%20db") == Postgres(
        conninfo="host=::1 dbname='my db'", password=None
    )
    assert mask(url) == "postgresql://app%40x:***@db.example:6432/yields?sslmode=require"
    assert mask("host=h password='a b' user=u") == "host=h password=*** user=u"
    assert repr(Store(Path("d"), url)) == (
        "Store(data_dir=PosixPath('d'), "
        "catalog='postgresql://app%40x:***@db.example:6432/yields?sslmode=require')"
    )


def test_the_catalog_database_can_be_dropped_after_the_writers_close(
    tmp_path: Path, postgres_url: str
) -> None:
    """No connection outlives a writer or reader: the test fixture relies on it."""
    name = f"test_close_{int(time.time() * 1000)}"
    postgres_execute(postgres_url, f"CREATE DATABASE {name}")
    url = urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    writer = LakeWriter(Store(tmp_path / "data", url))
    writer.store("b1", "lido", 1, observations("p", 1), [])
    writer.compact()
    writer.close()
    open_reader(Store(tmp_path / "data", url)).close()
    postgres_execute(postgres_url, f"DROP DATABASE {name}")  # no FORCE: fails if still in use
