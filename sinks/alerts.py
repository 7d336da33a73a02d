"""Alerts kept in the store: opened and cleared by the writer, never dropped.

:func:`evaluate` runs in the sink's process, after batches committed (one pass over the
pools of the batches stored since the last, :mod:`yieldstream.pipeline`), in a
write transaction of its own (:meth:`sinks.writer.LakeWriter.committed`). It reads
the store, not the batch: each pool of the batch is judged on its newest stored
observation and the ones before it, so a batch delivered again, or evaluated twice,
finds the same state and changes nothing. The kinds (thresholds in
:class:`yieldstream.settings.AlertSettings`):

``apy_spike``     APY above ``spike_multiple`` (5) times its recent level: the median
                  APY of the pool's observations in the ``spike_window_h`` (5) hours
                  before. DefiLlama's rule (yield-server ``src/handlers/triggerAdaptor.js``,
                  "tvl spike check": ``apy > apyDB * 5`` with the pool's last entry
                  younger than 5 hours). DefiLlama drops such a row and keeps comparing
                  with its last stored one; this store keeps the row, so the level is
                  the window's median, which a spike of a poll or two does not move.
                  A recent level of 0 has no multiple: no spike.
``apy_stuck``     the pool's last ``stuck_polls`` (12) observations within
                  ``stuck_window_h`` (48) hours carry one APY (0 included) while another
                  pool of the same source changed APY in that time (DefiLlama issue #2805:
                  two pools at 0 % for days while the adaptor's others updated). Open
                  until the pool's APY changes.
``tvl_drawdown``  TVL at or below ``100 - drawdown_pct`` (50) % of the pool's peak in
                  the ``drawdown_window_h`` (24) hours before, the peak at least
                  ``drawdown_min_tvl_usd``: a rug-pull signal. Any level (a protocol's
                  total too).
``stale_source``  an enabled source without a successful fetch (``fetches.ok``) for
                  ``stale_after_h`` (6) hours; checked on every pass.
``disagreement``  a first-party source's APY and ``disagreement_reference``'s
                  (DefiLlama's) for one product, in the newest hour of the
                  ``crosscheck`` view, more than ``disagreement_pp`` (1) points apart.

One open alert per (kind, source, pool_id, product_id): a condition that holds with
an alert open adds nothing; one that no longer holds clears it (``cleared_at`` is
the data time of the state that ended it); a recurrence opens a new row. An alert's
id is the md5 of its key and ``opened_at``, so one occurrence is one row. Each row is
updated at most once per transaction (DuckLake 0.3 failed an assertion on a row
updated twice in one, see ``docs/design-notes.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from sinks.tables import TS
from sinks.writer import LakeWriter
from yieldstream.alerts import COLUMNS, Alert, Alerts, Event
from yieldstream.settings import AlertSettings

POOLS_SCHEMA = pa.schema([("source", pa.string()), ("pool_id", pa.string()), ("observed_at", TS)])
_KEY = (
    "{a}.kind = {s}.kind AND {a}.source = {s}.source "
    "AND {a}.pool_id IS NOT DISTINCT FROM {s}.pool_id "
    "AND {a}.product_id IS NOT DISTINCT FROM {s}.product_id"
)


def pools_of(observations: Sequence[object] | pa.Table) -> pa.Table:
    """The (source, pool_id, observed_at) of a batch's observations, as the sink has them."""
    if isinstance(observations, pa.Table):
        return observations.select(["source", "pool_id", "observed_at"]).cast(POOLS_SCHEMA)
    rows = list(observations)
    return pa.table(
        {
            "source": [getattr(o, "source") for o in rows],  # noqa: B009 - Observation-like
            "pool_id": [getattr(o, "pool_id") for o in rows],  # noqa: B009
            "observed_at": [getattr(o, "observed_at") for o in rows],  # noqa: B009
        },
        schema=POOLS_SCHEMA,
    )


def _hours(value: float) -> timedelta:
    return timedelta(hours=value)


def evaluate(
    con: duckdb.DuckDBPyConnection,
    rules: AlertSettings,
    pools: pa.Table,
    sources: Sequence[str],
    now: datetime,
) -> list[Alert]:
    """Open and clear alerts for ``pools`` (a :func:`pools_of`) and the ``sources``'
    fetches, in ``con``'s open transaction; the alerts opened or cleared."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE alert_state (
            kind VARCHAR, source VARCHAR, pool_id VARCHAR, product_id VARCHAR,
            moment TIMESTAMPTZ, fires BOOLEAN, holds BOOLEAN, severity VARCHAR, evidence VARCHAR)
        """
    )
    try:
        if pools.num_rows:
            _pool_states(con, rules, pools)
        _stale_states(con, rules, sources, now)
        return _apply(con, now)
    finally:
        for table in ("alert_state", "alert_hist", "alert_open", "alert_clear"):
            con.execute(f"DROP TABLE IF EXISTS temp.{table}")


