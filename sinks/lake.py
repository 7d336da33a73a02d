"""Opening the DuckLake store: extensions offline, catalog, schema migrations, views.

The store is DuckLake: a catalog database plus Parquet files under
``<data dir>/lake/``. The catalog is SQLite (``<data dir>/catalog.sqlite`` by
default) or PostgreSQL (``postgresql://...``), which lets writers on several hosts
share one store over a shared data volume. Unlike a plain DuckDB file, several
processes can open it at once: writers keep writing while analysts attach it
read-only.

Two things about the SQLite catalog make that work in practice (measured with
DuckDB 1.4.4, where a wait for a SQLite lock lasts a whole second):

* it runs in WAL mode, so readers never block the writer's commits ("database is
  locked" in the daemon while an analyst's transaction was open) and commits never
  block readers (queries waited 1 s per commit they met);
* the writer keeps one idle SQLite connection open (:class:`CatalogHold`). DuckDB
  opens and closes a SQLite connection per catalog transaction; whenever the last
  one closed, SQLite checkpointed and deleted the WAL under an exclusive lock, and
  every reader querying at that moment waited 1 s. The idle connection lives in a
  small child process, never in the writer's own: DuckDB links its own copy of
  SQLite, and two copies in one process break SQLite's POSIX locks (closing a file
  in one drops the other's locks). With the connection in the writer's process, a
  writer's last commits now and then vanished from the catalog after a checkpoint.

Several writers may share one store; :func:`write_lock` lets one at a time
create, migrate or change it (and says what failed without it).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from urllib.parse import parse_qsl, unquote

import duckdb

from sinks.readonly import lock_down
from sinks.upgrades import STEPS
from yieldstream.errors import ConfigError

LAKE = "lake"
SQL = files("sinks") / "sql"
SUPPORTED = "sqlite:PATH or postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
FIX = "check --catalog / YIELDSTREAM_CATALOG"
# The DuckDB secret holding a PostgreSQL catalog's password (see _password_secret).
_SECRET = "yieldstream_catalog"
# The catalog database attached as plain PostgreSQL, for advisory locks.
_LOCKS = "yieldstream_locks"


@dataclass(frozen=True, slots=True)
class Postgres:
    """A PostgreSQL catalog URL taken apart for libpq, the password kept aside."""

    conninfo: str  # libpq ``key=value`` form, without the password
    password: str | None

    @classmethod
    def parse(cls, url: str) -> Postgres:
        """Read ``postgresql://[user[:password]@][host][:port][,...][/dbname][?param=value&...]``.

        DuckLake takes ``postgres:<libpq conninfo>``, and libpq would take the URL
        itself as conninfo. But then the password shows in ``duckdb_databases()``
        and in DuckDB's error messages; kept in a DuckDB secret it shows nowhere, and
        libpq merges a secret's ``password=...`` only with key=value settings.
        """
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in ("postgresql", "postgres"):
            raise ConfigError(f"unsupported catalog {mask(url)!r}; use {SUPPORTED}")
        cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        netloc, tail = rest[:cut], rest[cut:]
        userinfo, at, hostspec = netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        path, _, query = tail.partition("?")
        settings: dict[str, str] = {}
        hosts, ports = [], []
        for part in filter(None, hostspec.split(",")):
            host, port = _host_port(part)
            hosts.append(host)
            ports.append(port)
        if any(hosts):
            settings["host"] = ",".join(hosts)
        if any(ports):
            settings["port"] = ",".join(ports)
        if path.strip("/"):
            settings["dbname"] = unquote(path.lstrip("/"))
        if user:
            settings["user"] = unquote(user)
        settings.update(parse_qsl(query, keep_blank_values=True))
        secret = settings.pop("password", None)
        if colon and at:
            secret = unquote(password)
        conninfo = " ".join(f"{key}={_conninfo_value(value)}" for key, value in settings.items())
        return cls(conninfo=conninfo, password=secret or None)


def _host_port(part: str) -> tuple[str, str]:
    """``host``, ``host:port``, ``[v6]:port`` or ``:port`` as (host, port), either may be ''."""
    if part.startswith("["):
        host, _, port = part[1:].partition("]")
        return unquote(host), port.removeprefix(":")
    host, _, port = part.partition(":")
    return unquote(host), port


def _conninfo_value(value: str) -> str:
    """A value as libpq's key=value syntax wants it: quoted unless plain."""
    if value and not any(c in value for c in " '\\\t\n"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# Up to the last "@" of the word: a password may hold a (wrongly unescaped) "@".
_PASSWORD_IN_URL = re.compile(r"(://[^/?@:\s]*:)\S*@")
_PASSWORD_PARAM = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)", re.IGNORECASE)


