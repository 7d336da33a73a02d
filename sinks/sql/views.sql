-- Analyst views, created by a writer when they differ from this file (sinks/lake.py).

-- The newest observation of every product (protocol totals are in protocol_tvl).
CREATE OR REPLACE VIEW latest_yields AS
SELECT source, pool_id, product_id, observed_at, protocol, chain, symbol, strategy, venue,
       category, apy_pct, apy_base_pct, apy_reward_pct, tvl_usd, stablecoin, il_risk,
       exposure, outlier, pool_meta, underlying_tokens, reward_tokens, strategy_guessed,
       apy_gross_pct, apy_borrow_pct, utilization_pct, tvl_tokens, tvl_token
FROM latest_observations
WHERE level = 'product';

-- Every observation of every product, ordered per pool, with the change since the
-- previous one.
CREATE OR REPLACE VIEW yield_history AS
SELECT source, pool_id, product_id, observed_at, protocol, chain, symbol, strategy, venue,
       apy_pct, apy_base_pct, apy_reward_pct, tvl_usd, apy_borrow_pct, utilization_pct,
       tvl_tokens, tvl_token,
       apy_pct - lag(apy_pct) OVER w AS apy_change_pct,
       tvl_usd - lag(tvl_usd) OVER w AS tvl_change_usd
FROM observations
WHERE level = 'product'
WINDOW w AS (PARTITION BY source, pool_id ORDER BY observed_at);

-- Protocol-level TVL: each protocol's total (scope 'total', chain as the source
-- names it) and each chain's part of it (scope 'chain'), over time. Sum the chain
-- rows or take the total, never both.
CREATE OR REPLACE VIEW protocol_tvl AS
SELECT source, protocol, chain, CASE level WHEN 'protocol' THEN 'total' ELSE 'chain' END AS scope,
       observed_at, tvl_usd, category, strategy, pool_meta AS name, symbol, pool_id
FROM observations
WHERE level IN ('protocol', 'protocol_chain');

-- One product from several sources, hour by hour: each source's figure for the hour
-- (its newest observation of the product within the 24 hours up to the hour's end,
-- so a source publishing daily meets one publishing hourly), and the spread between
-- the sources. Only products that more than one source names. With several pools of
-- one source for a product, the one with the largest TVL stands for the source.
CREATE OR REPLACE VIEW crosscheck AS
WITH products AS (
    SELECT source, pool_id, product_id, observed_at, time_bucket(INTERVAL 1 HOUR, observed_at) AS hour,
           apy_pct, tvl_usd
    FROM observations
    WHERE level = 'product' AND product_id IN (
        SELECT product_id FROM observations WHERE level = 'product'
        GROUP BY product_id HAVING count(DISTINCT source) > 1)
    QUALIFY row_number() OVER (
        PARTITION BY source, product_id, time_bucket(INTERVAL 1 HOUR, observed_at)
        ORDER BY tvl_usd DESC NULLS LAST, observed_at DESC, pool_id) = 1),
grid AS (
    SELECT h.product_id, h.hour, s.source
    FROM (SELECT DISTINCT product_id, hour FROM products) AS h
    JOIN (SELECT DISTINCT product_id, source FROM products) AS s USING (product_id)),
figures AS (
    SELECT g.product_id, g.hour, g.source, p.pool_id, p.observed_at, p.apy_pct, p.tvl_usd
    FROM grid AS g
    ASOF JOIN products AS p
      ON p.product_id = g.product_id AND p.source = g.source AND p.hour <= g.hour
    WHERE p.observed_at > g.hour + INTERVAL 1 HOUR - INTERVAL 24 HOURS)
SELECT product_id, hour, source, pool_id, observed_at, apy_pct, tvl_usd,
       count(*) OVER h AS sources,
       -- percentage points between the highest and lowest APY; NULL unless two give one
       CASE WHEN count(apy_pct) OVER h > 1 THEN max(apy_pct) OVER h - min(apy_pct) OVER h END
           AS apy_gap_pct,
       -- the TVL spread in percent of the largest TVL; NULL unless two give one
       CASE WHEN count(tvl_usd) OVER h > 1
            THEN 100 * (max(tvl_usd) OVER h - min(tvl_usd) OVER h) / nullif(max(tvl_usd) OVER h, 0)
       END AS tvl_gap_pct
FROM figures
WINDOW h AS (PARTITION BY product_id, hour)
QUALIFY count(*) OVER h > 1;
