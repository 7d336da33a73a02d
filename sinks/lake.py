"""Opening the DuckLake store: extensions offline, catalog, schema migrations, views.

The store is DuckLake: a catalog database (SQLite in ``<data dir>/catalog.sqlite`` by
default) plus Parquet files under ``<data dir>/lake/``. Unlike a plain DuckDB file,
several processes can open it at once: the writer keeps writing while analysts
attach it read-only.

Two things about the SQLite catalog make that work in practice (measured with
DuckDB 1.4.4, where a wait for a SQLite lock lasts a whole second):

* it runs in WAL mode, so readers never block the writer's commits ("database is
  locked" in the daemon while an analyst's transaction was open) and commits never
  block readers (queries waited 1 s per commit they met);
* the writer holds one idle SQLite connection open (:class:`CatalogHold`). DuckDB
  opens and closes a SQLite connection per catalog transaction; whenever the last
  one closed, SQLite checkpointed and deleted the WAL under an exclusive lock, and
  every reader querying at that moment waited 1 s.
"""

from __future__ import annotations

import importlib.util
import sqlite3
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import duckdb

from yieldstream.errors import ConfigError

LAKE = "lake"
SQL = files("sinks") / "sql"


@dataclass(frozen=True, slots=True)
class Store:
    """Where the store lives: its data directory and catalog."""

    data_dir: Path
    catalog: str | None = None  # DuckLake catalog; None: SQLite file in data_dir

    @property
    def catalog_uri(self) -> str:
        if self.catalog is None:
            return f"sqlite:{self.data_dir / 'catalog.sqlite'}"
        if self.catalog.startswith("sqlite:"):
            return self.catalog
        raise ConfigError(
            f"unsupported catalog {self.catalog!r}; use sqlite:PATH (or leave it unset)"
        )

    @property
    def exists(self) -> bool:
        return self.catalog is not None or (self.data_dir / "catalog.sqlite").is_file()

    @property
    def sqlite_file(self) -> Path:
        """The SQLite file holding the catalog."""
        return Path(self.catalog_uri.removeprefix("sqlite:"))


class CatalogHold:
    """The SQLite catalog in WAL mode, with one idle connection held open.

    Hold it for as long as a writer is attached (see the module docstring). The
    connection never opens a transaction, so it takes no lock.
    """

    def __init__(self, store: Store) -> None:
        path = store.sqlite_file
        path.parent.mkdir(parents=True, exist_ok=True)
        # WAL mode is stored in the file: set once, it stays for every process.
        self._con = sqlite3.connect(path, timeout=30.0, check_same_thread=False)
        self._con.execute("PRAGMA journal_mode = WAL")

    def close(self) -> None:
        self._con.close()


def _extension_directory() -> str | None:
    """The extension binaries shipped by the duckdb-ext-* wheels, if installed."""
    spec = importlib.util.find_spec("duckdb_ext")
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(Path(next(iter(spec.submodule_search_locations))) / "extensions")


def _duckdb() -> duckdb.DuckDBPyConnection:
    ext_dir = _extension_directory()
    config: dict[str, str | bool | int | float | list[str]] = {
        "autoinstall_known_extensions": "false"
    }
    if ext_dir is not None:
        config["extension_directory"] = ext_dir
    con = duckdb.connect(config=config)
    for extension in ("ducklake", "sqlite"):
        try:
            con.load_extension(extension)
        except duckdb.Error:
            # Not shipped by a wheel: fetch it from DuckDB's own repository once.
            con.install_extension(extension)
            con.load_extension(extension)
    con.execute("SET TimeZone = 'UTC'")
    return con


def open_writer(store: Store) -> duckdb.DuckDBPyConnection:
    """A read-write connection with the lake attached and the schema up to date.

    The data directory must exist (:func:`prepare_data_dir`).
    """
    data_path = store.data_dir / "lake"
    con = _duckdb()
    # No data inlining (small inserts kept as rows in the catalog): flushing them to
    # Parquet later raced with readers, who now and then missed the flushed rows
    # (counts went down, then up again). Every commit writes Parquet; compaction
    # merges the small files. The data path is where the store is now, so a data
    # directory that was moved or copied still opens.
    con.execute(
        f"ATTACH 'ducklake:{store.catalog_uri}' AS {LAKE} "
        f"(DATA_PATH '{data_path}/', OVERRIDE_DATA_PATH true, DATA_INLINING_ROW_LIMIT 0)"
    )
    con.execute(f"USE {LAKE}")
    _migrate(con)
    return con


def prepare_data_dir(path: Path) -> None:
    """Create the data directory, or say in one line why it cannot be used."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"cannot use {path} as the data directory ({exc.strerror or exc}); "
            "pass --data-dir or set data_dir to a writable directory"
        ) from None


def open_reader(store: Store) -> duckdb.DuckDBPyConnection:
    """A read-only connection with the lake attached and the analyst views defined."""
    if not store.exists:
        raise ConfigError(
            f"no store in {store.data_dir}; run `yieldstream run` (or `yieldstream demo`) first"
        )
    con = _duckdb()
    con.execute(f"ATTACH 'ducklake:{store.catalog_uri}' AS {LAKE} (READ_ONLY)")
    con.execute(f"USE {LAKE}")
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
        con.execute("INSERT INTO schema_migrations VALUES (?, now())", [version])
        con.execute("COMMIT")
    con.execute((SQL / "views.sql").read_text())
