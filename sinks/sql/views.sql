-- Analyst views, created by a writer when they differ from this file (sinks/lake.py).

-- The newest observation of every pool.
CREATE OR REPLACE VIEW latest_yields AS
SELECT source, pool_id, observed_at, protocol, chain, symbol, strategy, venue, category,
       apy_pct, apy_base_pct, apy_reward_pct, tvl_usd, stablecoin, il_risk, exposure,
       outlier, pool_meta, underlying_tokens, reward_tokens
FROM observations
QUALIFY row_number() OVER (PARTITION BY source, pool_id ORDER BY observed_at DESC) = 1;

-- Every observation, ordered per pool, with the change since the previous one.
CREATE OR REPLACE VIEW yield_history AS
SELECT source, pool_id, observed_at, protocol, chain, symbol, strategy, venue,
       apy_pct, apy_base_pct, apy_reward_pct, tvl_usd,
       apy_pct - lag(apy_pct) OVER w AS apy_change_pct,
       tvl_usd - lag(tvl_usd) OVER w AS tvl_change_usd
FROM observations
WINDOW w AS (PARTITION BY source, pool_id ORDER BY observed_at);
