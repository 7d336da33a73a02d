"""Strategy classification: DefiLlama categories -> staking | lending | farming | other."""

from __future__ import annotations

import pytest

from tests.transforms import body_of
from transforms.classify import CATEGORY_STRATEGY, strategy_for
from yieldstream.contracts import Strategy


@pytest.mark.parametrize(
    ("category", "strategy"),
    [
        ("Liquid Staking", Strategy.STAKING),
        ("Liquid Restaking", Strategy.STAKING),
        ("Restaking", Strategy.STAKING),
        ("Lending", Strategy.LENDING),
        ("CDP", Strategy.LENDING),
        ("Dexs", Strategy.FARMING),
        ("Yield Aggregator", Strategy.FARMING),
        ("Yield", Strategy.FARMING),
    ],
)
def test_known_categories(category: str, strategy: Strategy) -> None:
    assert strategy_for(category) is strategy


def test_every_category_in_the_recorded_protocols_response_is_known() -> None:
    rows = body_of("defillama-protocols", "protocols-rows-onchain-analytics-first6.json")
    got = {row["slug"]: strategy_for(row["category"]) for row in rows}
    assert got == {
        "lido": Strategy.STAKING,
        "aave-v3": Strategy.LENDING,
        "ether.fi-stake": Strategy.STAKING,
        "uniswap-v3": Strategy.FARMING,
        "raydium-amm": Strategy.FARMING,
        "uniswap-v4": Strategy.FARMING,
    }


@pytest.mark.parametrize("category", ["LENDING", "lending", "  Lending ", "liquid STAKING"])
def test_case_and_surrounding_space_do_not_matter(category: str) -> None:
    assert strategy_for(category) is not Strategy.OTHER


@pytest.mark.parametrize("category", [None, "", "   ", "Bridge", "Chain", "Lending Protocol", "?"])
def test_missing_or_unknown_is_other(category: str | None) -> None:
    assert strategy_for(category) is Strategy.OTHER


def test_table_keys_are_normalised_so_that_every_row_can_match() -> None:
    # strategy_for looks up category.strip().lower(): any other key is dead.
    for key, strategy in CATEGORY_STRATEGY.items():
        assert key == key.strip().lower(), key
        assert strategy_for(key) is strategy
        assert strategy is not Strategy.OTHER, f"{key}: unknown is already other"


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        CATEGORY_STRATEGY["bridge"] = Strategy.FARMING  # type: ignore[index]
