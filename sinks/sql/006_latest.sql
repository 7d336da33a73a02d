-- yieldstream store, version 6: the newest observation of each pool, kept.

-- One row per (source, pool_id): the row of observations with the newest
-- observed_at, and the oldest observed_at stored for the pool (or earlier, once a
-- replay dropped a pool's oldest rows: a bound, never later than the oldest). The writer keeps it
-- in the transaction that stores the observations (sinks/latest.py), so reading
-- the latest figures costs what the number of pools costs, not the history's size;
-- and a commit checks for stored keys only where the pool's stored range says a
-- row may exist.
CREATE TABLE IF NOT EXISTS latest_observations (
    source            VARCHAR NOT NULL,
    pool_id           VARCHAR NOT NULL,
    observed_at       TIMESTAMPTZ NOT NULL,
    protocol          VARCHAR NOT NULL,
    chain             VARCHAR NOT NULL,
    symbol            VARCHAR NOT NULL,
    strategy          VARCHAR NOT NULL,
    venue             VARCHAR NOT NULL,
    category          VARCHAR,
    apy_pct           DOUBLE,
    apy_base_pct      DOUBLE,
    apy_reward_pct    DOUBLE,
    tvl_usd           DOUBLE,
    stablecoin        BOOLEAN,
    il_risk           BOOLEAN,
    exposure          VARCHAR,
    outlier           BOOLEAN,
    pool_meta         VARCHAR,
    underlying_tokens VARCHAR[],
    reward_tokens     VARCHAR[],
    batch_id          VARCHAR NOT NULL,
    stored_at         TIMESTAMPTZ NOT NULL,
    level             VARCHAR,
    product_id        VARCHAR,
    strategy_guessed  BOOLEAN,
    apy_gross_pct     DOUBLE,
    apy_borrow_pct    DOUBLE,
    utilization_pct   DOUBLE,
    tvl_tokens        DOUBLE,
    tvl_token         VARCHAR,
    first_observed_at TIMESTAMPTZ NOT NULL  -- at or before the pool's oldest observation
);

-- A store that has observations already: its latest rows, once.
INSERT INTO latest_observations BY NAME
SELECT *, min(observed_at) OVER pool AS first_observed_at
FROM observations
WINDOW pool AS (PARTITION BY source, pool_id)
QUALIFY row_number() OVER (PARTITION BY source, pool_id ORDER BY observed_at DESC) = 1;
