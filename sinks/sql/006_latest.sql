-- yieldstream store, version 6: the newest observation of each pool, kept.

-- One row per (source, pool_id): the row of observations with the newest
-- observed_at (every column of observations), and the oldest observed_at stored
-- for the pool (or earlier, once a replay dropped a pool's oldest rows: a bound,
-- never later than the oldest). The writer keeps it in the transaction that stores
-- the observations (sinks/latest.py), so reading the latest figures costs what the
-- number of pools costs, not the history's size; and a commit checks for stored
-- keys only where the pool's stored range says a row may exist.
-- Made from observations itself, so it has its columns (and a store that has
-- observations already gets its latest rows, once).
CREATE TABLE IF NOT EXISTS latest_observations AS
SELECT *, min(observed_at) OVER pool AS first_observed_at
FROM observations
WINDOW pool AS (PARTITION BY source, pool_id)
QUALIFY row_number() OVER (PARTITION BY source, pool_id ORDER BY observed_at DESC) = 1;
