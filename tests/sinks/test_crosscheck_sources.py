"""First-party sources meet DefiLlama's row for the same product in ``crosscheck``.

Each first-party figure comes from its source's recorded response through its own
collector split and transform; DefiLlama's side is its recorded ``/pools`` row for
the product (rETH, JitoSOL: real rows), or, for products no recorded ``/pools``
sample holds, a row of the same documented shape with the project, chain, symbol
and poolMeta DefiLlama's own adaptor for that protocol publishes (yield-server
``src/adaptors/<project>/index.js``, cited in each source's transform). DefiLlama's
row is fetched half an hour after the first-party point, as a poller running both
would see them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest._records import endpoint_for, recorded_path
from sinks.lake import Store
from sinks.writer import LakeWriter
from tests.conftest import query, raw
from tests.transforms import body_of, fixture_files, records_of
from transforms import Context, apply
from transforms import defillama_yields as pools
from yieldstream.contracts import Observation, RawRecord
from yieldstream.registry import source as registered
from yieldstream.registry import sources

FETCHED = datetime(2026, 12, 1, 12, 34, 56, tzinfo=UTC)  # after every recorded point
RECORDED_POOLS = "pools-reth-jitosol-from-ts-fixture.json"

# product -> (first-party source, DefiLlama project, symbol, chain[, poolMeta])
PRODUCTS: dict[str, tuple[str, ...]] = {
    "rocket-pool:ethereum:reth": ("rocket-pool", "rocket-pool", "RETH", "Ethereum"),
    "jito-liquid-staking:solana:jitosol": ("jito", "jito-liquid-staking", "JITOSOL", "Solana"),
    "marinade-liquid-staking:solana:msol": (
        "marinade",
        "marinade-liquid-staking",
        "MSOL",
        "Solana",
    ),
    "frax-ether:ethereum:sfrxeth": ("frax", "frax-ether", "SFRXETH", "Ethereum"),
    "coinbase-wrapped-staked-eth:ethereum:cbeth": (
        "coinbase",
        "coinbase-wrapped-staked-eth",
        "CBETH",
        "Ethereum",
    ),
    # Lending markets and farms, named as DefiLlama's adaptors name them.
    "aave-v3:ethereum:weth": ("aave-v3", "aave-v3", "WETH", "Ethereum"),
    "compound-v3:ethereum:eth": ("compound-v3", "compound-v3", "ETH", "Ethereum"),
    "morpho-blue:ethereum:steakusdc": ("morpho", "morpho-blue", "steakUSDC", "Ethereum"),
    "kamino-lend:solana:usdc:xstocks-market": (
        "kamino",
        "kamino-lend",
        "USDC",
        "Solana",
        "xStocks Market",
    ),
    "pendle:bsc:susdat:for-lp-|-maturity-27aug2026": (
        "pendle",
        "pendle",
        "sUSDat",
        "BSC",
        "For LP | Maturity 27AUG2026",
    ),
    "curve-dex:ethereum:dai-usdc-usdt": ("curve", "curve-dex", "DAI-USDC-USDT", "Ethereum"),
    "beefy:polygon:must-eth:cometh": ("beefy", "beefy", "MUST-ETH", "Polygon", "Cometh"),
    "yearn-finance:base:usdc": ("yearn", "yearn-finance", "USDC", "Base"),
}


def first_party(name: str) -> list[Observation]:
    """Every observation of a source's recorded snapshot responses (joined where its
    collector joins several responses into one record per product)."""
    src = registered(name)
    found = []
    for record in snapshot_records(name):
        result = apply(src.transform, record, Context())
        if isinstance(result, list):
            found.extend(result)
    return found


def snapshot_records(name: str) -> list[RawRecord]:
    module = importlib.import_module(f"ingest.{registered(name).module}")
    join = getattr(module, "join_bodies", None)
    if join is None:
        records = []
        for path in fixture_files(name):
            if not path.name.startswith("history-") and endpoint_for(
                registered(name).endpoints, path
            ):
                records += records_of(name, path.name, fetched_at=FETCHED)
        return records
    return joined_records(name, module)


def joined_records(name: str, module: Any) -> list[RawRecord]:
    """The records a joining collector makes: one round of recorded responses per entity."""
    endpoints = registered(name).endpoints
    by_endpoint: dict[str, dict[str, Any]] = {}
    for path in fixture_files(name):
        named = recorded_path(endpoints, path)
        if named is not None:
            entity = named[0].entity_of(named[1]) or ""
            by_endpoint.setdefault(entity, {}).setdefault(named[0].path, (named[1], path))
    records = []
    for files in by_endpoint.values():
        if len(files) < len(endpoints):
            continue
        bodies = [orjson.loads(files[e.path][1].read_bytes()) for e in endpoints]
        for item in module.join_bodies(bodies):
            native = module.joined_id(item) if hasattr(module, "joined_id") else item.get("id")
            records.append(
                raw(
                    name,
                    orjson.dumps(item),
                    endpoint=files[endpoints[0].path][0],
                    native_id=str(native),
                    fetched_at=FETCHED,
                )
            )
    return records


def defillama_row(project: str, symbol: str, chain: str, meta: str | None = None) -> dict[str, Any]:
    """DefiLlama's recorded row for the product, or one of the same shape."""
    rows = body_of("defillama-yields", RECORDED_POOLS)["data"]
    for row in rows:
        if (row["project"], row["symbol"]) == (project, symbol):
            return dict(row)
    shaped = dict(rows[0])  # the documented /pools shape, this product's names
    shaped.update(project=project, symbol=symbol, chain=chain, pool=f"shaped-{project}")
    shaped.update(poolMeta=meta)
    shaped.update(apy=3.0, apyBase=3.0, tvlUsd=1e9)
    return shaped


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[LakeWriter]:
    writer = LakeWriter(Store(tmp_path / "store"), compact_every=None)
    yield writer
    writer.close()