def _pool_states(con: duckdb.DuckDBPyConnection, rules: AlertSettings, pools: pa.Table) -> None:
    """The per-pool kinds' state of every pool in ``pools``, on its newest observation."""
    alert_pools = pools.group_by(["source", "pool_id"]).aggregate([])  # noqa: F841 - by name
    lookback = max(rules.spike_window_h, rules.stuck_window_h, rules.drawdown_window_h)
    oldest = pc.min(pools["observed_at"]).as_py()
    # The pools' recent rows; a pool's newest stored row is at or after its batch's.
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE alert_hist AS
        WITH h AS (
            SELECT o.source, o.pool_id, o.product_id, o.level, o.observed_at, o.apy_pct, o.tvl_usd
            FROM observations AS o SEMI JOIN alert_pools AS k
              ON o.source = k.source AND o.pool_id = k.pool_id
            WHERE o.observed_at >= $since)
        SELECT h.*, row_number() OVER (
            PARTITION BY source, pool_id ORDER BY observed_at DESC) AS back
        FROM h
        """,
        {"since": oldest - _hours(lookback)},
    )
    windows = {
        "spike": _hours(rules.spike_window_h),
        "stuck": _hours(rules.stuck_window_h),
        "drawdown": _hours(rules.drawdown_window_h),
    }
    spike = (
        f"coalesce(p.recent_apy > 0 AND l.apy_pct > {rules.spike_multiple!r} * p.recent_apy, false)"
    )
    kept = (100 - rules.drawdown_pct) / 100
    drawdown = (
        f"coalesce(p.peak_tvl > 0 AND p.peak_tvl >= {rules.drawdown_min_tvl_usd!r} "
        f"AND l.tvl_usd <= p.peak_tvl * {kept!r}, false)"
    )
    con.execute(
        f"""
        INSERT INTO alert_state
        WITH latest AS (SELECT * FROM alert_hist WHERE back = 1),
        prior AS (
            SELECT h.source, h.pool_id,
                   median(h.apy_pct) FILTER (WHERE h.observed_at >= l.observed_at - $spike)
                       AS recent_apy,
                   count(h.apy_pct) FILTER (WHERE h.observed_at >= l.observed_at - $spike)
                       AS recent_points,
                   max(h.tvl_usd) FILTER (WHERE h.observed_at >= l.observed_at - $drawdown)
                       AS peak_tvl,
                   arg_max(h.observed_at, h.tvl_usd)
                       FILTER (WHERE h.observed_at >= l.observed_at - $drawdown) AS peak_at
            FROM alert_hist AS h JOIN latest AS l USING (source, pool_id)
            WHERE h.back > 1
            GROUP BY h.source, h.pool_id)
        SELECT 'apy_spike', l.source, l.pool_id, l.product_id, l.observed_at,
               {spike}, {spike}, 'warning',
               json_object('apy_pct', l.apy_pct, 'recent_apy_pct', p.recent_apy,
                           'multiple', round(l.apy_pct / nullif(p.recent_apy, 0), 3),
                           'recent_points', p.recent_points, 'window_h', {rules.spike_window_h!r},
                           'threshold_multiple', {rules.spike_multiple!r})::VARCHAR
        FROM latest AS l LEFT JOIN prior AS p USING (source, pool_id)
        WHERE l.level = 'product'
        UNION ALL
        SELECT 'tvl_drawdown', l.source, l.pool_id, l.product_id, l.observed_at,
               {drawdown}, {drawdown}, 'critical',
               json_object('tvl_usd', l.tvl_usd, 'peak_tvl_usd', p.peak_tvl,
                           'peak_at', p.peak_at,
                           'drop_pct', round(100 * (1 - l.tvl_usd / nullif(p.peak_tvl, 0)), 3),
                           'window_h', {rules.drawdown_window_h!r},
                           'threshold_pct', {rules.drawdown_pct!r})::VARCHAR
        FROM latest AS l LEFT JOIN prior AS p USING (source, pool_id)
        """,
        {"spike": windows["spike"], "drawdown": windows["drawdown"]},
    )
    con.execute(
        f"""
        INSERT INTO alert_state
        WITH latest AS (SELECT * FROM alert_hist WHERE back = 1 AND level = 'product'),
        runs AS (
            SELECT h.source, h.pool_id, count(*) AS polls, count(h.apy_pct) AS polls_apy,
                   min(h.apy_pct) AS lo, max(h.apy_pct) AS hi, min(h.observed_at) AS since_at
            FROM alert_hist AS h JOIN latest AS l USING (source, pool_id)
            WHERE h.back <= {rules.stuck_polls:d} AND h.observed_at >= l.observed_at - $stuck
            GROUP BY h.source, h.pool_id),
        held AS (
            SELECT r.*, l.product_id, l.observed_at AS last_at
            FROM runs AS r JOIN latest AS l USING (source, pool_id)
            WHERE r.polls = {rules.stuck_polls:d} AND r.polls_apy = r.polls AND r.lo = r.hi),
        spans AS (SELECT source, min(since_at) AS lo, max(last_at) AS hi FROM held GROUP BY source),
        moving AS (
            SELECT o.source, o.pool_id
            FROM observations AS o JOIN spans AS w
              ON o.source = w.source AND o.observed_at BETWEEN w.lo AND w.hi
            WHERE o.level = 'product'
              AND NOT EXISTS (SELECT 1 FROM held AS x
                              WHERE x.source = o.source AND x.pool_id = o.pool_id)
            GROUP BY o.source, o.pool_id
            HAVING count(DISTINCT o.apy_pct) > 1),
        changed AS (SELECT source, count(*) AS pools FROM moving GROUP BY source)
        SELECT 'apy_stuck', l.source, l.pool_id, l.product_id, l.observed_at,
               h.pool_id IS NOT NULL AND coalesce(c.pools, 0) > 0, h.pool_id IS NOT NULL,
               'warning',
               json_object('apy_pct', l.apy_pct, 'polls', h.polls, 'since', h.since_at,
                           'zero', h.lo = 0, 'other_pools_changed', coalesce(c.pools, 0),
                           'threshold_polls', {rules.stuck_polls:d})::VARCHAR
        FROM latest AS l LEFT JOIN held AS h USING (source, pool_id)
        LEFT JOIN changed AS c ON c.source = l.source
        """,
        {"stuck": windows["stuck"]},
    )
    _disagreement_states(con, rules, oldest)


def _disagreement_states(
    con: duckdb.DuckDBPyConnection, rules: AlertSettings, oldest: datetime
) -> None:
    """First-party vs reference APY, in the newest crosscheck hour of each batch product."""
    con.execute(
        """
        INSERT INTO alert_state
        WITH products AS (
            SELECT DISTINCT product_id FROM alert_hist
            WHERE back = 1 AND level = 'product' AND product_id IS NOT NULL),
        c AS (
            SELECT * FROM crosscheck
            WHERE product_id IN (SELECT product_id FROM products) AND hour >= $since),
        last AS (SELECT product_id, max(hour) AS hour FROM c GROUP BY product_id),
        now_rows AS (SELECT c.* FROM c JOIN last USING (product_id, hour)),
        ref AS (SELECT * FROM now_rows WHERE source = $reference),
        pairs AS (
            SELECT f.source, f.product_id, f.pool_id, f.hour, f.apy_pct,
                   greatest(f.observed_at, r.observed_at) AS moment,
                   r.apy_pct AS reference_apy, r.pool_id AS reference_pool,
                   abs(f.apy_pct - r.apy_pct) AS gap
            FROM now_rows AS f JOIN ref AS r USING (product_id, hour)
            WHERE f.source <> $reference)
        SELECT 'disagreement', source, NULL, product_id, moment, gap > $pp, gap > $pp, 'info',
               json_object('apy_pct', apy_pct, 'pool_id', pool_id, 'reference', $reference,
                           'reference_apy_pct', reference_apy, 'reference_pool_id', reference_pool,
                           'gap_pp', round(gap, 4), 'hour', hour, 'threshold_pp', $pp)::VARCHAR
        FROM pairs WHERE gap IS NOT NULL
        """,
        {
            "since": oldest - timedelta(hours=25),
            "reference": rules.disagreement_reference,
            "pp": rules.disagreement_pp,
        },
    )


def _stale_states(
    con: duckdb.DuckDBPyConnection, rules: AlertSettings, sources: Sequence[str], now: datetime
) -> None:
    """Each enabled source's freshness; a source no longer enabled ends its stale alert."""
    con.execute(
        """
        INSERT INTO alert_state
        WITH named AS (
            SELECT unnest($sources::VARCHAR[]) AS source, true AS enabled
            UNION ALL
            SELECT DISTINCT source, false FROM alerts
            WHERE kind = 'stale_source' AND cleared_at IS NULL
              AND NOT list_contains($sources::VARCHAR[], source)),
        f AS (
            SELECT source, max(finished_at) FILTER (WHERE ok) AS last_ok,
                   min(finished_at) AS first_fetch,
                   count(*) FILTER (WHERE NOT ok) AS failed,
                   arg_max(error, finished_at) FILTER (WHERE NOT ok) AS last_error
            FROM fetches GROUP BY source),
        s AS (
            SELECT n.source, n.enabled, f.last_ok, f.first_fetch, f.last_error,
                   coalesce(n.enabled AND coalesce(f.last_ok, f.first_fetch) < $now - $stale,
                            false) AS stale
            FROM named AS n LEFT JOIN f USING (source))
        SELECT 'stale_source', source, NULL, NULL,
               CASE WHEN stale THEN coalesce(last_ok, first_fetch) + $stale
                    ELSE coalesce(last_ok, $now) END,
               stale, stale, 'warning',
               json_object('last_ok_fetch', last_ok, 'first_fetch', first_fetch,
                           'last_error', last_error, 'enabled', enabled,
                           'threshold_h', $hours)::VARCHAR
        FROM s
        """,
        {
            "sources": list(sources),
            "now": now,
            "stale": _hours(rules.stale_after_h),
            "hours": rules.stale_after_h,
        },
    )


