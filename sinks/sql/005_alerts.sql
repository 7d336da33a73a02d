-- yieldstream store, version 5: alerts, kept (never dropped).

-- One row per occurrence of a condition (sinks/alerts.py). At most one open row
-- (cleared_at NULL) per (kind, source, pool_id, product_id); the writer keeps that
-- rule, since DuckLake has no constraints. A condition that comes back later opens
-- a new row.
CREATE TABLE IF NOT EXISTS alerts (
    alert_id    VARCHAR NOT NULL,      -- md5 of the key and opened_at: one row per occurrence
    kind        VARCHAR NOT NULL,      -- apy_spike | apy_stuck | tvl_drawdown | stale_source | disagreement
    source      VARCHAR NOT NULL,
    pool_id     VARCHAR,               -- NULL for stale_source and disagreement
    product_id  VARCHAR,               -- NULL for stale_source and protocol rows
    opened_at   TIMESTAMPTZ NOT NULL,  -- the data time it fired (an observation, a fetch)
    evidence    VARCHAR NOT NULL,      -- JSON object: the figures that triggered it
    severity    VARCHAR NOT NULL,      -- info | warning | critical
    cleared_at  TIMESTAMPTZ,           -- the data time it stopped holding; NULL while open
    detected_at TIMESTAMPTZ NOT NULL   -- when the writer opened it (wall clock)
);
