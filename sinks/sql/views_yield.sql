-- What the figures mean: real yield net of inflation, and strategies side by side.
-- Run after views.sql and views_stats.sql (sinks/lake.py, in name order).

-- Which token's supply dilutes a product held in it, by the symbol sources give the
-- product: liquid staking tokens are diluted by the staked token's inflation.
CREATE OR REPLACE VIEW staking_tokens AS
SELECT * FROM (VALUES
    ('ETH', 'ETH'), ('WETH', 'ETH'), ('STETH', 'ETH'), ('WSTETH', 'ETH'), ('RETH', 'ETH'),
    ('CBETH', 'ETH'), ('SFRXETH', 'ETH'), ('FRXETH', 'ETH'), ('EETH', 'ETH'), ('WEETH', 'ETH'),
    ('WBETH', 'ETH'), ('METH', 'ETH'), ('OSETH', 'ETH'), ('ETHX', 'ETH'), ('SWETH', 'ETH'),
    ('SOL', 'SOL'), ('WSOL', 'SOL'), ('MSOL', 'SOL'), ('JITOSOL', 'SOL'), ('BSOL', 'SOL'),
    ('JUPSOL', 'SOL'), ('INF', 'SOL'), ('BNSOL', 'SOL'),
    ('ATOM', 'ATOM'), ('STATOM', 'ATOM'), ('AKT', 'AKT'), ('TIA', 'TIA'), ('STTIA', 'TIA')
) AS t(symbol, token);

-- The asset a product's APY is earned on, for comparing strategies per asset: the
-- staking tokens as their token, wrapped and bridged forms as the asset. A symbol
-- not listed (an LP pair, a vault share) stands for itself.
CREATE OR REPLACE VIEW assets AS
SELECT symbol, token AS asset FROM staking_tokens
UNION ALL
SELECT * FROM (VALUES
    ('USDC', 'USDC'), ('USDC.E', 'USDC'), ('USDBC', 'USDC'), ('USDT', 'USDT'), ('USDT0', 'USDT'),
    ('USD', 'USD'), ('DAI', 'DAI'), ('USDS', 'USDS'), ('SUSDS', 'USDS'),
    ('BTC', 'BTC'), ('WBTC', 'BTC'), ('CBBTC', 'BTC'), ('TBTC', 'BTC'), ('BTCB', 'BTC')
) AS t(symbol, asset);

-- Each network's token inflation over time, as its source gives it: the annual
-- supply growth in percent (negative when more is burnt than issued), the share of
-- the supply staked, and the other inputs in words.
CREATE OR REPLACE VIEW network_inflation AS
SELECT source, protocol AS network, chain, symbol AS token, observed_at,
       apy_pct AS inflation_pct, utilization_pct AS staked_pct, tvl_tokens AS staked_tokens,
       pool_meta AS inputs
FROM observations
WHERE level = 'network';

-- Every staking observation with its real APY: net of the inflation of the token
-- whose supply dilutes it, ((1 + apy) / (1 + inflation) - 1) in percent. The
-- inflation used is the figure nearest in time within 30 days: the newest at or
-- before the observation, else the first after it (a network's inflation moves by
-- the epoch, not the hour; inflation_at says which was taken). Without one,
-- real_apy_pct is NULL and no_real_yield says why; never a made-up zero.
CREATE OR REPLACE VIEW real_yields AS
WITH staking AS (
    SELECT o.source, o.pool_id, o.product_id, o.observed_at, o.protocol, o.chain, o.symbol,
           o.venue, o.apy_pct, t.token
    FROM observations AS o
    LEFT JOIN staking_tokens AS t ON upper(o.symbol) = t.symbol
    WHERE o.level = 'product' AND o.strategy = 'staking'),
inflation AS (
    SELECT token, observed_at, inflation_pct, source FROM network_inflation),
nearest AS (
    SELECT s.*,
           b.observed_at AS before_at, b.inflation_pct AS before_pct, b.source AS before_source,
           a.after_at, a.inflation_pct AS after_pct, a.source AS after_source
    FROM staking AS s
    ASOF LEFT JOIN inflation AS b ON s.token = b.token AND s.observed_at >= b.observed_at
    ASOF LEFT JOIN (SELECT *, observed_at AS after_at FROM inflation) AS a
      ON s.token = a.token AND s.observed_at <= a.after_at),
chosen AS (
    SELECT *,
           CASE WHEN before_at > observed_at - INTERVAL 30 DAYS THEN 'before'
                WHEN after_at < observed_at + INTERVAL 30 DAYS THEN 'after'
           END AS side
    FROM nearest),
used AS (
    SELECT *,
           CASE side WHEN 'before' THEN before_pct WHEN 'after' THEN after_pct END
               AS inflation_pct,
           CASE side WHEN 'before' THEN before_source WHEN 'after' THEN after_source END
               AS inflation_source,
           CASE side WHEN 'before' THEN before_at WHEN 'after' THEN after_at END AS inflation_at
    FROM chosen)
SELECT source, pool_id, product_id, observed_at, protocol, chain, symbol, venue, token,
       apy_pct, inflation_pct, inflation_source, inflation_at,
       ((1 + apy_pct / 100) / (1 + inflation_pct / 100) - 1) * 100 AS real_apy_pct,
       CASE
           WHEN token IS NULL THEN 'no token known to dilute ' || symbol
           WHEN before_at IS NULL AND after_at IS NULL THEN 'no ' || token || ' inflation figure'
           WHEN side IS NULL THEN 'no ' || token || ' inflation figure within 30 days'
           WHEN apy_pct IS NULL THEN 'no APY'
       END AS no_real_yield
FROM used;

-- Strategies side by side, per asset and chain (and per asset over all chains,
-- chain '(all chains)'): staking, lending and farming, DeFi and CeFi, from each
-- product's newest figure. APYs TVL-weighted (over the products with both) and
-- median; the real APY where an inflation figure applies; the median volatility
-- (pool_stats.sigma, annualised, percent); products and their total TVL.
CREATE OR REPLACE VIEW strategy_compare AS
WITH latest AS (
    SELECT l.source, l.pool_id, l.chain, l.strategy, l.venue, l.apy_pct, l.tvl_usd,
           coalesce(a.asset, upper(l.symbol)) AS asset
    FROM latest_yields AS l
    LEFT JOIN assets AS a ON upper(l.symbol) = a.symbol),
real AS (
    SELECT source, pool_id, arg_max(real_apy_pct, observed_at) AS real_apy_pct
    FROM real_yields GROUP BY source, pool_id),
rows AS (
    SELECT l.*, r.real_apy_pct, s.sigma
    FROM latest AS l
    LEFT JOIN real AS r USING (source, pool_id)
    LEFT JOIN pool_stats AS s USING (source, pool_id))
SELECT asset, coalesce(chain, '(all chains)') AS chain, strategy, venue,
       count(*) AS products,
       sum(tvl_usd) AS tvl_usd,
       sum(apy_pct * tvl_usd) / nullif(sum(tvl_usd) FILTER (WHERE apy_pct IS NOT NULL), 0)
           AS apy_tvl_weighted_pct,
       median(apy_pct) AS apy_median_pct,
       sum(real_apy_pct * tvl_usd)
           / nullif(sum(tvl_usd) FILTER (WHERE real_apy_pct IS NOT NULL), 0)
           AS real_apy_tvl_weighted_pct,
       median(real_apy_pct) AS real_apy_median_pct,
       median(sigma) AS sigma_median_pct
FROM rows
GROUP BY GROUPING SETS ((asset, chain, strategy, venue), (asset, strategy, venue));
