-- yieldstream store, version 3: products apart from protocol totals.

-- What a row measures: 'product' (a way of earning: pool, reserve, staking token),
-- 'protocol' (a protocol's total TVL) or 'protocol_chain' (one chain's part of it).
ALTER TABLE observations ADD COLUMN IF NOT EXISTS level VARCHAR DEFAULT 'product';
-- The product's identity across sources (transforms/products.py); NULL for protocol rows.
ALTER TABLE observations ADD COLUMN IF NOT EXISTS product_id VARCHAR;
-- True when the strategy was guessed from the pool's own fields (category unknown).
ALTER TABLE observations ADD COLUMN IF NOT EXISTS strategy_guessed BOOLEAN;

-- The rows stored before version 3 get their level and product id from
-- sinks/upgrades.py, in this transaction.
