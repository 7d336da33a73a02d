-- pool_stats: DefiLlama's derived fields (mu, sigma, outlier, apyMean30d, apyPct*D),
-- computed from this store's own history, one row per (source, pool_id) of
-- the products. Checked against DefiLlama/yield-server: src/handlers/triggerEnrichment.js
-- (mu, sigma, outlier, apyPct*D, apyMean30d), src/utils/welford.js (count, the running
-- product and M2), src/handlers/triggerStat.js (one sample per day, at midnight) and
-- the getYieldOffset / getYieldAvg30d queries; tests/sinks/test_pool_stats.py recomputes
-- every column in Python.
--
-- Where this view departs from DefiLlama on purpose:
-- * the moments are relative to the pool's newest observation, not to NOW(), so the view
--   answers the same over a store that is not being polled;
-- * no TVL >= $10k, "updated within 7 days" or 0 <= apy filter: every product is
--   described, including negative APYs (> -100 %, and -100 % itself gives mu = -100);
-- * a UTC day with no observation is no sample: upstream's midnight job samples every
--   pool listed (updated within 7 days), so a pool's stale APY counts again on the days
--   it was not updated; here a day the store did not see is not made up;
-- * count = 0 (a pool with no APY yet): mu and sigma NULL, outlier false (upstream every
--   listed pool has an APY, so it has no such case); figures are not rounded to 5 dp.
--
-- Days are exact 24 h and the UTC day is computed from epoch microseconds, so the
-- answer does not depend on the session's TimeZone.
CREATE OR REPLACE VIEW pool_stats AS
WITH obs AS (
    SELECT source, pool_id, product_id, observed_at, apy_pct, tvl_usd,
           epoch_us(observed_at) AS t_us
    FROM observations
    WHERE level = 'product'),
