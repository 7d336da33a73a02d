"""Products whose sources disagree: the query behind ``yieldstream crosscheck``.

It reads the ``crosscheck`` view (one product from several sources, hour by hour)
and keeps the products whose APY gap passed a threshold in a time window: how far
apart the sources were at worst and in the last hour seen, how many hours the gap
passed the threshold, and each source's figure in that last hour.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from yieldstream.sqltext import literal


def query(threshold_pp: float, since: datetime) -> str:
    """The SQL listing disagreements above ``threshold_pp`` percentage points since ``since``.

    Both values are typed (a float, an aware datetime) and written as SQL literals,
    never text from a user.
    """
    if not math.isfinite(threshold_pp) or threshold_pp < 0:
        raise ValueError(f"threshold must be a percentage-point gap >= 0, got {threshold_pp}")
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    start = literal(since.astimezone(UTC).isoformat())
    return f"""
WITH window_rows AS (
    SELECT * FROM crosscheck WHERE hour >= CAST({start} AS TIMESTAMPTZ)),
per_product AS (
    SELECT product_id, max(hour) AS last_hour,
           max(apy_gap_pct) AS worst_gap_pp,
           count(DISTINCT hour) FILTER (WHERE apy_gap_pct > {threshold_pp!r}) AS hours_over,
           count(DISTINCT hour) AS hours
    FROM window_rows GROUP BY product_id),
last_figures AS (
    SELECT w.product_id, any_value(w.apy_gap_pct) AS last_gap_pp,
           string_agg(w.source || ' ' || coalesce(CAST(round(w.apy_pct, 3) AS VARCHAR), '-'),
                      ', ' ORDER BY w.source) AS last_apy_pct
    FROM window_rows AS w JOIN per_product AS p
      ON w.product_id = p.product_id AND w.hour = p.last_hour
    GROUP BY w.product_id)
SELECT p.product_id, p.last_hour, round(l.last_gap_pp, 3) AS last_gap_pp,
       round(p.worst_gap_pp, 3) AS worst_gap_pp, p.hours_over, p.hours, l.last_apy_pct
FROM per_product AS p JOIN last_figures AS l USING (product_id)
WHERE p.worst_gap_pp > {threshold_pp!r}
ORDER BY p.worst_gap_pp DESC, p.product_id
"""
