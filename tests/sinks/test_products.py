"""Products apart from protocol totals, one product across sources, and stores migrated
forward from version 2 with nothing lost."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from sinks.lake import Store
from sinks.writer import LakeWriter
from tests.conftest import FIXTURES, query, raw, recorded
from transforms import Context, Transform, apply, defillama_protocols, defillama_yields, lido
from yieldstream.contracts import Observation, RawRecord

# A store written by the code before products (schema version 2): `yieldstream demo`
# plus `yieldstream backfill defillama-protocols --only raydium-amm` (tests/fixtures/
# PROVENANCE.md).
V2_STORE = FIXTURES / "stores" / "v2"
KEYS = "SELECT source, pool_id, observed_at FROM observations ORDER BY ALL"


@pytest.fixture
def v2(tmp_path: Path) -> Path:
    data_dir = tmp_path / "store"
    shutil.copytree(V2_STORE, data_dir)
    return data_dir


LATEST_KEPT = """
    SELECT source, pool_id, observed_at, first_observed_at, apy_pct, level, product_id
    FROM latest_observations ORDER BY ALL
"""
LATEST_COMPUTED = """
    SELECT source, pool_id, max(observed_at), min(observed_at),
           arg_max(apy_pct, observed_at), arg_max(level, observed_at),
           arg_max(product_id, observed_at)
    FROM observations GROUP BY source, pool_id ORDER BY ALL