def test_every_first_party_source_meets_defillama_on_a_product(
    writer: LakeWriter, tmp_path: Path
) -> None:
    # Every first-party source has a product here, but the CeFi desks (DefiLlama lists
    # none), Lido (tests/sinks/test_products.py) and the networks' inflation (no
    # product); DefiLlama's own two are the peer.
    apart = {pools.SOURCE, "defillama-protocols", "lido", "bitfinex", "okx", "kucoin", "bybit"}
    apart |= {"solana-inflation", "cosmos-inflation", "ethereum-issuance"}
    assert set(sources()) - apart == {v[0] for v in PRODUCTS.values()}
    for product, (name, project, symbol, chain, *meta) in PRODUCTS.items():
        ours = [o for o in first_party(name) if o.product_id == product]
        assert ours, f"{name}'s recorded responses give no {product}"
        newest = max(ours, key=lambda o: o.observed_at)
        row = defillama_row(project, symbol, chain, *meta)
        result = apply(
            pools.transform,
            raw(
                pools.SOURCE,
                orjson.dumps(row),
                endpoint="/pools",
                native_id=row["pool"],
                fetched_at=newest.observed_at + timedelta(minutes=30),
            ),
            Context(),
        )
        assert isinstance(result, list), result
        (theirs,) = result
        assert theirs.product_id == product
        writer.store(None, name, len(ours), ours, [])
        writer.store(None, pools.SOURCE, 1, [theirs], [])

    rows = query(
        tmp_path / "store",
        "SELECT product_id, list(DISTINCT source ORDER BY source), max(sources) "
        "FROM crosscheck GROUP BY product_id ORDER BY product_id",
    )
    paired = {product: (sources, count) for product, sources, count in rows}
    for product, (name, *_) in PRODUCTS.items():
        assert paired.get(product) == (sorted([name, pools.SOURCE]), 2), product


def test_the_real_rows_show_the_gap_between_the_two_figures(
    writer: LakeWriter, tmp_path: Path
) -> None:
    """rETH: Rocket Pool's 2.34584 % APR compounded daily against DefiLlama's 2.34584."""
    (ours,) = [o for o in first_party("rocket-pool") if o.product_id.endswith(":reth")]
    row = defillama_row("rocket-pool", "RETH", "Ethereum")
    result = apply(
        pools.transform,
        raw(
            pools.SOURCE,
            orjson.dumps(row),
            endpoint="/pools",
            native_id=row["pool"],
            fetched_at=ours.observed_at + timedelta(minutes=30),
        ),
        Context(),
    )
    assert isinstance(result, list), result
    (theirs,) = result
    writer.store(None, "rocket-pool", 1, [ours], [])
    writer.store(None, pools.SOURCE, 1, [theirs], [])
    (gap,) = query(
        tmp_path / "store",
        "SELECT DISTINCT round(apy_gap_pct, 4) FROM crosscheck "
        "WHERE product_id = 'rocket-pool:ethereum:reth'",
    )
    assert ours.apy_pct is not None
    assert gap[0] == round(ours.apy_pct - 2.34584, 4) == 0.0277
