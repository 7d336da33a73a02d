"""Opening the DuckLake store: extensions offline, catalog, schema migrations, views.

The store is DuckLake: a catalog database (SQLite in ``<data dir>/catalog.sqlite`` by
default) plus Parquet files under ``<data dir>/lake/``. Unlike a plain DuckDB file,
several processes can open it at once: the writer keeps writing while analysts
attach it read-only.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import duckdb

from yieldstream.errors import ConfigError

LAKE = "lake"
SQL = files("sinks") / "sql"
# Inserts of at most this many rows are kept in the catalog instead of a new Parquet
# file (fetch log, batch journal, single-point sources); compaction flushes them.
INLINE_ROWS = 1000


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


def _extension_directory() -> str | None:
    """The extension binaries shipped by the duckdb-ext-* wheels, if installed."""
    spec = importlib.util.find_spec("duckdb_ext")
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(Path(next(iter(spec.submodule_search_locations))) / "extensions")


def _duckdb() -> duckdb.DuckDBPyConnection:
    ext_dir = _extension_directory()
    config = {"autoinstall_known_extensions": "false"}
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
    """A read-write connection with the lake attached and the schema up to date."""
    store.data_dir.mkdir(parents=True, exist_ok=True)
    data_path = store.data_dir / "lake"
    con = _duckdb()
    con.execute(
        f"ATTACH 'ducklake:{store.catalog_uri}' AS {LAKE} "
        f"(DATA_PATH '{data_path}/', DATA_INLINING_ROW_LIMIT {INLINE_ROWS})"
    )
    con.execute(f"USE {LAKE}")
    _migrate(con)
    return con


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
    con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER, applied_at TIMESTAMPTZ)")
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    current = int(row[0]) if row else 0
    scripts = sorted(p for p in SQL.iterdir() if p.name[:3].isdigit())
    for script in scripts:
        version = int(script.name[:3])
        if version <= current:
            continue
        con.execute("BEGIN")
        con.execute(script.read_text())
        con.execute("INSERT INTO schema_migrations VALUES (?, now())", [version])
        con.execute("COMMIT")
    con.execute((SQL / "views.sql").read_text())
