"""The newest observation of each pool, kept beside the history (``latest_observations``).

The writer calls these inside the transaction that changes ``observations``, so the
table always agrees with the history it summarises:

* :func:`advance` after rows were added: a pool's row moves to a newer observation
  (a poll, a newer backfilled point) and its ``first_observed_at`` to an older one;
  an added row with the same key as the pool's latest (a replay's new outcome)
  replaces it.
* :func:`forget` before rows are deleted (a replay dropping rows): the pools whose
  latest row goes are recomputed from the history afterwards, by :func:`refresh`.
* :func:`unsure`: which rows of a commit might already be stored. A row newer than
  its pool's latest, older than its first, or of a pool never seen is new for
  sure; only the others need the anti-join against the history, so the cost of
  the idempotency check follows what the commit overlaps, not the store's size.

Each step reads ``latest_observations`` (one row per pool) and the commit's own
rows; only :func:`refresh` reads the history, and only for the pools it is given.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

# The table the views read the latest figures from (sinks/sql/006_latest.sql).
TABLE = "latest_observations"


def advance(con: duckdb.DuckDBPyConnection, added: pa.Table) -> None:
    """Move each pool's latest row to the newest of ``added`` (rows just stored).

    ``added`` has the columns of ``observations`` (with ``batch_id`` and
    ``stored_at``), one row per key; or, with a ``first_observed_at`` column, some
    of them with the oldest time of the rows each stands for (each pool's newest
    rows of the batches a backfill commit wrote ahead: sinks/staged.py). On equal
    ``observed_at`` the added row wins: it replaced the stored one in this
    transaction.
    """
    if not added.num_rows:
        return
    # Each pool's newest added row and its oldest time, found from the keys alone:
    # a backfill commit adds thousands of rows of a few dozen pools.
    first = "first_observed_at" if "first_observed_at" in added.column_names else "observed_at"
    columns = list(dict.fromkeys(["source", "pool_id", "observed_at", first]))
    keyed = added.select(columns).append_column(  # noqa: F841 - read by name
        "_i", pa.array(range(added.num_rows), pa.int64())
    )
    picked = con.execute(
        f"""
        SELECT arg_max(_i, observed_at) AS i, min({first}) AS first_observed_at
        FROM keyed GROUP BY source, pool_id ORDER BY i
        """
    ).fetch_arrow_table()
    fresh = added.take(picked["i"])
    if first != "observed_at":
        fresh = fresh.drop_columns([first])
    fresh = fresh.append_column("first_observed_at", picked["first_observed_at"])
    # A pool's row moves when an added row is as new as its latest (the added row
    # wins a tie: it replaced the stored one); it is rewritten with only an older
    # first time when it stays. Two hash joins: a window over both sets cost half as
    # much again on a poll of 20,000 pools.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _latest_moved AS
        SELECT n.* REPLACE (least(n.first_observed_at, l.first_observed_at) AS first_observed_at)
        FROM fresh AS n LEFT JOIN {TABLE} AS l USING (source, pool_id)
        WHERE l.observed_at IS NULL OR n.observed_at >= l.observed_at
        UNION ALL BY NAME
        SELECT l.* REPLACE (n.first_observed_at AS first_observed_at)
        FROM {TABLE} AS l JOIN fresh AS n USING (source, pool_id)
        WHERE n.observed_at < l.observed_at AND n.first_observed_at < l.first_observed_at
        """
    )
    con.execute(
        f"DELETE FROM {TABLE} AS l USING _latest_moved AS m "
        "WHERE l.source = m.source AND l.pool_id = m.pool_id"
    )
    _insert_moved(con)


def forget(con: duckdb.DuckDBPyConnection, batch_ids: list[str], kept: pa.Table) -> pa.Table:
    """The pools whose latest row is in ``batch_ids`` and not among ``kept``'s keys.

    Called before those batches' rows are deleted: what it returns goes to
    :func:`refresh` once the new rows are in.
    """
    keys = kept.select(["source", "pool_id", "observed_at"])  # noqa: F841 - read by name
    return con.execute(
        f"""
        SELECT DISTINCT l.source, l.pool_id FROM {TABLE} AS l
        WHERE l.batch_id IN (SELECT unnest(?::VARCHAR[]))
          AND NOT EXISTS (SELECT 1 FROM keys AS k WHERE k.source = l.source
                          AND k.pool_id = l.pool_id AND k.observed_at = l.observed_at)
        """,
        [batch_ids],
    ).fetch_arrow_table()


def refresh(con: duckdb.DuckDBPyConnection, pools: pa.Table) -> None:
    """Recompute the latest rows of ``pools`` (source, pool_id) from the history."""
    if not pools.num_rows:
        return
    gone = pools  # noqa: F841 - read by name
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _latest_moved AS
        SELECT o.*, min(o.observed_at) OVER pool AS first_observed_at
        FROM observations AS o SEMI JOIN gone USING (source, pool_id)
        WINDOW pool AS (PARTITION BY source, pool_id)
        QUALIFY row_number() OVER (PARTITION BY source, pool_id ORDER BY observed_at DESC) = 1
        """
    )
    con.execute(
        f"DELETE FROM {TABLE} AS l USING gone AS g "
        "WHERE l.source = g.source AND l.pool_id = g.pool_id"
    )
    _insert_moved(con)


def unsure(con: duckdb.DuckDBPyConnection, keyed: pa.Table) -> pa.Table:
    """The rows of ``keyed`` (key columns and ``_i``) that may be stored already.

    A row is new for sure when its pool has no stored row, or it is newer than the
    pool's latest or older than its first; the others are returned, for the
    anti-join against the history.
    """
    staged = keyed  # noqa: F841 - read by name
    return con.execute(
        f"""
        SELECT s.source, s.pool_id, s.observed_at, s._i
        FROM staged AS s JOIN {TABLE} AS l USING (source, pool_id)
        WHERE s.observed_at BETWEEN l.first_observed_at AND l.observed_at
        """
    ).fetch_arrow_table()


def _insert_moved(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"INSERT INTO {TABLE} BY NAME SELECT * FROM _latest_moved")
    con.execute("DROP TABLE _latest_moved")
