"""Peer measurement: the embedded pipeline's job hand-written with DuckDB alone.

What a skilled engineer would write to get the same two tables out of the same
NDJSON file (``<fetched_at ISO>\\t<item JSON>`` lines, :func:`bench.embedded.write_input`)
with nothing but DuckDB, as fast as DuckDB goes:

* the file is read in batches of ``batch_size`` lines (as the pipeline's collector
  hands its records on), each batch split into two Arrow columns (fetch time text,
  item JSON text) and handed to DuckDB by reference (no copy through Python rows);
* **archive**: ``INSERT INTO raw_records SELECT ...`` of the batch: source,
  endpoint, kind, native id (line number), run id, fetch time and the item's JSON
  text, the same information the pipeline's raw archive keeps (not its hashed
  ``raw_id``: the ids themselves are there);
* **observations**: ``INSERT INTO observations SELECT ...`` of the same batch, its
  JSON parsed by DuckDB (``from_json`` with a fixed structure: yyjson, in C, on all
  cores) into the pipeline's observation columns, converted as
  :mod:`transforms.defillama_yields` converts them: APYs stay percent (``apy`` from
  ``apyBase + apyReward`` when it is null and a part is not), the time is the fetch
  time floored to its UTC hour, ``il_risk`` from ``ilRisk = 'yes'``, token lists
  without null or empty entries, ``venue`` ``defi``, ``category`` null (the bench
  has no protocol reference data; nor has the pipeline's run);
* each INSERT commits on its own (auto-commit): the archive of a batch commits
  before its observations, as the pipeline's does; the database is one plain
  DuckDB file, checkpointed at the end (inside the time).

What it does **not** do, that the pipeline does:

* no validation beyond SQL's casts: a figure out of range, a missing pool id, a
  future time or a non-UTC time is stored as it is (or the whole batch fails);
  no rejections table, no reasons;
* no idempotency: a snapshot stored twice is two rows (no natural-key anti-join,
  no batch journal, no recovery of archived-but-unstored batches), and no
  latest-row table;
* ``product_id`` is ``protocol:chain:symbol[:pool_meta]`` lower-cased with runs
  of spaces, ``_`` and ``/`` as ``-`` (:func:`transforms.products.normal`), without
  the alias tables; ``strategy`` is a two-way guess (``farming`` for a multi-exposure
  or IL-risk pool, else ``lending``), not :mod:`transforms.classify`'s rules;
* no DuckLake (catalog, Parquet files, partitions, snapshots, compaction), no
  bus, no transform worker process, no alerts, no metrics or logs.

Run one measurement per process, so that peak RSS is the run's own (see
``python -m bench.embedded``, which alternates it with the pipeline).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

SOURCE = "defillama-yields"

_ITEM = """{
    "pool": "VARCHAR", "chain": "VARCHAR", "project": "VARCHAR", "symbol": "VARCHAR",
    "tvlUsd": "DOUBLE", "apy": "DOUBLE", "apyBase": "DOUBLE", "apyReward": "DOUBLE",
    "rewardTokens": "VARCHAR[]", "underlyingTokens": "VARCHAR[]",
    "stablecoin": "BOOLEAN", "ilRisk": "VARCHAR", "exposure": "VARCHAR",
    "poolMeta": "VARCHAR", "outlier": "BOOLEAN"
}"""

_SCHEMA = """
CREATE TABLE raw_records (
    source VARCHAR, endpoint VARCHAR, kind VARCHAR, native_id VARCHAR, run_id VARCHAR,
    fetched_at TIMESTAMPTZ, payload VARCHAR);
CREATE TABLE observations (
    source VARCHAR, pool_id VARCHAR, observed_at TIMESTAMPTZ, protocol VARCHAR,
    chain VARCHAR, symbol VARCHAR, strategy VARCHAR, venue VARCHAR, category VARCHAR,
    apy_pct DOUBLE, apy_base_pct DOUBLE, apy_reward_pct DOUBLE, tvl_usd DOUBLE,
    stablecoin BOOLEAN, il_risk BOOLEAN, exposure VARCHAR, outlier BOOLEAN,
    pool_meta VARCHAR, underlying_tokens VARCHAR[], reward_tokens VARCHAR[],
    level VARCHAR, product_id VARCHAR, strategy_guessed BOOLEAN,
    apy_gross_pct DOUBLE, apy_borrow_pct DOUBLE, utilization_pct DOUBLE,
    tvl_tokens DOUBLE, tvl_token VARCHAR);