"""


def _open_and_close_writer(data_dir: Path) -> None:
    LakeWriter(Store(data_dir)).close()


def test_a_version_2_store_migrates_forward_with_nothing_lost(v2: Path) -> None:
    before = {
        table: query(v2, f"SELECT count(*) FROM {table}")[0][0]
        for table in ("observations", "raw_records", "rejections", "fetches", "batches")
    }
    keys = query(v2, KEYS)
    values = query(v2, "SELECT source, pool_id, observed_at, apy_pct, tvl_usd FROM observations")
    _open_and_close_writer(v2)

    assert query(v2, "SELECT max(version) FROM schema_migrations") == [(7,)]
    for table, count in before.items():
        assert query(v2, f"SELECT count(*) FROM {table}") == [(count,)], table
    assert query(v2, KEYS) == keys
    after = query(v2, "SELECT source, pool_id, observed_at, apy_pct, tvl_usd FROM observations")
    assert sorted(after, key=repr) == sorted(values, key=repr)
    levels = dict(
        query(v2, "SELECT source || ' ' || level, count(*) FROM observations GROUP BY ALL")
    )
    assert levels == {
        "defillama-protocols protocol": 9,
        "defillama-protocols protocol_chain": 3,
        "defillama-yields product": 7,
        "lido product": 8,
    }
    assert query(
        v2, "SELECT count(*) FROM observations WHERE level = 'product' AND product_id IS NULL"
    ) == [(0,)]
    # Lido's own stETH and DefiLlama's Lido pool, stored before products, now meet.
    assert query(
        v2,
        "SELECT DISTINCT source FROM observations WHERE product_id = 'lido:ethereum:steth' "
        "ORDER BY 1",
    ) == [("defillama-yields",), ("lido",)]
    # Each pool's newest row and first time, kept from version 6 on.
    assert query(v2, LATEST_KEPT) == query(v2, LATEST_COMPUTED)
    assert query(v2, "SELECT count(*) FROM latest_observations") == [(15,)]  # pools
    # A second start migrates nothing again.
    _open_and_close_writer(v2)
    assert query(v2, "SELECT count(*) FROM schema_migrations") == [(7,)]
    assert query(v2, KEYS) == keys


def test_latest_yields_hold_products_and_protocol_tvl_the_protocol_totals(v2: Path) -> None:
    _open_and_close_writer(v2)
    assert query(v2, "SELECT count(*) FROM latest_yields WHERE source = 'defillama-protocols'") == [
        (0,)
    ]
    assert query(v2, "SELECT count(*) FROM latest_yields") == [(8,)]  # 7 pools and stETH
    assert query(v2, "SELECT count(*) FROM yield_history WHERE apy_pct IS NULL") == [(0,)]
    rows = query(
        v2,
        "SELECT protocol, chain, scope, count(*) FROM protocol_tvl "
        "WHERE protocol = 'raydium-amm' GROUP BY ALL ORDER BY ALL",
    )
    assert rows == [("raydium-amm", "Solana", "chain", 3), ("raydium-amm", "Solana", "total", 4)]


LAST = "apr-last-from-mcp-test.json"


def _observations(record: RawRecord, transform: Transform) -> list[Observation]:
    result = apply(transform, record, Context())
    assert isinstance(result, list), result
    return result


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[LakeWriter]:
    writer = LakeWriter(Store(tmp_path / "fresh"), compact_every=None)
    yield writer
    writer.close()


def test_new_protocol_rows_go_to_protocol_tvl_and_never_to_latest_yields(
    writer: LakeWriter, tmp_path: Path
) -> None:
    protocols = orjson.loads(
        recorded("defillama-protocols", "protocols-rows-onchain-analytics-first6.json")
    )
    observations = [
        obs
        for row in protocols
        for obs in _observations(
            raw("defillama-protocols", orjson.dumps(row), endpoint="/protocols"),
            defillama_protocols.transform,
        )
    ]
    writer.store(None, "defillama-protocols", len(observations), observations, [])
    data_dir = tmp_path / "fresh"
    assert query(data_dir, "SELECT count(*) FROM latest_yields") == [(0,)]
    assert query(data_dir, "SELECT count(*), count(DISTINCT protocol) FROM protocol_tvl") == [
        (len(observations), len(observations))
    ]


def test_crosscheck_pairs_lidos_stETH_with_defillamas_hour_by_hour(
    writer: LakeWriter, tmp_path: Path
) -> None:
    """Recorded real responses: Lido's /apr/last point (12:21:59 UTC) and DefiLlama's
    Lido stETH pool fetched in the hour after it, and again the next hour."""
    pools = orjson.loads(recorded("defillama-yields", "pools-2records-from-cn-doc.json"))["data"]
    steth_pool = next(p for p in pools if p["project"] == "lido")
    point = orjson.loads(recorded("lido", LAST))["data"]
    lido_time = datetime.fromtimestamp(point["timeUnix"], UTC)
    observed = _observations(raw("lido", orjson.dumps(point), endpoint="/apr/last"), lido.transform)
    for hours in (1, 2):
        fetched = lido_time + timedelta(hours=hours)
        observed += _observations(
            raw(
                "defillama-yields", orjson.dumps(steth_pool), endpoint="/pools", fetched_at=fetched
            ),
            defillama_yields.transform,
        )
    for obs in observed:
        writer.store(None, obs.source, 1, [obs], [])
    rows = query(
        tmp_path / "fresh",
        "SELECT hour, source, apy_pct, tvl_usd, sources, apy_gap_pct, tvl_gap_pct "
        "FROM crosscheck WHERE product_id = 'lido:ethereum:steth' ORDER BY hour, source",
    )
    lido_apy = observed[0].apy_pct
    assert lido_apy is not None
    first_hour = lido_time.replace(minute=0, second=0) + timedelta(hours=1)
    assert [(r[0], r[1]) for r in rows] == [
        (first_hour, "defillama-yields"),
        (first_hour, "lido"),
        (first_hour + timedelta(hours=1), "defillama-yields"),
        (first_hour + timedelta(hours=1), "lido"),
    ]
    by_source = {r[1]: r for r in rows[:2]}
    assert by_source["lido"][2] == pytest.approx(lido_apy)
    assert by_source["defillama-yields"][2] == 2.68
    assert by_source["defillama-yields"][3] == 22520760573
    for row in rows:
        assert row[4] == 2
        assert row[5] == pytest.approx(abs(2.68 - lido_apy))
        assert row[6] is None  # Lido gives no TVL: no TVL gap
