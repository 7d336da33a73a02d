"""Strategy classification: DefiLlama categories and a pool's own fields -> Strategy."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from tests.transforms import body_of
from transforms.classify import CATEGORY_STRATEGY, POOL_DECIDES, Pool, classify, strategy_for
from yieldstream.contracts import Strategy

_S, _L, _F, _O = Strategy.STAKING, Strategy.LENDING, Strategy.FARMING, Strategy.OTHER

# DefiLlama/defillama-server defi/src/protocols/data.test.ts, test "no surprise
# category" (every protocol's category must be one of these), commit
# 00a307a3fb90a17f5819a9322bb48a482816f173; "Interest Rate Derivatives" was added
# after it (fork tnrdd/defillama-server, c68af3f91ced4d29492196015c8eddea67610af2).
DEFILLAMA_CATEGORIES = (
    "Dexs", "Bridge", "Lending", "Yield Aggregator", "Synthetics", "CDP", "Services",
    "Insurance", "Bridge Aggregators", "Options", "Chain", "Derivatives", "Payments",
    "Privacy", "Yield", "RWA", "Indexes", "Algo-Stables", "Liquid Staking", "Farm",
    "Reserve Currency", "Launchpad", "Oracle", "Prediction Market", "NFT Marketplace",
    "NFT Lending", "Gaming", "Uncollateralized Lending", "Exotic Options", "CEX",
    "Leveraged Farming", "RWA Lending", "Options Vault", "Liquidity Manager",
    "Staking Pool", "Partially Algorithmic Stablecoin", "SoFi", "DEX Aggregator",
    "Liquid Restaking", "Restaking", "Wallets", "NftFi", "Telegram Bot", "Ponzi",
    "Basis Trading", "MEV", "CeDeFi", "CDP Manager", "Governance Incentives",
    "Restaked BTC", "Security Extension", "Anchor BTC", "AI Agents", "Treasury Manager",
    "OTC Marketplace", "Yield Lottery", "Decentralized BTC", "Token Locker", "Bug Bounty",
    "DCA Tools", "Onchain Capital Allocator", "Developer Tools", "Stablecoin Issuer",
    "Coins Tracker", "Domains", "NFT Launchpad", "Trading App", "Foundation",
    "Bridge Aggregator", "Liquidations", "Portfolio Tracker", "Liquidity Automation",
    "Charity Fundraising", "Volume Boosting", "DOR", "Collateral Management", "Meme",
    "Private Investment Platform", "Risk Curators", "Chain Bribes", "DAO Service Provider",
    "Staking Rental", "Canonical Bridge", "Interface", "Video Infrastructure", "DePIN",
    "Dual-Token Stablecoin", "Physical TCG", "Mining Pools", "NFT Automated Strategies",
    "Luck Games", "ve-Incentive Automator", "Cross Chain Bridge", "Decentralized AI",
    "Identity & Reputation", "Gamified Mining", "Secondary Debt Markets", "Block Builders",
    "Stablecoin Wrapper", "Crypto Card Issuer",
)  # fmt: skip
ADDED_SINCE = ("Interest Rate Derivatives",)
# The same test at commit 7faedbe080e43f9d09357cc759633a74f47ee8cb: the names of
# 2022 responses (Dexes, Cross Chain, Staking, "Liquidity manager" ...).
DEFILLAMA_CATEGORIES_2022 = (
    "Dexes", "Bridge", "Lending", "Yield Aggregator", "Synthetics", "CDP", "Services",
    "Insurance", "Cross Chain", "Options", "Chain", "Derivatives", "Payments", "Privacy",
    "Staking", "Yield", "RWA", "Indexes", "Algo-Stables", "Liquid Staking", "Farm",
    "Reserve Currency", "Launchpad", "Oracle", "Prediction Market", "NFT Marketplace",
    "NFT Lending", "Gaming", "Uncollateralized Lending", "Exotic Options", "CEX",
    "Leveraged Farming", "RWA Lending", "Options Vault", "Liquidity manager",
    "Staking Pool", "Infrastructure",
)  # fmt: skip
EVERY_CATEGORY = (*DEFILLAMA_CATEGORIES, *ADDED_SINCE, *DEFILLAMA_CATEGORIES_2022)


def test_the_lists_are_transcribed_whole() -> None:
    assert len(DEFILLAMA_CATEGORIES) == len(set(DEFILLAMA_CATEGORIES)) == 100
    assert len(DEFILLAMA_CATEGORIES_2022) == len(set(DEFILLAMA_CATEGORIES_2022)) == 37


@pytest.mark.parametrize("category", EVERY_CATEGORY)
def test_every_defillama_category_is_in_the_table(category: str) -> None:
    # Mapped, or `other` on purpose with its reason beside it in the table.
    assert category.strip().lower() in CATEGORY_STRATEGY
    assert classify(category)[1] is False


def test_the_table_names_only_defillama_categories() -> None:
    names = {c.lower() for c in EVERY_CATEGORY}
    assert set(CATEGORY_STRATEGY) == names
    assert names >= POOL_DECIDES


def recorded_protocol_rows() -> list[dict[str, object]]:
    """Every recorded /protocols row (tests/fixtures/defillama-protocols/*.json)."""
    files = sorted((FIXTURES / "defillama-protocols").glob("*.json"))
    assert files
    return [row for f in files for row in body_of("defillama-protocols", Path(f).name)]


def test_every_category_of_the_recorded_protocols_is_in_the_table() -> None:
    rows = recorded_protocol_rows()
    unmapped = {r["category"] for r in rows if str(r["category"]).lower() not in CATEGORY_STRATEGY}
    assert not unmapped, f"add these to transforms.classify.CATEGORY_STRATEGY: {unmapped}"


def test_the_recorded_protocols_are_classified() -> None:
    rows = body_of("defillama-protocols", "protocols-rows-onchain-analytics-first6.json")
    got = {row["slug"]: strategy_for(row["category"]) for row in rows}
    assert got == {
        "lido": _S,
        "aave-v3": _L,
        "ether.fi-stake": _S,
        "uniswap-v3": _F,
        "raydium-amm": _F,
        "uniswap-v4": _F,
    }


@pytest.mark.parametrize(
    ("category", "strategy"),
    [
        ("Liquid Staking", _S),
        ("Liquid Restaking", _S),
        ("Restaking", _S),
        ("Lending", _L),
        ("CDP", _L),
        ("RWA", _L),  # tokenised credit
        ("Basis Trading", _L),
        ("Dexs", _F),
        ("Dexes", _F),
        ("Cross Chain", _F),  # bridge liquidity
        ("Algo-Stables", _F),
        ("Options", _F),
        ("Insurance", _L),  # underwriting capital
        ("Yield Aggregator", _F),
        ("Yield", _F),
        ("Services", _O),
        ("Chain", _O),
    ],
)
def test_a_category_alone(category: str, strategy: Strategy) -> None:
    assert classify(category) == (strategy, False)
    assert strategy_for(category) is strategy


@pytest.mark.parametrize("category", ["LENDING", "lending", "  Lending ", "liquid STAKING"])
def test_case_and_surrounding_space_do_not_matter(category: str) -> None:
    assert classify(category) == (classify(category.strip().title())[0], False)
    assert strategy_for(category) is not _O


@pytest.mark.parametrize("category", [None, "", "   ", "Lending Protocol", "?"])
def test_missing_or_unknown_category_without_a_pool_is_other_and_guessed(
    category: str | None,
) -> None:
    assert classify(category) == (_O, True)


def test_table_keys_are_normalised_so_that_every_row_can_match() -> None:
    for key, strategy in CATEGORY_STRATEGY.items():
        assert key == key.strip().lower(), key
        assert strategy_for(key) is strategy


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        CATEGORY_STRATEGY["bridge"] = _F  # type: ignore[index]


# --- the pool's own fields ---------------------------------------------------------

SINGLE_STABLE = Pool(symbol="USDC", exposure="single", il_risk=False, stablecoin=True,
                     underlying=1, apy_base=4.2)  # fmt: skip
LP = Pool(symbol="USDC-WETH", exposure="multi", il_risk=True, stablecoin=False, underlying=2)


@pytest.mark.parametrize("category", ["Lending", "Liquid Staking", "Payments", None, "New"])
def test_an_lp_position_is_farming_in_any_category(category: str | None) -> None:
    strategy, guessed = classify(category, LP)
    assert strategy is _F
    assert guessed is (category not in {"Lending", "Liquid Staking", "Payments"})


@pytest.mark.parametrize(
    "pool",
    [
        Pool(symbol="USDC", exposure="multi"),  # multi exposure says it
        Pool(symbol="USDC", exposure="single", il_risk=True),  # single-sided, yet IL
        Pool(symbol="DAI-USDC-USDT", il_risk=False),  # older record: a pair symbol
        Pool(symbol="3CRV", underlying=3),  # older record: several underlying tokens
    ],
)
def test_what_makes_an_lp(pool: Pool) -> None:
    assert classify("Yield Aggregator", pool) == (_F, False)
    assert classify(None, pool) == (_F, True)


@pytest.mark.parametrize("category", ["Yield", "Yield Aggregator", "Leveraged Farming"])
def test_a_single_asset_vault_is_lending(category: str) -> None:
    # Previously farming: the table gave the category's strategy to every pool.
    assert classify(category, SINGLE_STABLE) == (_L, False)
    assert classify(category, LP) == (_F, False)
    assert classify(category, Pool(symbol="USDC")) == (_F, False)  # fields say nothing


def test_a_fixed_category_keeps_its_strategy_for_a_single_asset_pool() -> None:
    assert classify("Dexs", SINGLE_STABLE) == (_F, False)
    assert classify("Liquid Staking", SINGLE_STABLE) == (_S, False)
    assert classify("Indexes", SINGLE_STABLE) == (_O, False)


@pytest.mark.parametrize(
    ("pool", "strategy"),
    [
        (SINGLE_STABLE, _L),
        (Pool(symbol="WBTC", exposure="single", stablecoin=False), _L),
        (Pool(symbol="STETH", exposure="single", stablecoin=False), _S),
        (Pool(symbol="wstETH", exposure="single"), _S),
        (Pool(symbol="WEETH", exposure="single"), _S),
        (Pool(symbol="JITOSOL", exposure="single"), _S),
        (Pool(symbol="BNBX", exposure="single"), _S),
        (Pool(symbol="WETH", exposure="single"), _L),  # a wrapper, not stake
        (Pool(symbol="ETH", exposure="single"), _L),
        (Pool(symbol="SETH2", exposure="single"), _L),
        (Pool(symbol="ABC", exposure="single", pool_meta="Liquid staking"), _S),
        (Pool(symbol="SUSDE", exposure="single", stablecoin=True, pool_meta="7d unstaking"), _L),
        # Paid only in reward tokens, with no base APY reported at all: incentives.
        (Pool(symbol="USDC", exposure="single", rewards=1, apy_reward=0.6), _F),
        (Pool(symbol="USDC", exposure="single", rewards=1, apy_base=0.0, apy_reward=0.6), _L),
        (Pool(symbol="USDC", exposure="single", rewards=0, apy_reward=0.6), _L),
        (LP, _F),
        # Nothing says single or LP: no guess.
        (Pool(symbol="USDT"), _O),
        (Pool(), _O),
    ],
)
def test_without_a_category_the_fields_give_a_guess(pool: Pool, strategy: Strategy) -> None:
    assert classify(None, pool) == (strategy, True)
    assert classify("Onchain Treasury Bills", pool) == (strategy, True)  # not in the table


def test_a_known_category_is_never_a_guess() -> None:
    for category in EVERY_CATEGORY:
        for pool in (None, SINGLE_STABLE, LP, Pool()):
            assert classify(category, pool)[1] is False, category
