"""Real yields net of the network's inflation, and strategies side by side per asset.

stETH and mSOL come from Lido's and Marinade's recorded responses, through their own
transforms; the inflation they are netted against from the recorded Solana RPC and
Ethereum issuance answers, fetched an hour before the first staking point, as a
poller running all of them would see it. The other cases are generated.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sinks.lake import Store
from sinks.writer import LakeWriter
from tests.conftest import query
from tests.sinks.test_crosscheck_sources import first_party
from yieldstream.contracts import Level, Observation, Strategy, Venue, make_observation

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)
WEEK = timedelta(days=7)
REAL = (
    "SELECT symbol, observed_at, apy_pct, inflation_pct, inflation_source, inflation_at, "
    "real_apy_pct, no_real_yield FROM real_yields WHERE source = ? ORDER BY observed_at"
)


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[LakeWriter]:
    writer = LakeWriter(Store(tmp_path / "store"), compact_every=None)
    yield writer
    writer.close()


def _store(writer: LakeWriter, observations: list[Observation]) -> None:
    for source in sorted({o.source for o in observations}):
        mine = [o for o in observations if o.source == source]
        writer.store(None, source, len(mine), mine, [])


def _rows(data_dir: Path, source: str) -> list[dict[str, Any]]:
    names = [n.strip().split()[-1] for n in REAL.split("FROM")[0][len("SELECT") :].split(",")]
    rows = query(data_dir, REAL.replace("?", f"'{source}'"))
    return [dict(zip(names, row, strict=True)) for row in rows]


def _real(apy_pct: float, inflation_pct: float) -> float:
    return ((1 + apy_pct / 100) / (1 + inflation_pct / 100) - 1) * 100


def _at(observations: list[Observation], moment: datetime) -> list[Observation]:
    return [msgspec.structs.replace(o, observed_at=moment) for o in observations]


@pytest.mark.parametrize(
    ("staking", "network", "token"),
    [("lido", "ethereum-issuance", "ETH"), ("marinade", "solana-inflation", "SOL")],
)
def test_recorded_staking_is_netted_against_its_networks_recorded_inflation(
    writer: LakeWriter, tmp_path: Path, staking: str, network: str, token: str
) -> None:
    staked = [o for o in first_party(staking) if o.strategy is Strategy.STAKING]
    assert staked, f"{staking}'s recorded responses give no staking product"
    # The newest week of points, each once (Lido's 2023 docs sample is years older).
    newest = max(o.observed_at for o in staked)
    week = {(o.pool_id, o.observed_at): o for o in staked if o.observed_at > newest - WEEK}
    products = list(week.values())
    first = min(o.observed_at for o in products)
    inflation = _at(first_party(network), first - timedelta(hours=1))
    (figure,) = [o for o in inflation if o.symbol == token]
    assert figure.level is Level.NETWORK
    assert figure.apy_pct is not None
    _store(writer, products + inflation)

    rows = _rows(tmp_path / "store", staking)
    assert len(rows) == len(products)
    for row in rows:
        assert row["no_real_yield"] is None, row
        assert row["inflation_source"] == network
        assert row["inflation_at"] == figure.observed_at
        assert row["inflation_pct"] == pytest.approx(figure.apy_pct, rel=1e-12)
        expected = _real(row["apy_pct"], figure.apy_pct)
        assert row["real_apy_pct"] == pytest.approx(expected, rel=1e-12)
        # Net of a positive inflation, the real APY is lower, by about the inflation.
        assert row["real_apy_pct"] < row["apy_pct"]


def _obs(**fields: Any) -> Observation:
    base: dict[str, Any] = {
        "source": "gen",
        "pool_id": "p1",
        "observed_at": T0,
        "protocol": "gen",
        "chain": "Ethereum",
        "symbol": "STETH",
        "strategy": Strategy.STAKING,
        "venue": Venue.DEFI,
        "apy_pct": 4.0,
        "tvl_usd": 1e6,
    }
    base.update(fields)
    if base.get("level", Level.PRODUCT) is Level.PRODUCT:
        base.setdefault("product_id", f"gen:{base['chain'].lower()}:{base['pool_id']}")
    return make_observation(base)


def _inflation(token: str, at: datetime, pct: float, source: str = "net") -> Observation:
    return _obs(
        source=source,
        pool_id=f"{token.lower()}:inflation",
        level=Level.NETWORK,
        observed_at=at,
        symbol=token,
        strategy=Strategy.OTHER,
        apy_pct=pct,
        tvl_usd=None,
    )


def test_the_nearest_inflation_within_30_days_is_used_and_its_absence_is_explained(
    writer: LakeWriter, tmp_path: Path
) -> None:
    day = timedelta(days=1)
    observations = [
        _inflation("ETH", T0 - 40 * day, 9.0),  # too old for anything after T0 - 10 days
        _inflation("ETH", T0, 0.8),
        _inflation("ETH", T0 + 10 * day, 0.5),
        _inflation("SOL", T0 + 20 * day, 4.0),  # only after: taken within 30 days
        # stETH: 5 days after the first figure; 35 days after it (stale: the next is
        # taken); 5 hours after the second; NULL APY after the third.
        _obs(pool_id="steth", observed_at=T0 - 35 * day, apy_pct=3.0),
        _obs(pool_id="steth", observed_at=T0 - 5 * day, apy_pct=3.1),
        _obs(pool_id="steth", observed_at=T0 + timedelta(hours=5), apy_pct=3.2),
        _obs(pool_id="steth", observed_at=T0 + 11 * day, apy_pct=None),
        _obs(pool_id="msol", symbol="mSOL", chain="Solana", observed_at=T0, apy_pct=7.0),
        _obs(pool_id="msol", symbol="mSOL", chain="Solana", observed_at=T0 - 20 * day),
        _obs(pool_id="atom", symbol="stATOM", chain="Cosmos"),  # no ATOM figure at all
        _obs(pool_id="lp", symbol="XYZ-ABC"),  # no token dilutes it
        _obs(pool_id="usdc", symbol="USDC", strategy=Strategy.LENDING),  # not staking
    ]
    _store(writer, observations)
    rows = _rows(tmp_path / "store", "gen")
    got = {(r["symbol"], r["observed_at"]): r for r in rows}
    assert {r["symbol"] for r in rows} == {"STETH", "mSOL", "stATOM", "XYZ-ABC"}

    def case(symbol: str, moment: datetime) -> tuple[Any, ...]:
        r = got[(symbol, moment)]
        return r["inflation_pct"], r["inflation_at"], r["no_real_yield"]

    assert case("STETH", T0 - 35 * day) == (9.0, T0 - 40 * day, None)
    assert case("STETH", T0 - 5 * day) == (0.8, T0, None)  # the older one is 35 days old
    assert case("STETH", T0 + timedelta(hours=5)) == (0.8, T0, None)
    assert case("STETH", T0 + 11 * day) == (0.5, T0 + 10 * day, "no APY")
    assert got[("STETH", T0 + 11 * day)]["real_apy_pct"] is None
    assert case("mSOL", T0) == (4.0, T0 + 20 * day, None)
    assert case("mSOL", T0 - 20 * day) == (None, None, "no SOL inflation figure within 30 days")
    assert case("stATOM", T0) == (None, None, "no ATOM inflation figure")
    assert case("XYZ-ABC", T0) == (None, None, "no token known to dilute XYZ-ABC")
    for r in rows:
        if r["inflation_pct"] is None:
            assert r["real_apy_pct"] is None, "never a made-up zero"
        elif r["apy_pct"] is not None:
            assert r["real_apy_pct"] == pytest.approx(_real(r["apy_pct"], r["inflation_pct"]))
    assert got[("STETH", T0 + timedelta(hours=5))]["real_apy_pct"] == pytest.approx(
        (1.032 / 1.008 - 1) * 100
    )


COMPARE = (
    "SELECT strategy, venue, products, tvl_usd, apy_tvl_weighted_pct, apy_median_pct, "
    "real_apy_tvl_weighted_pct, real_apy_median_pct, sigma_median_pct "
    "FROM strategy_compare WHERE asset = ? AND chain = ? ORDER BY strategy, venue"
)


def test_strategies_compare_per_asset_and_chain_from_each_products_newest_figure(
    writer: LakeWriter, tmp_path: Path
) -> None:
    hour = timedelta(hours=1)
    eth = {"chain": "Ethereum"}
    observations = [
        _inflation("ETH", T0 - hour, 1.0),
        # ETH staking, DeFi: stETH (its older figure does not count) and rETH.
        _obs(pool_id="steth", observed_at=T0 - 2 * hour, apy_pct=9.0, tvl_usd=5e6, **eth),
        _obs(pool_id="steth", apy_pct=3.0, tvl_usd=3e6, **eth),
        _obs(pool_id="reth", symbol="rETH", apy_pct=4.0, tvl_usd=1e6, **eth),
        # ETH staking on Arbitrum (wstETH): a second chain for the same asset.
        _obs(pool_id="wsteth", symbol="wstETH", chain="Arbitrum", apy_pct=2.0, tvl_usd=1e6),
        # ETH staking at an exchange, no TVL: counted, not weighted.
        _obs(pool_id="cex", symbol="ETH", venue=Venue.CEFI, apy_pct=5.0, tvl_usd=None, **eth),
        # ETH lent (WETH) and a USDC market.
        _obs(pool_id="weth", symbol="WETH", strategy=Strategy.LENDING, apy_pct=2.0, **eth),
        _obs(pool_id="usdc", symbol="USDC", strategy=Strategy.LENDING, apy_pct=6.0, **eth),
    ]
    _store(writer, observations)
    data_dir = tmp_path / "store"

    def compare(asset: str, chain: str) -> dict[tuple[str, str], tuple[Any, ...]]:
        rows = query(data_dir, COMPARE.replace("?", "'{}'").format(asset, chain))
        return {(r[0], r[1]): r[2:] for r in rows}

    on_ethereum = compare("ETH", "Ethereum")
    assert set(on_ethereum) == {("lending", "defi"), ("staking", "cefi"), ("staking", "defi")}
    products, tvl, weighted, median, real_weighted, real_median, sigma = on_ethereum[
        ("staking", "defi")
    ]
    assert (products, tvl) == (2, 4e6)
    assert weighted == pytest.approx((3.0 * 3e6 + 4.0 * 1e6) / 4e6)
    assert median == pytest.approx(3.5)
    real_steth, real_reth = _real(3.0, 1.0), _real(4.0, 1.0)
    assert real_weighted == pytest.approx((real_steth * 3e6 + real_reth * 1e6) / 4e6)
    assert real_median == pytest.approx((real_steth + real_reth) / 2)
    assert sigma == 0.0  # stETH's two points are on one day: count 1, sigma 0
    cefi = on_ethereum[("staking", "cefi")]
    assert cefi[:3] == (1, None, None)  # no TVL to weigh by
    assert cefi[3] == pytest.approx(5.0)
    assert on_ethereum[("lending", "defi")][4:6] == (None, None)  # lending: no real APY

    everywhere = compare("ETH", "(all chains)")
    products, tvl, weighted, *_ = everywhere[("staking", "defi")]
    assert (products, tvl) == (3, 5e6)
    assert weighted == pytest.approx((3.0 * 3e6 + 4.0 * 1e6 + 2.0 * 1e6) / 5e6)
    assert compare("USDC", "Ethereum")[("lending", "defi")][:2] == (1, 1e6)
    assert not math.isnan(weighted)