-- One pass over the history, by pool and UTC day: the day's newest observation, and its
-- newest APY. The day sample is the last APY of each UTC day (triggerStat.js runs at
-- midnight on the latest enriched rows; triggerEnrichment.js adds the current APY on
-- top of the stored daily stats, which makes today's sample the newest APY).
days AS (
    SELECT source, pool_id,
           max(t_us) AS last_us,
           arg_max({'observed_at': observed_at, 'product_id': product_id,
                    'apy_pct': apy_pct, 'tvl_usd': tvl_usd}, t_us) AS last,
           arg_max(apy_pct, t_us) FILTER (apy_pct IS NOT NULL) AS day_apy
    FROM obs
    GROUP BY source, pool_id, t_us // 86400000000),
-- Per pool: the newest observation, and the moments of the daily returns
-- r = (1 + apy/100)^(1/365) - 1 (welford.js): count = days with an APY;
-- mu = (prod(1 + r)^(365/count) - 1) * 100, the product taken directly as welford.js
-- does (exp(sum(ln(1 + r))) failed the whole view on an APY of -100 %: ln(0));
-- sigma = sqrt(M2_r / (count - 1) * 365) * 100, i.e. var_samp(r), and 0 below two days.
moments AS (
    SELECT source, pool_id, max(last_us) AS last_us, arg_max(last, last_us) AS last,
           count(r) AS count,
           CASE WHEN count(r) > 0 THEN (pow(product(1 + r), 365 / count(r)) - 1) * 100 END AS mu,
           CASE WHEN count(r) > 1 THEN sqrt(var_samp(r) * 365) * 100
                WHEN count(r) = 1 THEN 0 END AS sigma
    FROM (SELECT *, pow(1 + day_apy / 100, 1 / 365) - 1 AS r FROM days)
    GROUP BY source, pool_id),
-- The last 30 days and 3 hours of each pool, against its newest moment (a hash join on
-- one row per pool; no sort, no ASOF join):
-- * apy_mean_30d: the mean APY of the observations at or after newest - 30 days
--   (getYieldAvg30d: timestamp >= NOW() - INTERVAL '30 DAY', every row, not daily);
-- * the values nearest to newest - 1/7/30 days within +-3 h, bounds included
--   (getYieldOffset: timestamp BETWEEN offset - 3 h AND offset + 3 h, ORDER BY
--   abs_delta); upstream every row has an APY, so the nearest observation *with* an
--   APY (for APY changes) or with a TVL (for TVL changes) counts; of two equally near,
--   the earlier.
-- (observations is read again here rather than through obs: with obs used twice DuckDB
-- materialised it and built the join's hash table on its 10M rows, 2.1 GiB at 10M rows
-- against 1.3 GiB now, bench/pool_stats.py.)
recent AS (
    SELECT source, pool_id, o.observed_at, o.apy_pct, o.tvl_usd,
           m.last_us - o.t_us AS age_us,
           abs(m.last_us - o.t_us - 86400000000) AS d1,
           abs(m.last_us - o.t_us - 7 * 86400000000) AS d7,
           abs(m.last_us - o.t_us - 30 * 86400000000) AS d30
    FROM (SELECT source, pool_id, observed_at, apy_pct, tvl_usd, epoch_us(observed_at) AS t_us
          FROM observations
          WHERE level = 'product') AS o
    JOIN moments AS m USING (source, pool_id)
    WHERE o.t_us >= m.last_us - 30 * 86400000000 - 10800000000),
past AS (
    SELECT source, pool_id,
           avg(apy_pct) FILTER (age_us <= 30 * 86400000000) AS apy_mean_30d,
           arg_min(apy_pct, {'d': d1, 't': observed_at})
               FILTER (d1 <= 10800000000 AND apy_pct IS NOT NULL) AS apy_1d,
           arg_min(apy_pct, {'d': d7, 't': observed_at})
               FILTER (d7 <= 10800000000 AND apy_pct IS NOT NULL) AS apy_7d,
           arg_min(apy_pct, {'d': d30, 't': observed_at})
               FILTER (d30 <= 10800000000 AND apy_pct IS NOT NULL) AS apy_30d,
           arg_min(tvl_usd, {'d': d1, 't': observed_at})
               FILTER (d1 <= 10800000000 AND tvl_usd IS NOT NULL) AS tvl_1d,
           arg_min(tvl_usd, {'d': d7, 't': observed_at})
               FILTER (d7 <= 10800000000 AND tvl_usd IS NOT NULL) AS tvl_7d,
           arg_min(tvl_usd, {'d': d30, 't': observed_at})
               FILTER (d30 <= 10800000000 AND tvl_usd IS NOT NULL) AS tvl_30d
    FROM recent
    GROUP BY source, pool_id),
-- Outlier bounds across all pools, per column over its finite values:
-- [max(0, median - 1.5 IQR), median + 1.5 IQR], as triggerEnrichment.js (the median,
-- not Tukey's quartile fences, as SOURCES.md says). Its quantiles are simple-statistics'
-- ss.quantile (src/quantile_sorted.js): for n * p not whole, the ceil(n * p)-th smallest;
-- else the mean of the (n * p)-th and the next (R's type 2), not DuckDB's interpolating
-- quantile_cont.
stat_values AS (
    SELECT 'mu' AS stat, mu AS x FROM moments WHERE isfinite(mu)
    UNION ALL
    SELECT 'sigma' AS stat, sigma AS x FROM moments WHERE isfinite(sigma)),
ranked AS (
    SELECT stat, x,
           row_number() OVER (PARTITION BY stat ORDER BY x) AS i,
           count(*) OVER (PARTITION BY stat) AS n
    FROM stat_values),
quartiles AS (
    SELECT stat,
           avg(x) FILTER (i BETWEEN ceil(n * 0.25) AND floor(n * 0.25) + 1) AS q1,
           avg(x) FILTER (i BETWEEN ceil(n * 0.5) AND floor(n * 0.5) + 1) AS median,
           avg(x) FILTER (i BETWEEN ceil(n * 0.75) AND floor(n * 0.75) + 1) AS q3
    FROM ranked
    GROUP BY stat),
bounds AS (
    SELECT any_value(greatest(0, median - 1.5 * (q3 - q1))) FILTER (stat = 'mu') AS mu_lo,
           any_value(median + 1.5 * (q3 - q1)) FILTER (stat = 'mu') AS mu_hi,
           any_value(greatest(0, median - 1.5 * (q3 - q1))) FILTER (stat = 'sigma') AS sigma_lo,
           any_value(median + 1.5 * (q3 - q1)) FILTER (stat = 'sigma') AS sigma_hi
    FROM quartiles)
SELECT m.source, m.pool_id, m.last.product_id AS product_id,
       m.last.observed_at AS last_observed_at, m.last.apy_pct AS apy_pct,
       m.last.tvl_usd AS tvl_usd,
       m.count, m.mu, m.sigma,
       coalesce(m.mu < b.mu_lo OR m.mu > b.mu_hi
                OR m.sigma < b.sigma_lo OR m.sigma > b.sigma_hi, false) AS outlier,
       p.apy_mean_30d,
       -- APY changes in percentage points: the newest observation's APY minus the past
       -- one (NULL without either)
       m.last.apy_pct - p.apy_1d AS apy_change_1d,
       m.last.apy_pct - p.apy_7d AS apy_change_7d,
       m.last.apy_pct - p.apy_30d AS apy_change_30d,
       -- TVL changes in percent of the older TVL (NULL when it was 0)
       100 * (m.last.tvl_usd - p.tvl_1d) / nullif(p.tvl_1d, 0) AS tvl_change_1d_pct,
       100 * (m.last.tvl_usd - p.tvl_7d) / nullif(p.tvl_7d, 0) AS tvl_change_7d_pct,
       100 * (m.last.tvl_usd - p.tvl_30d) / nullif(p.tvl_30d, 0) AS tvl_change_30d_pct
FROM moments AS m
LEFT JOIN past AS p USING (source, pool_id)
CROSS JOIN bounds AS b;
