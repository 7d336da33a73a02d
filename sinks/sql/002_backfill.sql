-- yieldstream store, version 2: backfill checkpoints.

-- One row per entity (pool, protocol) per backfill attempt, written in the same
-- transaction as the entity's rows. An entity is complete for a window once a 'done'
-- row's window holds it: `yieldstream backfill` skips it when run again.
CREATE TABLE IF NOT EXISTS backfill_checkpoints (
    source       VARCHAR NOT NULL,
    entity       VARCHAR NOT NULL,   -- pool id, protocol slug, ...
    window_since TIMESTAMPTZ,        -- the history asked for, from (NULL: all of it)
    window_until TIMESTAMPTZ NOT NULL, -- ... up to, excluded
    status       VARCHAR NOT NULL,   -- done | failed
    points       BIGINT NOT NULL,    -- history records fetched in the window
    reason       VARCHAR,            -- why it failed
    batch_id     VARCHAR NOT NULL,
    run_id       VARCHAR NOT NULL,
    finished_at  TIMESTAMPTZ NOT NULL
);
