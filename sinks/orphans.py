"""Which files under ``lake/`` compaction may delete: its own orphans, and no others.

An orphan is a Parquet file that no snapshot of the catalog references: the file
of a transaction that a kill (or a full disk) interrupted. DuckLake's
``ducklake_delete_orphaned_files`` deletes every such file, whoever wrote it; over
a catalog that had been lost and created anew beside an old ``lake/``, that was
the whole history (87 files down to 25, 10,020 rows down to 21). So the writer
names the files it writes after its store (:func:`file_name`: the table, the
store's tag, a random id), and compaction deletes only unreferenced files that
carry its own tag. Any other file (another store's, an older version's, one put
there by hand, DuckLake's own ``ducklake-*.parquet``) is left alone, and logged
once per writer.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime
from pathlib import Path

import duckdb
import structlog

log = structlog.get_logger(__name__)

# Unknown files named in one log line at most; the count says how many there are.
_NAMED = 5


def store_tag(con: duckdb.DuckDBPyConnection, lake: str) -> str:
    """The tag of the store attached as ``lake``: 12 hex digits, the same for every writer.

    Derived from the id DuckLake gave the store's first table (``schema_migrations``,
    created with the store), which lives in the catalog and nowhere else.
    """
    row = con.execute(
        f"SELECT table_uuid FROM ducklake_table_info('{lake}') "
        "WHERE table_name = 'schema_migrations'"
    ).fetchone()
    if row is None:  # open_writer creates it before anything else
        raise RuntimeError("the store has no schema_migrations table")
    return hashlib.sha256(str(row[0]).encode()).hexdigest()[:12]


def file_name(table: str, tag: str) -> str:
    """A new data file's name (without ``.parquet``) for ``table`` of the store ``tag``."""
    return f"{table}-{tag}-{uuid.uuid4().hex}"


def is_own(path: Path, tag: str) -> bool:
    """Whether ``path`` is named as this store's writer names its files."""
    return re.fullmatch(rf"[a-z_]+-{tag}-[0-9a-f]{{32}}\.parquet", path.name) is not None


def delete_own_orphans(
    con: duckdb.DuckDBPyConnection, lake: str, tag: str, older_than: datetime, logged: set[str]
) -> int:
    """Delete the store's own orphaned files older than ``older_than``; their count.

    The others are kept; those not in ``logged`` yet are logged (one line) and
    added to it.
    """
    rows = con.execute(
        f"CALL ducklake_delete_orphaned_files('{lake}', older_than => ?, dry_run => true)",
        [older_than],
    ).fetchall()
    deleted = 0
    unknown = []
    for (name,) in rows:
        path = Path(str(name))
        if is_own(path, tag):
            path.unlink(missing_ok=True)
            deleted += 1
        elif str(path) not in logged:
            unknown.append(str(path))
    if unknown:
        logged.update(unknown)
        log.warning(
            "store_unknown_files_kept",
            files=len(unknown),
            paths=unknown[:_NAMED],
            note="in lake/ but not written by this store's catalog: left alone",
        )
    return deleted
