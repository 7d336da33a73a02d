"""What the store knows of each source's fetches: ``yieldstream sources`` and ``GET /v1/sources``.

One query over the ``fetches``, ``observations`` and ``rejections`` tables, run on a
read-only connection the caller opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

QUERY = """
WITH f AS (
    SELECT source, max(finished_at) AS last_fetch,
           arg_max(ok, finished_at) AS last_ok,
           count(*) FILTER (WHERE NOT ok) AS failed,
           max(finished_at) FILTER (WHERE ok) AS last_success
    FROM fetches GROUP BY source),
c AS (
    SELECT f.source, count(g.source) AS consecutive
    FROM f LEFT JOIN fetches AS g
      ON g.source = f.source AND NOT g.ok
     AND (f.last_success IS NULL OR g.finished_at > f.last_success)
    GROUP BY f.source),
o AS (SELECT source, count(*) AS rows FROM observations GROUP BY source),
r AS (SELECT source, count(*) AS rejected FROM rejections GROUP BY source)
SELECT f.source, f.last_fetch, f.last_ok, f.last_success, c.consecutive,
       coalesce(o.rows, 0), coalesce(r.rejected, 0), f.failed
FROM f JOIN c USING (source) LEFT JOIN o USING (source) LEFT JOIN r USING (source)
"""


@dataclass(frozen=True, slots=True)
class SourceStats:
    """One source's fetch record as the store holds it."""

    last_fetch: datetime | None = None  # when its newest fetch ended, ok or not
    last_ok: bool | None = None  # whether that fetch succeeded
    last_success: datetime | None = None  # when its newest successful fetch ended
    consecutive_failures: int = 0  # failed fetches since the last success
    rows_stored: int = 0  # observations
    rejected: int = 0
    failed_fetches: int = 0  # in all


def source_stats(con: duckdb.DuckDBPyConnection) -> dict[str, SourceStats]:
    """The stats of every source that has fetched at least once, by name."""
    return {
        str(row[0]): SourceStats(
            last_fetch=row[1],
            last_ok=row[2],
            last_success=row[3],
            consecutive_failures=int(row[4]),
            rows_stored=int(row[5]),
            rejected=int(row[6]),
            failed_fetches=int(row[7]),
        )
        for row in con.execute(QUERY).fetchall()
    }