"""

_ARCHIVE = """
INSERT INTO raw_records
SELECT $source, '/pools', 'snapshot', (($first + row_number() OVER ()) - 1)::VARCHAR,
       $run_id, stamp::TIMESTAMPTZ, payload
FROM batch
"""

# transforms.products.normal: lower case, runs of whitespace, "_" and "/" and each ":"
# as "-", runs of "-" as one, no "-" at either end.
_NORMAL = (
    "trim(regexp_replace(replace(regexp_replace(lower(trim({0})), '[\\s_/]+', '-', 'g'),"
    " ':', '-'), '-{{2,}}', '-', 'g'), '-')"
)

_OBSERVE = f"""
INSERT INTO observations
WITH parsed AS (
    SELECT stamp::TIMESTAMPTZ AS fetched_at, from_json(payload, '{_ITEM}') AS j FROM batch
)
SELECT
    $source, j.pool, date_trunc('hour', fetched_at), j.project, j.chain, j.symbol,
    CASE WHEN lower(j.ilRisk) = 'yes' OR lower(j.exposure) = 'multi' THEN 'farming'
         ELSE 'lending' END,
    'defi', NULL,
    CASE WHEN j.apy IS NULL AND (j.apyBase IS NOT NULL OR j.apyReward IS NOT NULL)
         THEN coalesce(j.apyBase, 0) + coalesce(j.apyReward, 0) ELSE j.apy END,
    j.apyBase, j.apyReward, j.tvlUsd, j.stablecoin, lower(j.ilRisk) = 'yes', j.exposure,
    j.outlier, j.poolMeta,
    list_filter(j.underlyingTokens, t -> t IS NOT NULL AND t <> ''),
    list_filter(j.rewardTokens, t -> t IS NOT NULL AND t <> ''),
    NULL,
    concat_ws(':', {_NORMAL.format("j.project")}, {_NORMAL.format("j.chain")},
              {_NORMAL.format("j.symbol")}, nullif({_NORMAL.format("j.poolMeta")}, '')),
    true, NULL, NULL, NULL, NULL, NULL
FROM parsed
"""


def run_duckdb(input_path: Path, workdir: Path, batch_size: int) -> dict[str, Any]:
    """Archive and store the records of ``input_path`` into ``workdir/peer.duckdb``."""
    con = duckdb.connect(str(workdir / "peer.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    con.execute(_SCHEMA)
    params = {"source": SOURCE, "run_id": "bench", "first": 0}
    started = time.perf_counter()
    rows = 0
    with input_path.open("rb") as lines:
        while chunk := [line for _, line in zip(range(batch_size), lines, strict=False)]:
            stamps, payloads = zip(
                *(line.rstrip(b"\n").split(b"\t", 1) for line in chunk), strict=True
            )
            batch = pa.table(  # noqa: F841 - read by name
                {
                    "stamp": pa.array(stamps, pa.binary()).cast(pa.string()),
                    "payload": pa.array(payloads, pa.binary()).cast(pa.string()),
                }
            )
            params["first"] = rows
            con.execute(_ARCHIVE, params)
            con.execute(_OBSERVE, {"source": SOURCE})
            rows += len(chunk)
    con.execute("CHECKPOINT")
    seconds = time.perf_counter() - started
    stored = con.execute("SELECT count(*) FROM observations").fetchone()
    archived = con.execute("SELECT count(*) FROM raw_records").fetchone()
    con.close()
    if stored is None or archived is None or stored[0] != rows or archived[0] != rows:
        raise SystemExit(f"peer stored {stored} and archived {archived} of {rows} rows")
    return {"peer": "duckdb", "rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}