def mask(text: str, *secrets: str | None) -> str:
    """``text`` with every password it may hold replaced by ``***``: safe to log or show."""
    text = _PASSWORD_IN_URL.sub(r"\1***@", text)
    text = _PASSWORD_PARAM.sub(r"\1***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


@dataclass(frozen=True, slots=True)
class Store:
    """Where the store lives: its data directory and catalog.

    The catalog is a SQLite file (the default, ``<data dir>/catalog.sqlite``, or
    ``sqlite:PATH``) or a PostgreSQL database (``postgresql://...`` or
    ``postgres://...``); the Parquet files are under ``<data dir>/lake/`` either way.
    The repr never shows a password.
    """

    data_dir: Path
    catalog: str | None = None  # DuckLake catalog; None: SQLite file in data_dir

    def __repr__(self) -> str:
        catalog = None if self.catalog is None else mask(self.catalog)
        return f"Store(data_dir={self.data_dir!r}, catalog={catalog!r})"

    @property
    def postgres(self) -> Postgres | None:
        """The PostgreSQL catalog, or None for a SQLite one."""
        if self.catalog is None or self.catalog.startswith("sqlite:"):
            return None
        if self.catalog.startswith(("postgresql://", "postgres://")):
            return Postgres.parse(self.catalog)
        raise ConfigError(f"unsupported catalog {mask(self.catalog)!r}; use {SUPPORTED}")

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite file holding the catalog; None when the catalog is in PostgreSQL."""
        if self.catalog is None:
            return self.data_dir / "catalog.sqlite"
        if self.postgres is None:
            return Path(self.catalog.removeprefix("sqlite:"))
        return None

    @property
    def catalog_uri(self) -> str:
        """The catalog as DuckLake's ATTACH takes it: ``sqlite:PATH`` or ``postgres:CONNINFO``.

        The PostgreSQL conninfo holds no password (see :meth:`Postgres.parse`).
        """
        postgres = self.postgres
        return f"sqlite:{self.sqlite_file}" if postgres is None else f"postgres:{postgres.conninfo}"

    @property
    def where(self) -> str:
        """The store for messages: its data directory, or its catalog with no password."""
        return str(self.data_dir) if self.catalog is None else mask(self.catalog)

    @property
    def lake(self) -> Path:
        """The directory of the store's Parquet files."""
        return self.data_dir / "lake"

    @property
    def exists(self) -> bool:
        """Whether a store was created here: the SQLite file, or DuckLake's tables in PostgreSQL.

        For PostgreSQL this asks the server (one connection); an unreachable server is
        a :class:`ConfigError`. So is a catalog that is missing, empty or damaged
        while ``lake/`` holds data files (see :func:`check_catalog`).
        """
        sqlite_file = self.sqlite_file
        if sqlite_file is not None:
            check_catalog(self)
            return sqlite_file.is_file() and sqlite_file.stat().st_size > 0
        try:
            _attach(_duckdb(self), self, read_only=True).close()
        except _NoStore:
            check_catalog(self, found=False)
            return False
        return True


# The first 16 bytes of every SQLite database file.
_SQLITE_HEADER = b"SQLite format 3\x00"
RESTORE = "restore it from a backup"


def _data_file(store: Store) -> Path | None:
    """A Parquet file under the store's ``lake/``, if there is one."""
    return next(store.lake.rglob("*.parquet"), None) if store.lake.is_dir() else None


def check_catalog(store: Store, *, found: bool | None = None) -> None:
    """Refuse a catalog that is missing, empty or damaged beside an existing ``lake/``.

    A SQLite catalog must be a SQLite file, and may be absent or empty only while
    ``lake/`` holds no Parquet file: a new catalog over old data files would hold
    none of them, and its compaction would see them as strangers. ``found``: for a
    PostgreSQL catalog, whether it holds a store (the caller asked the server).
    A :class:`ConfigError` of one line says which path and how to restore.
    """
    sqlite_file = store.sqlite_file
    if sqlite_file is None:
        what = None if found is not False else f"the catalog at {store.where} holds no store"
    else:
        try:
            with sqlite_file.open("rb") as catalog:
                header = catalog.read(len(_SQLITE_HEADER))
        except FileNotFoundError:
            what = f"the catalog {sqlite_file} is missing"
        except OSError as exc:
            raise ConfigError(
                f"cannot read the catalog {sqlite_file} ({exc.strerror or exc}); "
                f"fix its permissions, or {RESTORE}"
            ) from None
        else:
            if header == _SQLITE_HEADER:
                return
            if header:
                raise ConfigError(
                    f"the catalog {sqlite_file} is not a SQLite database (damaged?); "
                    f"{RESTORE} (the data files in {store.lake} need it)"
                )
            what = f"the catalog {sqlite_file} is empty"
    if what is None:
        return
    data_file = _data_file(store)
    if data_file is not None:
        raise ConfigError(
            f"{what}, but {store.lake} holds the data files of a store ({data_file.name}...): "
            f"restore the catalog from a backup, or move {store.lake} away to start a new store"
        )


class CatalogHold:
    """The SQLite catalog in WAL mode, with one idle connection held open elsewhere.

    Hold it for as long as a writer is attached (see the module docstring). The
    connection is a child process's, opened before DuckDB opens the file; it never
    opens a transaction, so it takes no lock, and it goes when :meth:`close` is
    called or this process dies (its stdin closes). A PostgreSQL catalog needs
    neither: nothing is held for it.
    """

    def __init__(self, store: Store) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        path = store.sqlite_file
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _HOLD, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self._proc.stdout is not None  # piped above
        if self._proc.stdout.readline() != b"held\n":
            error = self._proc.communicate(timeout=30)[1].decode(errors="replace").strip()
            self._proc = None
            reason = error.splitlines()[-1] if error else "it exited"
            raise ConfigError(f"cannot open the SQLite catalog {path} ({reason})")

    def close(self) -> None:
        if self._proc is not None:
            self._proc.communicate(timeout=30)  # closes its stdin: it closes and exits
            self._proc = None


# The child holding the catalog: WAL mode is stored in the file, set once for every
# process; then the connection stays open, idle, until stdin closes.
_HOLD = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=30.0)
con.execute("PRAGMA journal_mode = WAL")
print("held", flush=True)
sys.stdin.read()
con.close()
"""


@contextmanager
def write_lock(store: Store, con: duckdb.DuckDBPyConnection | None = None) -> Iterator[None]:
    """One writer at a time: hold it to create or migrate the store, and around every
    write transaction and compaction. ``con``: the writer's connection, if it has one.

    Several writers share a store (sink processes on one host with SQLite, on
    several hosts with PostgreSQL); what failed when two committed at once, with
    DuckDB 1.4.4 and DuckLake 0.3:

    * starting together on a fresh store, both created DuckLake's tables ("database
      is locked" with SQLite, a duplicate key in ``pg_type`` with PostgreSQL), both
      switched the SQLite file to WAL, both ran the same migration;
    * SQLite: DuckDB keeps the catalog snapshot a transaction began with until it
      commits, and a commit of another writer in between failed it ("database is
      locked"); four writers re-ran transactions up to 10 times in a row;
    * PostgreSQL: DuckLake commits from the snapshot the transaction began with and
      retries on a newer one after a clash; a retried commit that registered the
      table's first pyarrow file (a new name map) kept the map's discarded id, and
      the table became unreadable ("Unknown name map id 4 when trying to map file"),
      in one run of three with two writers;
    * PostgreSQL: a commit after another writer had created tables or views failed
      ("Failed to parse catalog entry - trailing data after quoted value");
    * two compactions merged the same files ("another transaction has compacted it").

    Holding this lock, a writer's transaction meets no other writer's commit. Only
    the transactions wait for each other: batches are decoded and transformed in
    parallel. With SQLite the lock is a file lock beside the catalog file (its
    writers share a host); with PostgreSQL an advisory lock in the catalog database.
    The process's death releases either.
    """
    sqlite_file = store.sqlite_file
    if sqlite_file is not None:
        with _file_lock(sqlite_file):
            yield
        return
    if con is not None:
        with _advisory_lock(con, store):
            yield
        return
    own = _duckdb(store)
    try:
        with _advisory_lock(own, store):
            yield
    finally:
        own.close()


@contextmanager
def _file_lock(sqlite_file: Path) -> Iterator[None]:
    """An exclusive lock on a file beside the SQLite catalog, for the processes of its host.

    The kernel releases it when the file closes, or when the process dies.
    """
    sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    with (sqlite_file.parent / f"{sqlite_file.name}.lock").open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield


@contextmanager
def _advisory_lock(con: duckdb.DuckDBPyConnection, store: Store) -> Iterator[None]:
    """The store's advisory lock in its PostgreSQL catalog database, held by this block.

    A transaction on a connection of its own holds it (a cursor of ``con``, with
    the catalog database attached as plain PostgreSQL), so it ends with this block,
    or with the process. Should the writer's host die instead, TCP keepalives let
    the server end the session (and free the lock) within half a minute, not the
    two hours of the kernel's defaults.
    """
    secret = _password_secret(con, store)
    options = "TYPE postgres" + (f", SECRET {secret}" if secret else "")
    conninfo = store.catalog_uri.removeprefix("postgres:")
    try:
        con.execute(f"ATTACH IF NOT EXISTS {_sql_string(conninfo)} AS {_LOCKS} ({options})")
    except duckdb.Error as exc:
        raise _catalog_error(exc, store) from None
    query = (
        "SELECT set_config('tcp_keepalives_idle', '10', true) AS idle, "
        "set_config('tcp_keepalives_interval', '5', true) AS interval, "
        "set_config('tcp_keepalives_count', '3', true) AS count, "
        "pg_advisory_xact_lock(hashtext('yieldstream writer'))::text AS locked"
    )
    with closing(con.cursor()) as lock:
        lock.execute("BEGIN")
        try:
            lock.execute(f"SELECT * FROM postgres_query('{_LOCKS}', ?)", [query]).fetchall()
            yield
        finally:
            lock.execute("ROLLBACK")


def _extension_directory() -> str | None:
    """The extension binaries shipped by the duckdb-ext-* wheels, if installed."""
    spec = importlib.util.find_spec("duckdb_ext")
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(Path(next(iter(spec.submodule_search_locations))) / "extensions")


def _duckdb(store: Store) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with DuckLake and the extension for the store's catalog."""
    ext_dir = _extension_directory()
    config: dict[str, str | bool | int | float | list[str]] = {
        "autoinstall_known_extensions": "false"
    }
    if ext_dir is not None:
        config["extension_directory"] = ext_dir
    con = duckdb.connect(config=config)
    for extension in ("ducklake", "sqlite" if store.postgres is None else "postgres"):
        try:
            con.load_extension(extension)
        except duckdb.Error:
            # Not shipped by a wheel: fetch it from DuckDB's own repository once.
            con.install_extension(extension)
            con.load_extension(extension)
    con.execute("SET TimeZone = 'UTC'")
    # DuckDB draws a progress bar on stdout for queries over 2 s, piped or not: it
    # corrupted `yieldstream sql --format csv > file` and scripts reading stdout.
    # (A writer may SET enable_progress_bar = true; a reader's settings are locked.)
    con.execute("SET enable_progress_bar = false")
    return con


class _NoStore(ConfigError):
    """The catalog is reachable but holds no store yet."""


def _password_secret(con: duckdb.DuckDBPyConnection, store: Store) -> str | None:
    """Put a PostgreSQL catalog's password in a temporary DuckDB secret; its name.

    DuckDB shows secrets redacted, so the password is in no catalog listing and no
    error message.
    """
    postgres = store.postgres
    if postgres is None or postgres.password is None:
        return None
    con.execute(
        f"CREATE OR REPLACE TEMPORARY SECRET {_SECRET} "
        f"(TYPE postgres, PASSWORD {_sql_string(postgres.password)})"
    )
    return _SECRET


def _attach(
    con: duckdb.DuckDBPyConnection, store: Store, *, read_only: bool = False, options: str = ""
) -> duckdb.DuckDBPyConnection:
    """Attach the store's catalog as :data:`LAKE` and use it; ``con`` back.

    Failing to reach a PostgreSQL catalog is a one-line :class:`ConfigError`
    naming it (password masked) and the setting to fix; ``con`` is closed then.
    """
    settings = [options] if options else []
    if read_only:
        settings.append("READ_ONLY")
    secret = _password_secret(con, store)
    if secret is not None:
        settings.append(f"METADATA_PARAMETERS MAP {{'SECRET': '{secret}'}}")
    attach = f"ATTACH {_sql_string('ducklake:' + store.catalog_uri)} AS {LAKE}"
    try:
        con.execute(attach + (f" ({', '.join(settings)})" if settings else ""))
    except duckdb.Error as exc:
        con.close()
        if store.postgres is None:
            raise ConfigError(
                f"cannot open the catalog {store.sqlite_file} ({_reason(exc)}); "
                f"{RESTORE} if it is damaged"
            ) from None
        if read_only and "creating a new DuckLake is explicitly disabled" in str(exc):
            raise _NoStore(
                f"no store in the catalog at {store.where}; "
                "run `yieldstream run` (or `yieldstream demo`) first"
            ) from None
        raise _catalog_error(exc, store) from None
    con.execute(f"USE {LAKE}")
    return con


def _catalog_error(exc: duckdb.Error, store: Store) -> ConfigError:
    postgres = store.postgres
    reason = mask(_reason(exc), postgres.password if postgres else None)
    return ConfigError(f"cannot open the DuckLake catalog at {store.where} ({reason}); {FIX}")


def _reason(exc: duckdb.Error) -> str:
    """What went wrong, on one line, without DuckDB's wrapping around what libpq said."""
    text = str(exc)
    # 'Failed to attach DuckLake MetaData "x" at path + "postgres:..."<what happened>'
    text = re.sub(r'^.*?Failed to attach DuckLake MetaData ".*?" at path \+ ".*?"', "", text)
    _, found, said = text.partition("Unable to connect to Postgres at ")
    if found:  # '"<conninfo>": connection to server at "h", port 1 failed: Connection refused'
        text = said.partition('": ')[2] or said
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    line = line.rpartition(" failed: ")[2]
    line = re.sub(r"^((IO|Invalid Input|Catalog) Error|FATAL|ERROR):\s*", "", line)
    return line[:1].lower() + line[1:]


# A data file DuckDB could not read: its path, in the error's text.
_DATA_FILE = re.compile(r"""(?:file\s+)?['"]?(/[^'"\s]+\.parquet)['"]?""", re.IGNORECASE)


def damaged(exc: duckdb.Error) -> str | None:
    """One line naming the data file a query could not read, and how to restore it;
    None if ``exc`` is not about a data file."""
    found = _DATA_FILE.search(str(exc))
    if found is None:
        return None
    reason = _DATA_FILE.sub("it", _reason(exc))
    return (
        f"the store's data file {found.group(1)} is damaged ({reason}); restore it from "
        "a backup of the data directory's lake/ (the catalog expects it as it was)"
    )


def store_failure(exc: duckdb.Error) -> str:
    """One line for a query or commit of the store that failed (passwords masked)."""
    line = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    return damaged(exc) or f"the store failed: {mask(line)}"


def open_writer(store: Store) -> duckdb.DuckDBPyConnection:
    """A read-write connection with the lake attached and the schema up to date.

    The data directory must exist (:func:`prepare_data_dir`); hold
    :func:`write_lock` around it when other writers may use the store.
    """
    if store.postgres is not None and not store.exists:
        check_catalog(store, found=False)  # a new store: not over another's data files
    data_path = store.lake
    # No data inlining (small inserts kept as rows in the catalog): flushing them to
    # Parquet later raced with readers, who now and then missed the flushed rows
    # (counts went down, then up again). Every commit writes Parquet; compaction
    # merges the small files. The data path is where the store is now, so a data
    # directory that was moved or copied still opens.
    con = _attach(
        _duckdb(store),
        store,
        options=(
            f"DATA_PATH {_sql_string(f'{data_path}/')}, OVERRIDE_DATA_PATH true, "
            "DATA_INLINING_ROW_LIMIT 0"
        ),
    )
    try:
        # Commits never clash under write_lock; should one clash all the same, the
        # writer runs the whole transaction again rather than DuckLake retrying the
        # commit alone, the retry that lost a new name map (see write_lock).
        con.execute("SET ducklake_max_retry_count = 0")
        # A long-running writer's memory stays flat: no cache of the Parquet files it
        # read, which grew with the store (~200 MiB over a 1M-row backfill).
        con.execute("SET enable_external_file_cache = false")
        _migrate(con)
    except BaseException:
        con.close()
        raise
    return con


def prepare_data_dir(path: Path) -> None:
    """Create the data directory, or say in one line why it cannot be used."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        # A name of its own: writers starting together in one shared directory
        # deleted each other's probe ("No such file or directory").
        probe = path / f".write-test-{uuid.uuid4().hex}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"cannot use {path} as the data directory ({exc.strerror or exc}); "
            "pass --data-dir or set data_dir to a writable directory"
        ) from None


def open_reader(store: Store, read: Sequence[Path] = ()) -> duckdb.DuckDBPyConnection:
    """A read-only connection with the lake attached and the analyst views defined.

    Locked down (:mod:`sinks.readonly`): it reads the store and nothing else, but
    ``read``, files or directories the analyst asked to read too.
    """
    sqlite_file = store.sqlite_file
    if sqlite_file is not None and not store.exists:  # or damaged: check_catalog says so
        raise ConfigError(
            f"no store in {store.where}; run `yieldstream run` (or `yieldstream demo`) first"
        )
    # The catalog holds the data path of the writer that created the store; on
    # another host the shared volume may be mounted elsewhere (queries failed with
    # "Cannot open file"). The data directory given wins when it holds the files.
    # Absolute: the lockdown allows reading under this path, matched as a prefix.
    data_path = store.lake.absolute()
    options = ""
    if data_path.is_dir():
        options = f"DATA_PATH {_sql_string(f'{data_path}/')}, OVERRIDE_DATA_PATH true"
    try:
        con = _attach(_duckdb(store), store, read_only=True, options=options)
    except _NoStore:
        check_catalog(store, found=False)  # a lost PostgreSQL store: say how to restore
        raise
    try:
        lock_down(con, LAKE, read)
    except BaseException:
        con.close()
        raise
    return con


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER, applied_at TIMESTAMPTZ)"
    )
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    current = int(row[0]) if row else 0
    scripts = sorted((p for p in SQL.iterdir() if p.name[:3].isdigit()), key=lambda p: p.name)
    for script in scripts:
        version = int(script.name[:3])
        if version <= current:
            continue
        con.execute("BEGIN")
        con.execute(script.read_text())
        if (step := STEPS.get(version)) is not None:
            step(con)
        con.execute("INSERT INTO schema_migrations VALUES (?, now())", [version])
        con.execute("COMMIT")
    _define_views(con)


def _define_views(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create the analyst views of ``views.sql``, unless they are already these.

    Each view's comment names the ``views.sql`` it came from. Replacing unchanged
    views at every writer start only added snapshots, and with a PostgreSQL catalog
    DuckLake 0.3 failed the commit of another writer whose transaction had begun
    before them ("Failed to parse catalog entry - trailing data after quoted value").
    """
    # views.sql, then the views built on them (views_*.sql), in name order.
    scripts = sorted(
        (p for p in SQL.iterdir() if p.name.startswith("views") and p.name.endswith(".sql")),
        key=lambda p: p.name,
    )
    script = "\n".join(p.read_text() for p in scripts)
    stamp = f"yieldstream views.sql {hashlib.sha256(script.encode()).hexdigest()[:16]}"
    names = re.findall(r"CREATE OR REPLACE VIEW (\w+)", script)
    found = con.execute(
        "SELECT view_name, comment FROM duckdb_views() "
        "WHERE database_name = ? AND schema_name = 'main'",
        [LAKE],
    ).fetchall()
    if all((name, stamp) in found for name in names):
        return
    con.execute("BEGIN")
    con.execute(script)
    for name in names:
        con.execute(f"COMMENT ON VIEW {name} IS {_sql_string(stamp)}")
    con.execute("COMMIT")
