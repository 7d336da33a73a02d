"""The read-only door: what a reader's DuckDB may do once the lake is attached.

Every reader (:func:`sinks.lake.open_reader`, so ``yieldstream.connect()``,
``yieldstream sql``, ``sources``, ``demo``) is locked down by DuckDB's own settings
right after the DuckLake attach (the attach needs the extensions and the catalog
first; measured with DuckDB 1.4.4):

1. ``allowed_directories``: the lake's data path, so queries read its Parquet files,
   those a writer adds later too; plus whatever the analyst asked to read;
2. ``enable_external_access = false``: no other file is read or written (``read_text``,
   ``read_csv``, ``COPY ... TO``, ``EXPORT DATABASE``, attaching a DuckDB file), no
   ``INSTALL``/``LOAD`` of an extension not loaded yet, no new PostgreSQL attach;
3. no extension autoloading or autoinstalling, no community extensions;
4. ``lock_configuration = true``: no ``SET``/``RESET`` re-opens any of it.

Holes DuckDB's settings leave, checked in DuckDB 1.4.4 (``tests/sinks/test_readonly.py``
pins them):

* DuckDB has no read-only directory: a directory allowed for reading is writable
  too, so ``COPY ... TO '<data dir>/lake/...'`` could overwrite a Parquet file;
* the sqlite extension (loaded for a SQLite catalog) ignores ``enable_external_access``:
  ``ATTACH '<catalog>' (TYPE sqlite)``, or ``'ducklake:sqlite:<catalog>'``, attaches
  the catalog read-write, and ``sqlite_scan`` reads any SQLite file;
* ``ATTACH ':memory:'`` touches no file and passes too.

:func:`statements` closes them for the queries yieldstream runs itself (``yieldstream
sql``): it splits the text with DuckDB's parser and refuses, by the statement type
the parser gives (not by keywords in the text), whatever is not a read, and, in the
parse tree DuckDB serializes, the table functions that read past the lockdown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb

# What a read may be, by the statement type DuckDB's parser gives (named SELECT in
# DuckDB 1.4.4, SELECT_STATEMENT in its type stubs). SET covers USE and SET VARIABLE;
# configuration is locked, so DuckDB itself refuses a SET of a setting.
_READS = frozenset({"SELECT", "EXPLAIN", "CALL", "PRAGMA", "SET", "TRANSACTION"})
_EXPLAIN = re.compile(r"^\s*explain(\s+analy[sz]e)?\s", re.IGNORECASE)
_CALL = re.compile(r"^\s*call\s", re.IGNORECASE)
# Table functions that read past enable_external_access: the sqlite and postgres
# extensions' scans open any SQLite file or server (DuckDB 1.4.4); query() and
# query_table() run SQL made from strings, which no check here sees.
_FOREIGN = frozenset(
    {
        "sqlite_scan",
        "sqlite_query",
        "sqlite_attach",
        "postgres_scan",
        "postgres_scan_pushdown",
        "postgres_query",
        "postgres_execute",
        "postgres_attach",
        "query",
        "query_table",
    }
)


def lock_down(con: duckdb.DuckDBPyConnection, lake: str, read: Sequence[Path] = ()) -> None:
    """Lock ``con`` to reading the DuckLake attached as ``lake``, and ``read``.

    ``read``: files or directories the analyst may read too (a CSV to join). DuckDB
    matches the path a query names as written: each is allowed absolute and as given.
    """
    row = con.execute(
        "SELECT tags['data_path'] FROM duckdb_databases() WHERE database_name = ?", [lake]
    ).fetchone()
    directories = [str(row[0])] if row and row[0] else []
    files: list[str] = []
    for path in read:
        resolved = path.expanduser().resolve()
        names = {str(resolved)} | ({str(path)} if str(path) not in ("", ".") else set())
        (directories if resolved.is_dir() else files).extend(sorted(names))
    con.execute("SET allowed_directories = ?", [directories])
    con.execute("SET allowed_paths = ?", [files])
    # Turning external access off adds the attached databases' files (the catalog)
    # to allowed_paths; it must come after the two above, which it then freezes.
    con.execute("SET enable_external_access = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET allow_community_extensions = false")
    con.execute("SET lock_configuration = true")


def statements(query: str) -> list[duckdb.Statement]:
    """The statements of ``query``, each a read; else a one-line :class:`duckdb.Error`.

    Empty text (only whitespace, semicolons or comments) is an error too.
    """
    found = duckdb.extract_statements(query)
    if not found:
        raise duckdb.InvalidInputException("the query is empty: give at least one SQL statement")
    for statement in found:
        _check(statement)
    return found


def _check(statement: duckdb.Statement) -> None:
    kind = statement.type.name.removesuffix("_STATEMENT")
    if kind == "EXPLAIN":  # EXPLAIN ANALYZE runs its statement: check that one
        inner = _EXPLAIN.sub("", statement.query, count=1)
        if inner == statement.query:  # EXPLAIN (options) ...: not told apart here
            raise duckdb.PermissionException(
                "the store is read-only here: write EXPLAIN [ANALYZE] <query> without options"
            )
        for part in duckdb.extract_statements(inner):
            _check(part)
        return
    if kind not in _READS:
        raise duckdb.PermissionException(
            f"the store is read-only here: {kind} statements are refused "
            "(SELECT, EXPLAIN, CALL, PRAGMA, SET, USE and transactions run)"
        )
    if kind == "CALL":  # CALL f(...) is SELECT * FROM f(...) to the serializer
        _check_functions(_CALL.sub("SELECT * FROM ", statement.query, count=1))
    elif kind == "SELECT":
        _check_functions(statement.query)


def _check_functions(query: str) -> None:
    """Refuse a query that calls one of :data:`_FOREIGN`, found in DuckDB's parse tree.

    DuckDB serializes the tree of plain SELECTs only (not PRAGMA, nor a PIVOT
    subquery): the others pass here, and DuckDB's settings still apply to them.
    """
    with duckdb.connect() as parser:
        row = parser.execute("SELECT json_serialize_sql(?)", [query]).fetchone()
    tree = json.loads(row[0]) if row else {}
    if tree.get("error"):
        return
    called = _FOREIGN.intersection(_function_names(tree))
    if called:
        raise duckdb.PermissionException(
            f"the store is read-only here: {', '.join(sorted(called))} is refused "
            "(it reads past the store's lockdown)"
        )


def _function_names(tree: object) -> Iterator[str]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key == "function_name" and isinstance(value, str):
                yield value.lower()
            else:
                yield from _function_names(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _function_names(value)
