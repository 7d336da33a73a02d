-- yieldstream store, version 1. Natural keys are enforced by the sink (anti-join),
-- since DuckLake has no primary keys.

-- One row per pool per moment; key (source, pool_id, observed_at).
CREATE TABLE IF NOT EXISTS observations (
    source            VARCHAR NOT NULL,
    pool_id           VARCHAR NOT NULL,
    observed_at       TIMESTAMPTZ NOT NULL,
    protocol          VARCHAR NOT NULL,
    chain             VARCHAR NOT NULL,
    symbol            VARCHAR NOT NULL,
    strategy          VARCHAR NOT NULL,   -- staking | lending | farming | other
    venue             VARCHAR NOT NULL,   -- defi | cefi
    category          VARCHAR,            -- upstream protocol category
    apy_pct           DOUBLE,             -- percent: 3.1 means 3.1 %
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
    stored_at         TIMESTAMPTZ NOT NULL
);
ALTER TABLE observations SET PARTITIONED BY (year(observed_at), month(observed_at));

-- Every fetched upstream item, unmodified: the archive replays run from.
CREATE TABLE IF NOT EXISTS raw_records (
    raw_id      VARCHAR NOT NULL,
    batch_id    VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,
    endpoint    VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,   -- snapshot | history
    native_id   VARCHAR NOT NULL,
    fetched_at  TIMESTAMPTZ NOT NULL,
    run_id      VARCHAR NOT NULL,
    payload     VARCHAR NOT NULL    -- the item's JSON text
);
ALTER TABLE raw_records SET PARTITIONED BY (year(fetched_at), month(fetched_at));

-- Records (or whole responses) that did not become observations, with the reason.
CREATE TABLE IF NOT EXISTS rejections (
    raw_id         VARCHAR NOT NULL,
    batch_id       VARCHAR,
    source         VARCHAR NOT NULL,
    endpoint       VARCHAR NOT NULL,
    stage          VARCHAR NOT NULL,   -- fetch | decode | validate
    reason         VARCHAR NOT NULL,
    native_id      VARCHAR,
    payload        BLOB NOT NULL,      -- what came (a prefix for whole responses)
    payload_sha256 VARCHAR NOT NULL,
    rejected_at    TIMESTAMPTZ NOT NULL
);

-- Batch journal: 'archived' once the raw records are durable, 'stored' once their
-- observations and rejections are. archived without stored = to finish on restart.
CREATE TABLE IF NOT EXISTS batches (
    batch_id     VARCHAR NOT NULL,
    stage        VARCHAR NOT NULL,   -- archived | stored
    source       VARCHAR NOT NULL,
    records      BIGINT NOT NULL,
    observations BIGINT,
    duplicates   BIGINT,
    rejections   BIGINT,
    journaled_at TIMESTAMPTZ NOT NULL
);

-- One row per fetch run of a source, for `yieldstream sources`.
CREATE TABLE IF NOT EXISTS fetches (
    source      VARCHAR NOT NULL,
    run_id      VARCHAR NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    ok          BOOLEAN NOT NULL,
    records     BIGINT NOT NULL,
    error       VARCHAR
);
