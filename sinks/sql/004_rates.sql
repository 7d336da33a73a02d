-- yieldstream store, version 4: the other figures of CeFi desks and lending markets.

-- The saver's APY before the venue's fee (apy_pct is what the saver keeps).
ALTER TABLE observations ADD COLUMN IF NOT EXISTS apy_gross_pct DOUBLE;
-- A lending market's borrow APY and utilisation (percent of the supply lent out).
ALTER TABLE observations ADD COLUMN IF NOT EXISTS apy_borrow_pct DOUBLE;
ALTER TABLE observations ADD COLUMN IF NOT EXISTS utilization_pct DOUBLE;
-- TVL in whole tokens of tvl_token, where a source publishes no USD figure.
ALTER TABLE observations ADD COLUMN IF NOT EXISTS tvl_tokens DOUBLE;
ALTER TABLE observations ADD COLUMN IF NOT EXISTS tvl_token VARCHAR;