def _apply(con: duckdb.DuckDBPyConnection, now: datetime) -> list[Alert]:
    """Open what fires with no alert open, clear open alerts whose condition ended."""
    key = _KEY.format(a="a", s="s")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE alert_open AS
        SELECT DISTINCT ON (kind, source, pool_id, product_id)
               md5(concat_ws('|', kind, source, coalesce(pool_id, ''), coalesce(product_id, ''),
                             strftime(moment, '%Y-%m-%dT%H:%M:%S.%f'))) AS alert_id,
               kind, source, pool_id, product_id, moment AS opened_at, evidence, severity,
               NULL::TIMESTAMPTZ AS cleared_at, $now::TIMESTAMPTZ AS detected_at
        FROM alert_state AS s
        WHERE fires AND NOT EXISTS (SELECT 1 FROM alerts AS a WHERE a.cleared_at IS NULL AND {key})
        """,
        {"now": now},
    )
    con.execute(
        """
        DELETE FROM alert_open AS s
        WHERE EXISTS (SELECT 1 FROM alerts AS a WHERE a.alert_id = s.alert_id)
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE alert_clear AS
        SELECT DISTINCT ON (a.alert_id) a.alert_id, greatest(s.moment, a.opened_at) AS cleared_at
        FROM alerts AS a JOIN alert_state AS s ON {key}
        WHERE a.cleared_at IS NULL AND NOT s.holds
        """
    )
    columns = ", ".join(COLUMNS)
    opened = con.execute(f"SELECT {columns} FROM alert_open ORDER BY opened_at").fetchall()
    cleared = con.execute(
        f"""
        SELECT {", ".join(f"a.{c}" if c != "cleared_at" else "c.cleared_at" for c in COLUMNS)}
        FROM alerts AS a JOIN alert_clear AS c USING (alert_id) ORDER BY c.cleared_at
        """
    ).fetchall()
    if opened:
        con.execute("INSERT INTO alerts SELECT * FROM alert_open")
    if cleared:
        con.execute(
            """
            UPDATE alerts SET cleared_at = c.cleared_at FROM alert_clear AS c
            WHERE alerts.alert_id = c.alert_id
            """
        )
    return [_alert(row, "opened") for row in opened] + [_alert(row, "cleared") for row in cleared]


def _alert(row: tuple[Any, ...], event: Event) -> Alert:
    (alert_id, kind, source, pool_id, product_id, opened_at, evidence, severity, cleared_at,
     detected_at) = row  # fmt: skip
    return Alert(
        alert_id=alert_id,
        kind=kind,
        source=source,
        pool_id=pool_id,
        product_id=product_id,
        opened_at=opened_at.astimezone(UTC),
        evidence=evidence,
        severity=severity,
        cleared_at=cleared_at.astimezone(UTC) if cleared_at is not None else None,
        detected_at=detected_at.astimezone(UTC),
        event=event,
    )


@dataclass(frozen=True, slots=True)
class Alerting:
    """What the sink evaluates after its commits: the rules, and the sources it expects
    fetches of (the stale check)."""

    rules: AlertSettings
    sources: tuple[str, ...]

    def evaluate(self, writer: LakeWriter, pools: pa.Table | None = None) -> Alerts:
        """Open and clear alerts for ``pools`` (none: the stale check only), in a write
        transaction of their own; the alerts opened or cleared."""
        now = datetime.now(UTC)
        scope = pools if pools is not None else POOLS_SCHEMA.empty_table()
        return Alerts(
            writer.committed(lambda con: evaluate(con, self.rules, scope, self.sources, now))
        )
