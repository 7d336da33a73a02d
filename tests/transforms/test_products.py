"""Product identity: one id for one product, whichever source names it."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import raw, recorded
from transforms import Context, defillama_yields, lido
from transforms.products import CHAIN_ALIASES, PROTOCOL_ALIASES, normal, product_id
from yieldstream.contracts import Observation

names = st.text(min_size=0, max_size=40)


def test_lido_stETH_and_defillamas_lido_stETH_pool_are_one_product() -> None:
    pools = orjson.loads(recorded("defillama-yields", "pools-2records-from-cn-doc.json"))["data"]
    steth_pool = next(p for p in pools if p["project"] == "lido")
    [from_llama] = defillama_yields.transform(
        raw("defillama-yields", orjson.dumps(steth_pool), endpoint="/pools"), Context()
    )
    last = orjson.loads(recorded("lido", "apr-last-from-mcp-test.json"))["data"]
    [from_lido] = lido.transform(raw("lido", orjson.dumps(last), endpoint="/apr/last"), Context())
    assert isinstance(from_llama, Observation)
    assert isinstance(from_lido, Observation)
    assert from_llama.product_id == from_lido.product_id == "lido:ethereum:steth"
    assert from_llama.pool_id != from_lido.pool_id  # each source keeps its own pool id


def test_a_pool_variant_tells_two_products_of_one_token_apart() -> None:
    assert product_id("uniswap-v3", "Ethereum", "USDC-WETH", "0.05%") != product_id(
        "uniswap-v3", "Ethereum", "USDC-WETH", "0.3%"
    )
    assert product_id("aave-v3", "Ethereum", "USDC", None) == "aave-v3:ethereum:usdc"
    assert product_id("aave-v3", "Ethereum", "USDC", "  ") == "aave-v3:ethereum:usdc"


def test_aliases_map_other_spellings_to_defillamas_names() -> None:
    assert product_id("RocketPool", "mainnet", "rETH") == "rocket-pool:ethereum:reth"
    assert product_id("Marinade Finance", "SOL", "mSOL") == product_id(
        "marinade-liquid-staking", "Solana", "MSOL"
    )
    assert product_id("x", "Arbitrum One", "usdc") == product_id("x", "42161", "USDC")


def test_every_alias_points_at_a_normal_name_that_is_not_itself_an_alias() -> None:
    for table in (PROTOCOL_ALIASES, CHAIN_ALIASES):
        for alias, name in table.items():
            assert normal(alias) == alias
            assert normal(name) == name
            assert name not in table


@given(names, names, names, st.none() | names)
def test_an_id_is_three_or_four_normal_parts(
    protocol: str, chain: str, token: str, variant: str | None
) -> None:
    pid = product_id(protocol, chain, token, variant)
    parts = pid.split(":")
    assert len(parts) in (3, 4)
    assert all(part == "_" or (part and normal(part) == part) for part in parts)


ascii_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFXYZ0123456789 -_.", max_size=30)


@given(ascii_names, ascii_names, ascii_names)
def test_case_and_separators_do_not_make_another_product(
    protocol: str, chain: str, token: str
) -> None:
    assert product_id(protocol, chain, token) == product_id(
        f" {protocol.upper().replace(' ', '_')}", chain.swapcase(), token.replace(" ", "  ")
    )


@given(names)
def test_normal_is_idempotent_and_never_keeps_the_separator(name: str) -> None:
    once = normal(name)
    assert normal(once) == once
    assert ":" not in once
