"""Deterministic, streaming synthetic DefiLlama ``/pools`` items for benchmarks.

``https://yields.llama.fi/pools`` answers ``{"status": "success", "data": [...]}``
with roughly 20,000 items.  The items made here copy the shape of recorded real
responses: the same 28 keys in the same order, the same JSON types (including the
quirks), and value distributions close to the real ones:

* ``chain``/``project``/``symbol``: real chain names weighted by pool count,
  real project slugs with the chains they run on, symbols built from the tokens
  of the pool (``"USDC-WETH"``, ``"WSTETH"``, ``"USDC-USDT-DAI"``...);
* ``pool``: a UUID; ``tvlUsd``: heavy tailed (from $10k to tens of billions),
  an integer for most pools and a float for a few;
* ``apyBase``/``apyReward``/``apy``: percent floats rounded to 5 decimals,
  ``apyBase`` null for ~15% of pools and ``apyReward`` for ~70%; ``apy`` is
  their sum, or set alone when both are null (as for ``sky-lending``);
  exactly integral values are integers, as JavaScript writes them (``0``);
* ``rewardTokens``/``underlyingTokens``: null or lists of token addresses in
  the chain's format (EIP-55 or lower-case ``0x`` hex on EVM chains, base58 on
  Solana and Tron), with a rare ``null`` entry (which the project's parser allows);
* ``predictions``: ``predictedProbability`` as JavaScript computes it
  (``56.00000000000001``), all three fields null for young pools;
* ``apyPct1D/7D/30D``, ``il7d``, ``apyBase7d``, ``apyMean30d``, ``volumeUsd1d/7d``,
  ``apyBaseInception``: null where real pools have them null (young pools, pools
  of projects that do not report volumes...).

One run is a series of hourly snapshots of one set of pools: snapshot ``k`` is
observed at 2026-01-01T00:00Z + ``k`` hours and holds ``batch`` pools (fewer
in the last one), so 1,000,000 records are 20,000 pools x 50 hours.  Pools are
made once per run (about a second for 20,000); each snapshot only varies TVL,
APYs, ``apyPct1D`` (noise, not the actual change), ``volumeUsd1d`` and ``count``
(daily), from a precomputed noise table.  One snapshot is held at a time.

:func:`pool_payloads` splices each item's JSON from a per-pool template: its
bytes equal ``orjson.dumps`` of the matching :func:`pool_items` item, at a few
hundred thousand items per second.  :func:`pool_items` is slower (around 100k
items per second on a 2-core machine): every item is a fresh dict holding fresh
lists, and the garbage collector's passes over them dominate.
``python -m bench.synthetic --rows N [--check]`` measures both (and checks them).

Everything derives from ``seed``: the same arguments give the same items.
"""

from __future__ import annotations

import hashlib
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

__all__ = [
    "KEYS",
    "START",
    "pool_items",
    "pool_payloads",
    "snapshot_time",
]

START: Final = datetime(2026, 1, 1, tzinfo=UTC)
"""Observation time of snapshot 0; snapshot ``k`` is ``START + k`` hours."""

KEYS: Final = (
    "chain",
    "project",
    "symbol",
    "tvlUsd",
    "apyBase",
    "apyReward",
    "apy",
    "rewardTokens",
    "pool",
    "apyPct1D",
    "apyPct7D",
    "apyPct30D",
    "stablecoin",
    "ilRisk",
    "exposure",
    "predictions",
    "poolMeta",
    "mu",
    "sigma",
    "count",
    "outlier",
    "underlyingTokens",
    "il7d",
    "apyBase7d",
    "apyMean30d",
    "volumeUsd1d",
    "volumeUsd7d",
    "apyBaseInception",
)
"""The keys of one ``/pools`` item, in the order the API sends them."""


def snapshot_time(k: int) -> datetime:
    """Observation time (UTC, aware) of snapshot ``k``."""
    return START + timedelta(hours=k)


# --------------------------------------------------------------------------- #
# Token addresses
# --------------------------------------------------------------------------- #


def eip55(address: str) -> str:
    """A mixed-case spelling of a ``0x`` address, shaped like EIP-55's.

    EIP-55 cases each letter by a Keccak-256 digest of the address; nothing here
    checks that checksum, only the shape matters, so the standard library's
    SHA3-256 (same family, other padding) picks the cases instead.
    """
    low = address[2:].lower()
    digest = hashlib.sha3_256(low.encode("ascii")).hexdigest()
    return "0x" + "".join(
        ch.upper() if ch.isalpha() and int(digest[i], 16) >= 8 else ch for i, ch in enumerate(low)
    )


_B58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _base58(raw: bytes) -> str:
    n = int.from_bytes(raw, "big")
    out: list[str] = []
    while n:
        n, rem = divmod(n, 58)
        out.append(_B58[rem])
    pad = len(raw) - len(raw.lstrip(b"\x00"))
    return "1" * pad + "".join(reversed(out))


def _tron_address(body: bytes) -> str:
    raw = b"\x41" + body
    check = hashlib.sha256(hashlib.sha256(raw).digest()).digest()[:4]
    return _base58(raw + check)


# --------------------------------------------------------------------------- #
# Reference data: chains, tokens, projects
# --------------------------------------------------------------------------- #

# Chain name as DefiLlama spells it -> (weight in the pool count, address family).
_CHAINS: Final[dict[str, tuple[float, str]]] = {
    "Ethereum": (20.0, "evm"),
    "Arbitrum": (9.0, "evm"),
    "Base": (10.0, "evm"),
    "BSC": (9.0, "evm"),
    "Polygon": (6.0, "evm"),
    "Solana": (7.0, "solana"),
    "Optimism": (4.0, "evm"),
    "Avalanche": (4.0, "evm"),
    "Sonic": (2.5, "evm"),
    "Tron": (0.8, "tron"),
    "Linea": (1.2, "evm"),
    "Scroll": (0.8, "evm"),
    "zkSync Era": (0.8, "evm"),
    "Mantle": (1.0, "evm"),
    "Blast": (0.6, "evm"),
    "Berachain": (1.0, "evm"),
    "Hyperliquid L1": (1.2, "evm"),
    "Gnosis": (0.6, "evm"),
}

_STABLES: Final = frozenset(
    {
        "USDC", "USDT", "DAI", "USDS", "USDE", "SUSDE", "FRAX", "PYUSD", "GHO", "CRVUSD",
        "USDC.E", "LUSD", "FDUSD", "USD0", "RLUSD", "USDT0", "SUSDS", "SDAI", "USD1",
        "FRXUSD", "SCRVUSD", "USDBC", "DOLA", "USDD", "USDX", "EUSD", "AUSD",
    }
)  # fmt: skip

_NATIVE: Final[dict[str, str]] = {
    "Ethereum": "WETH", "Arbitrum": "WETH", "Base": "WETH", "BSC": "WBNB",
    "Polygon": "WPOL", "Solana": "SOL", "Optimism": "WETH", "Avalanche": "WAVAX",
    "Sonic": "WS", "Tron": "WTRX", "Linea": "WETH", "Scroll": "WETH",
    "zkSync Era": "WETH", "Mantle": "WMNT", "Blast": "WETH", "Berachain": "WBERA",
    "Hyperliquid L1": "WHYPE", "Gnosis": "WXDAI",
}  # fmt: skip

_CORE_VOLATILE: Final = (
    "WBTC", "CBBTC", "STETH", "WSTETH", "WEETH", "RETH", "CBETH", "EZETH", "RSETH", "TBTC",
    "LBTC", "SOLVBTC", "LINK", "UNI", "AAVE", "CRV", "CVX", "PENDLE", "LDO", "ENA", "MORPHO",
    "EIGEN", "PEPE", "COMP", "ETHFI", "MKR", "SKY", "ONDO", "GMX", "ARB", "OP", "AERO",
    "VELO", "CAKE", "BTCB", "JUP", "JITOSOL", "MSOL", "BONK", "WIF", "RAY", "SUN", "JST",
    "SAVAX", "WBETH", "XVS", "WELL", "BAL", "SUSHI", "FXS", "ETH", "STS", "OS", "BERA",
    "HYPE", "KHYPE", "MNT", "METH", "ZRO", "W", "TRUMP", "VIRTUAL",
)  # fmt: skip

# Real addresses (lower case) of well-known tokens, per chain; the rest are made up.
_KNOWN: Final[dict[tuple[str, str], str]] = {
    ("Ethereum", "ETH"): "0x0000000000000000000000000000000000000000",
    ("Ethereum", "WETH"): "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
    ("Ethereum", "USDC"): "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
    ("Ethereum", "USDT"): "0xdac17f958d2ee523a2206206994597c13d831ec7",
    ("Ethereum", "DAI"): "0x6b175474e89094c44da98b954eedeac495271d0f",
    ("Ethereum", "WBTC"): "0x2260fac5e5542a773aa44fbcfedf7c193bc2c599",
    ("Ethereum", "STETH"): "0xae7ab96520de3a18e5e111b5eaab095312d7fe84",
    ("Ethereum", "WSTETH"): "0x7f39c581f595b53c5cb19bd0b3f8da6c935e2ca0",
    ("Ethereum", "WEETH"): "0xcd5fe23c85820f7b72d0926fc9b05b43e359b7ee",
    ("Ethereum", "USDS"): "0xdc035d45d973e3ec169d2276ddab16f1e407384f",
    ("Ethereum", "RETH"): "0xae78736cd615f374d3085123a210448e74fc6393",
    ("Ethereum", "CRV"): "0xd533a949740bb3306d119cc777fa900ba034cd52",
    ("Ethereum", "AAVE"): "0x7fc66500c84a76ad7e9c93437bfc5ac33e2ddae9",
    ("Ethereum", "COMP"): "0xc00e94cb662c3520282e6f5717214004a7f26888",
    ("Ethereum", "LDO"): "0x5a98fcbea516cf06857215779fd812ca3bef1b32",
    ("Ethereum", "PENDLE"): "0x808507121b80c02388fad14726482e061b8da827",
    ("Ethereum", "CVX"): "0x4e3fbd56cd56c3e72c1403e103b45db9da5b9d2b",
    ("Ethereum", "LINK"): "0x514910771af9ca656af840dff83e8264ecf986ca",
    ("Ethereum", "UNI"): "0x1f9840a85d5af5bf1d1762f925bdaddc4201f984",
    ("Ethereum", "SUSDE"): "0x9d39a5de30e57443bff2a8307a4256c8797a3497",
    ("Ethereum", "USDE"): "0x4c9edd5852cd905f086c759e8383e09bff1e68b3",
    ("Ethereum", "CBBTC"): "0xcbb7c0000ab88b473b1f5afd9ef808440eed33bf",
    ("Ethereum", "ETHFI"): "0xfe0c30065b384f05761f15d0cc899d4f9f9cc0eb",
    ("Ethereum", "KING"): "0x8f08b70456eb22f6109f57b8fafe862ed28e6040",
    ("Base", "WETH"): "0x4200000000000000000000000000000000000006",
    ("Base", "USDC"): "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913",
    ("Base", "CBBTC"): "0xcbb7c0000ab88b473b1f5afd9ef808440eed33bf",
    ("Base", "AERO"): "0x940181a94a35a4569e4529a3cdfb74e38fd98631",
    ("Arbitrum", "WETH"): "0x82af49447d8a07e3bd95bd0d56f35241523fbab1",
    ("Arbitrum", "USDC"): "0xaf88d065e77c8cc2239327c5edb3a432268e5831",
    ("Arbitrum", "ARB"): "0x912ce59144191c1204e64559fe8253a0e49e6548",
    ("Optimism", "WETH"): "0x4200000000000000000000000000000000000006",
    ("Optimism", "OP"): "0x4200000000000000000000000000000000000042",
    ("BSC", "USDT"): "0x55d398326f99059ff775485246999027b3197955",
    ("BSC", "WBNB"): "0xbb4cdb9cbd36b01bd1cbaebf2de08d9173bc095c",
    ("BSC", "CAKE"): "0x0e09fabb73bd3ade0a17ecc321fd13a19e81ce82",
    ("Solana", "SOL"): "So11111111111111111111111111111111111111112",
    ("Solana", "USDC"): "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
    ("Solana", "USDT"): "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB",
    ("Solana", "JITOSOL"): "J1toso1uCk3RLmjorhTtrVwY9HJ7X8V9yYac6Y7kGCPn",
    ("Solana", "MSOL"): "mSoLzYCxHdYgdzU16g5QSh3i5K3z3KZK7ytfqcJm7So",
    ("Solana", "JUP"): "JUPyiwrYJFskUPiHa7hkeR8VUtAeFoSYbKedZNsDvCN",
    ("Tron", "USDT"): "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
}


@dataclass(frozen=True, slots=True)
class _Project:
    name: str
    kind: str  # "dex" | "lend" | "yield" | "lst" | "reward"
    chains: tuple[str, ...]  # empty: every chain
    weight: float
    volumes: bool = False  # reports volumeUsd1d/7d, apyBase7d, il7d
    reward: str | None = None  # symbol of the usual reward token
    reward_share: float = 0.15  # share of pools with a reward APY
    checksummed: bool = True  # spells EVM addresses in EIP-55 rather than lower case


_EVM_MAJOR: Final = ("Ethereum", "Arbitrum", "Base", "Optimism", "Polygon", "BSC", "Avalanche")

_PROJECTS: Final = (
    # DEXes
    _Project("uniswap-v3", "dex", (*_EVM_MAJOR, "Linea", "Scroll", "zkSync Era", "Blast"), 10,
             volumes=True, reward_share=0.02, checksummed=False),
    _Project("uniswap-v2", "dex", ("Ethereum", "Base", "Arbitrum", "Polygon", "BSC"), 4,
             volumes=True, reward_share=0.0, checksummed=False),
    _Project("uniswap-v4", "dex", ("Ethereum", "Base", "Arbitrum", "Optimism", "BSC"), 3,
             volumes=True, reward_share=0.0, checksummed=False),
    _Project("curve-dex", "dex", ("Ethereum", "Arbitrum", "Polygon", "Optimism", "Base",
                                  "Avalanche", "Gnosis", "Sonic"), 5, reward="CRV",
             reward_share=0.3),
    _Project("balancer-v2", "dex", ("Ethereum", "Arbitrum", "Polygon", "Base", "Gnosis",
                                    "Avalanche"), 2, reward="BAL", reward_share=0.25),
    _Project("aerodrome-slipstream", "dex", ("Base",), 4, volumes=True, reward="AERO",
             reward_share=0.9),
    _Project("aerodrome-v1", "dex", ("Base",), 3, reward="AERO", reward_share=0.9),
    _Project("velodrome-v2", "dex", ("Optimism",), 2, reward="VELO", reward_share=0.9),
    _Project("pancakeswap-amm-v3", "dex", ("BSC", "Ethereum", "Base", "Arbitrum", "Linea",
                                           "zkSync Era"), 5, volumes=True, reward="CAKE",
             reward_share=0.3, checksummed=False),
    _Project("pancakeswap-amm", "dex", ("BSC",), 3, volumes=True, reward_share=0.0,
             checksummed=False),
    _Project("sushiswap", "dex", _EVM_MAJOR, 2, volumes=True, reward="SUSHI",
             reward_share=0.05, checksummed=False),
    _Project("camelot-v3", "dex", ("Arbitrum",), 1, volumes=True, checksummed=False),
    _Project("raydium-amm", "dex", ("Solana",), 4, volumes=True, reward="RAY",
             reward_share=0.1),
    _Project("orca-dex", "dex", ("Solana",), 3, volumes=True),
    _Project("meteora-dlmm", "dex", ("Solana",), 3, volumes=True, reward_share=0.05),
    _Project("sunswap-v2", "dex", ("Tron",), 1, volumes=True, reward="SUN", reward_share=0.2),
    _Project("quickswap-dex", "dex", ("Polygon",), 1, volumes=True, checksummed=False),
    _Project("shadow-exchange-clmm", "dex", ("Sonic",), 1, volumes=True, reward="OS",
             reward_share=0.8),
    _Project("kodiak-v3", "dex", ("Berachain",), 1, volumes=True, reward="BERA",
             reward_share=0.4),
    _Project("merchant-moe-liquidity-book", "dex", ("Mantle",), 1, volumes=True,
             reward="MNT", reward_share=0.3),
    _Project("hyperswap-v3", "dex", ("Hyperliquid L1",), 1, volumes=True),
    # Lending
    _Project("aave-v3", "lend", (*_EVM_MAJOR, "Sonic", "Linea", "Scroll", "zkSync Era",
                                            "Gnosis"), 4, reward_share=0.08),
    _Project("aave-v2", "lend", ("Ethereum", "Polygon", "Avalanche"), 1, reward_share=0.0),
    _Project("compound-v3", "lend", ("Ethereum", "Arbitrum", "Base", "Polygon", "Optimism",
                                     "Scroll", "Linea"), 1, reward="COMP", reward_share=0.8),
    _Project("morpho-blue", "lend", ("Ethereum", "Base", "Arbitrum", "Polygon"), 6,
             reward="MORPHO", reward_share=0.25),
    _Project("sparklend", "lend", ("Ethereum", "Gnosis"), 1, reward_share=0.0),
    _Project("venus-core-pool", "lend", ("BSC",), 2, reward="XVS", reward_share=0.5,
             checksummed=False),
    _Project("justlend", "lend", ("Tron",), 1, reward="JST", reward_share=0.6),
    _Project("kamino-lend", "lend", ("Solana",), 2, reward_share=0.1),
    _Project("marginfi-lending", "lend", ("Solana",), 1, reward_share=0.05),
    _Project("fluid-lending", "lend", ("Ethereum", "Arbitrum", "Base", "Polygon"), 1,
             reward_share=0.2),
    _Project("euler-v2", "lend", ("Ethereum", "Base", "Sonic", "Avalanche", "BSC"), 3,
             reward_share=0.15),
    _Project("silo-v2", "lend", ("Sonic", "Ethereum", "Arbitrum", "Avalanche"), 2,
             reward="STS", reward_share=0.3),
    _Project("moonwell-lending", "lend", ("Base", "Optimism"), 1, reward="WELL",
             reward_share=0.9, checksummed=False),
    _Project("benqi-lending", "lend", ("Avalanche",), 1, reward="WAVAX", reward_share=0.5),
    _Project("radiant-v2", "lend", ("Arbitrum", "BSC", "Ethereum", "Base"), 1,
             reward_share=0.2),
    _Project("hyperlend-pooled", "lend", ("Hyperliquid L1",), 1, reward_share=0.1),
    # Yield aggregators and structured yield
    _Project("pendle", "yield", ("Ethereum", "Arbitrum", "Base", "BSC", "Sonic", "Mantle",
                                 "Berachain", "Hyperliquid L1"), 4, reward="PENDLE",
             reward_share=0.6),
    _Project("beefy", "yield", (), 6, reward_share=0.0, checksummed=False),
    _Project("yearn-finance", "yield", ("Ethereum", "Arbitrum", "Polygon", "Base",
                                        "Optimism"), 2, reward_share=0.05),
    _Project("convex-finance", "yield", ("Ethereum", "Arbitrum"), 2, reward="CVX",
             reward_share=0.95),
    _Project("stakedao", "yield", ("Ethereum", "Arbitrum", "Base"), 1, reward="CRV",
             reward_share=0.9),
    _Project("equilibria", "yield", ("Ethereum", "Arbitrum", "BSC"), 1, reward="PENDLE",
             reward_share=0.9),
    _Project("penpie", "yield", ("Ethereum", "Arbitrum", "BSC"), 1, reward="PENDLE",
             reward_share=0.9),
    _Project("kamino-liquidity", "yield", ("Solana",), 2, reward_share=0.2),
    _Project("gamma", "yield", ("Polygon", "Arbitrum", "BSC", "Base", "Optimism"), 1,
             reward_share=0.3, checksummed=False),
    _Project("harvest-finance", "yield", ("Ethereum", "Arbitrum", "Base", "Polygon"), 1,
             reward_share=0.3),
    _Project("merkl", "reward", (), 5, reward_share=1.0),
)  # fmt: skip

# Hand-made flagship pools, modelled on real ones: (chain, project, symbol, TVL,
# apyBase, apyReward, apy when both are null, stablecoin, poolMeta, reward symbol,
# underlying symbol or None for a null list).
_Flagship = tuple[str, str, str, float, float | None, float | None, float | None, bool,
                  str | None, str | None, str | None]  # fmt: skip
_FLAGSHIPS: Final[tuple[_Flagship, ...]] = (
    ("Ethereum", "lido", "STETH", 3.2e10, 2.7, None, None, False, None, None, "ETH"),
    ("Ethereum", "binance-staked-eth", "WBETH", 1.2e10, 2.45, None, None, False, None, None,
     "WETH"),
    ("Ethereum", "ether.fi-stake", "WEETH", 6.07e9, 2.85, 0.52, None, False, None, "KING",
     "WETH"),
    ("Ethereum", "rocket-pool", "RETH", 4.1e9, 2.35, None, None, False, None, None, "WETH"),
    ("Ethereum", "ethena-usde", "SUSDE", 5.7e9, 5.33, None, None, True, "7 days unstaking",
     None, None),
    ("Ethereum", "sky-lending", "SUSDS", 2.08e9, None, None, 4.75, True, None, None, "USDS"),
    ("Ethereum", "aave-v3", "WEETH", 8.1e9, 0.0004, None, None, False, None, None, "WEETH"),
    ("Ethereum", "aave-v3", "WSTETH", 4.8e9, 0.043, None, None, False, None, None, "WSTETH"),
    ("Ethereum", "aave-v3", "WBTC", 4.8e9, 0.0066, None, None, False, None, None, "WBTC"),
    ("Ethereum", "aave-v3", "USDT", 5.9e9, 4.1, None, None, True, None, None, "USDT"),
    ("Ethereum", "aave-v3", "USDC", 3.9e9, 4.4, None, None, True, None, None, "USDC"),
    ("Ethereum", "sparklend", "WSTETH", 3.1e9, 0.00004, None, None, False, None, None,
     "WSTETH"),
    ("Ethereum", "maple", "USDC", 2.66e9, 6.94, 2.2, None, True, "Syrup USDC", "SYRUP",
     "USDC"),
    ("Ethereum", "coinbase-wrapped-staked-eth", "CBETH", 2.0e9, 2.6, None, None, False, None,
     None, "WETH"),
    ("Ethereum", "kelp-dao", "RSETH", 1.5e9, 2.9, None, None, False, None, None, "WETH"),
    ("Ethereum", "renzo", "EZETH", 8.0e8, 2.8, None, None, False, None, None, "WETH"),
    ("Solana", "jito-liquid-staking", "JITOSOL", 2.98e9, 6.74, None, None, False, None, None,
     "JITOSOL"),
    ("Solana", "marinade-liquid-staking", "MSOL", 9.0e8, 7.1, None, None, False, None, None,
     "MSOL"),
    ("BSC", "binance-staked-eth", "WBETH", 6.0e8, 2.45, None, None, False, None, None, "ETH"),
    ("Avalanche", "benqi-staked-avax", "SAVAX", 3.5e8, 5.4, None, None, False, None, None,
     "WAVAX"),
    ("Tron", "justlend", "USDT", 6.1e8, 1.2, 3.1, None, True, None, "JST", "USDT"),
    ("Hyperliquid L1", "hyperliquid-hlp", "USDC", 3.7e8, None, None, 11.2, True, None, None,
     "USDC"),
)  # fmt: skip

_CURATORS: Final = (
    "Steakhouse", "Gauntlet", "Re7", "MEV Capital", "Block Analitica", "Smokehouse", "9Summits",
    "Moonwell Flagship", "Spark", "Seamless", "Ionic Ecosystem", "Relend", "Hakutora",
    "Apostro", "K3 Capital", "Clearstar", "Resolv", "Yearn OG", "Euler Prime", "Alpha",
)  # fmt: skip
_MATURITIES: Final = (
    "26MAR2026", "30APR2026", "28MAY2026", "25JUN2026", "30JUL2026", "24SEP2026",
    "26DEC2026", "25MAR2027",
)  # fmt: skip
_FEE_TIERS: Final = ("0.01%", "0.05%", "0.3%", "1%")
_FEE_TIER_WEIGHTS: Final = (0.2, 0.35, 0.35, 0.1)


# --------------------------------------------------------------------------- #
# Building the pools
# --------------------------------------------------------------------------- #


def _num(x: float) -> float | int:
    """JavaScript's spelling: an integral number has no fractional part."""
    return int(x) if x.is_integer() else x


class _Universe:
    """Token symbols and addresses of every chain, made once per seed."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.stables: dict[str, list[str]] = {}
        self.volatile: dict[str, list[str]] = {}
        self.address: dict[tuple[str, str], str] = {}  # lower case on EVM chains
        self.checksummed: dict[str, str] = {}  # EIP-55 spellings, made on first use
        letters = "ABCDEFGHIJKLMNOPRSTUVWXYZ"
        for chain, (_, family) in _CHAINS.items():
            stables = sorted(_STABLES)
            rng.shuffle(stables)
            stables = stables[: rng.randint(8, len(stables))]
            for must in ("USDT", "USDC"):
                if must not in stables:
                    stables.insert(0, must)
            volatile = [_NATIVE[chain], *rng.sample(_CORE_VOLATILE, 30)]
            tail = {
                "".join(rng.choices(letters, k=rng.randint(2, 6)))
                + rng.choice(("", "", "", "", "X", "AI", "FI", "INU", "DOGE", "ETH", "2"))
                for _ in range(180)
            }
            volatile.extend(sorted(tail - set(volatile) - _STABLES))
            self.stables[chain] = stables
            self.volatile[chain] = volatile
            for sym in stables + volatile:
                known = _KNOWN.get((chain, sym))
                if known is not None:
                    addr = known
                elif family == "evm":
                    addr = "0x" + rng.getrandbits(160).to_bytes(20, "big").hex()
                elif family == "solana":
                    addr = _base58(rng.getrandbits(256).to_bytes(32, "big"))
                else:
                    addr = _tron_address(rng.getrandbits(160).to_bytes(20, "big"))
                self.address[(chain, sym)] = addr

    def addr(self, chain: str, sym: str, checksummed: bool) -> str:
        key = (chain, sym)
        a = self.address.get(key)
        if a is None:  # a token outside the chain's list (some flagship tokens)
            a = _KNOWN.get(key)
            if a is None:
                family = _CHAINS[chain][1]
                raw = self.rng.getrandbits(160).to_bytes(20, "big")
                a = (
                    "0x" + raw.hex()
                    if family == "evm"
                    else _tron_address(raw)
                    if family == "tron"
                    else _base58(raw + self.rng.getrandbits(96).to_bytes(12, "big"))
                )
            self.address[key] = a
        if not checksummed or not a.startswith("0x"):
            return a
        c = self.checksummed.get(a)
        if c is None:
            c = self.checksummed[a] = eip55(a)
        return c


# The values that change from one snapshot to the next, in this order:
_DYNAMIC: Final = ("tvlUsd", "apyBase", "apyReward", "apy", "apyPct1D", "count", "volumeUsd1d")
_Num = float | int
_Dyn = tuple[_Num, _Num | None, _Num | None, _Num, _Num | None, int, float | None]
# Per pool: TVL, integer TVL?, apyBase, apyReward, apy when both are null, scale of
# apyPct1D (None: null), count, volumeUsd1d.
_Base = tuple[float, bool, _Num | None, _Num | None, float | None, _Num | None, int,
              float | None]  # fmt: skip


@dataclass(slots=True)
class _Pool:
    template: dict[str, Any]  # every key; the dynamic ones hold their snapshot-0 base
    base: _Base


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _prediction(rng: random.Random, count: int) -> dict[str, Any]:
    if count < 14 or rng.random() < 0.04:
        return {"predictedClass": None, "predictedProbability": None, "binnedConfidence": None}
    p = rng.randint(50, 99)
    prob = _num(p / 100 * 100)  # 56 -> 56.00000000000001, as the API computes it
    return {
        "predictedClass": "Stable/Up" if rng.random() < 0.62 else "Down",
        "predictedProbability": prob,
        "binnedConfidence": 1 if p < 60 else 2 if p < 75 else 3,
    }


def _round5(x: float) -> _Num:
    return _num(round(x, 5))


def _opt5(x: float | None) -> _Num | None:
    return None if x is None else _round5(x)


def _make_pool(
    rng: random.Random,
    uni: _Universe,
    chain: str,
    project: _Project | str,
    symbols: list[str],
    tvl: float,
    apy_base: float | None,
    apy_reward: float | None,
    apy_alone: float | None,
    stable: bool,
    pool_meta: str | None,
    reward: list[str] | None,
    underlying_symbols: list[str] | None,
) -> _Pool:
    proj = project if isinstance(project, _Project) else None
    name = project.name if isinstance(project, _Project) else project
    checksummed = proj.checksummed if proj is not None else True
    volumes = proj.volumes if proj is not None else False
    multi = len(symbols) > 1
    count = max(1, min(1650, int(_lognormal(rng, 220.0, 1.35))))
    apy_now = (apy_base or 0.0) + (apy_reward or 0.0) if apy_alone is None else apy_alone
    fixed = apy_now == 0.0 or rng.random() < 0.03  # pools whose APY does not move
    sig = 0.0 if fixed else abs(_lognormal(rng, 0.04 if not multi else 0.25, 1.3))

    def pct(min_count: int, spread: float, gaps: float) -> _Num | None:
        # null for young pools and, at random, where the history has gaps
        if count < min_count or rng.random() < gaps:
            return None
        if fixed:
            return 0
        return _round5(rng.gauss(0.0, spread * max(apy_now, 0.01)))

    underlying: list[str | None] | None = None
    if underlying_symbols is not None:
        underlying = [uni.addr(chain, s, checksummed) for s in underlying_symbols]
        if rng.random() < 0.003:
            underlying[-1] = None  # seen in real responses
    reward_tokens: list[str | None] | None
    if reward is None:
        reward_tokens = [] if apy_reward is None and rng.random() < 0.08 else None
    else:
        reward_tokens = [uni.addr(chain, s, checksummed) for s in reward]
    vol1: float | None = None
    vol7: float | None = None
    il7d: _Num | None = None
    apy_base7d: _Num | None = None
    if volumes and multi and count >= 2:
        vol1 = tvl * _lognormal(rng, 0.08 if not stable else 0.3, 1.2)
        vol7 = vol1 * 7 * _lognormal(rng, 1.0, 0.25)
        if apy_base is not None:
            apy_base7d = _round5(apy_base * _lognormal(rng, 1.0, 0.3))
        if name.startswith("uniswap-v3") and rng.random() < 0.5:
            il7d = _round5(abs(rng.gauss(0.0, 0.02 if stable else 1.5)))
    elif apy_base is not None and rng.random() < 0.12:
        apy_base7d = _round5(apy_base * _lognormal(rng, 1.0, 0.15))
    mean30 = None if count < 2 else _round5(max(0.0, apy_now * _lognormal(rng, 1.0, 0.15)))
    mu = _round5(max(0.0, apy_now * _lognormal(rng, 1.05, 0.35)))
    inception = (
        _round5(apy_now * _lognormal(rng, 1.0, 0.4))
        if name in ("yearn-finance", "beefy", "pendle", "harvest-finance") and rng.random() < 0.4
        else None
    )
    tvl_int = rng.random() < 0.94
    template: dict[str, Any] = {
        "chain": chain,
        "project": name,
        "symbol": "-".join(symbols),
        "tvlUsd": round(tvl) if tvl_int else round(tvl, 2),
        "apyBase": _opt5(apy_base),
        "apyReward": _opt5(apy_reward),
        "apy": _round5(apy_now),
        "rewardTokens": reward_tokens,
        "pool": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "apyPct1D": None,
        "apyPct7D": pct(8, 0.12, 0.07),
        "apyPct30D": pct(31, 0.25, 0.1),
        "stablecoin": stable,
        "ilRisk": "yes" if multi and not stable else "no",
        "exposure": "multi" if multi else "single",
        "predictions": _prediction(rng, count),
        "poolMeta": pool_meta,
        "mu": mu,
        "sigma": _round5(sig),
        "count": count,
        "outlier": (apy_now > 300 and rng.random() < 0.7) or rng.random() < 0.004,
        "underlyingTokens": underlying,
        "il7d": il7d,
        "apyBase7d": apy_base7d,
        "apyMean30d": mean30,
        "volumeUsd1d": vol1,
        "volumeUsd7d": vol7,
        "apyBaseInception": inception,
    }
    base: _Base = (
        tvl,
        tvl_int,
        _opt5(apy_base),
        _opt5(apy_reward),
        apy_alone,
        None if count < 2 or rng.random() < 0.05 else 0 if fixed else 0.05 * max(apy_now, 0.01),
        count,
        vol1,
    )
    return _Pool(template, base)


def _random_pool(rng: random.Random, uni: _Universe) -> _Pool:
    proj = rng.choices(_PROJECTS, weights=[p.weight for p in _PROJECTS])[0]
    chains = proj.chains or tuple(c for c in _CHAINS if c != "Tron")
    chain = rng.choices(chains, weights=[_CHAINS[c][0] for c in chains])[0]
    stables, volatile = uni.stables[chain], uni.volatile[chain]
    majors = volatile[:31]

    def pick_volatile() -> str:
        # Majors are listed far more often than the long tail.
        return rng.choice(majors) if rng.random() < 0.55 else rng.choice(volatile)

    kind = proj.kind
    pool_meta: str | None = None
    if kind == "dex" or (kind in ("yield", "reward") and rng.random() < 0.55):
        shape = rng.random()
        if shape < 0.22:
            three = proj.name.startswith("curve") and shape < 0.1
            symbols = rng.sample(stables, 3 if three else 2)
        elif shape < 0.75:
            symbols = [pick_volatile(), rng.choice((_NATIVE[chain], *stables[:3]))]
        else:
            symbols = [pick_volatile(), pick_volatile()]
        symbols = list(dict.fromkeys(symbols))
        if len(symbols) == 1:
            symbols.append(rng.choice(stables))
        if proj.name.startswith("balancer") and rng.random() < 0.3:
            symbols.append(pick_volatile())
            symbols = list(dict.fromkeys(symbols))
        if (proj.volumes and "v3" in proj.name) or proj.name.endswith("clmm"):
            pool_meta = rng.choices(_FEE_TIERS, weights=_FEE_TIER_WEIGHTS)[0]
    else:
        symbols = [rng.choice(stables) if rng.random() < 0.5 else pick_volatile()]
    stable = all(s in _STABLES for s in symbols)

    tvl = max(10_000.0 * _lognormal(rng, 1.0, 0.15), _lognormal(rng, 180_000.0, 2.3))
    if kind == "dex":
        base = _lognormal(rng, 3.0 if stable else 12.0, 1.4)
    elif kind == "lend":
        base = _lognormal(rng, 4.5, 0.55) if stable else _lognormal(rng, 0.6, 1.6)
    elif kind == "yield":
        base = _lognormal(rng, 7.0 if stable else 9.0, 0.9)
    else:
        base = 0.0
    apy_base: float | None = round(base, 5)
    if kind == "reward" or (
        proj.name.startswith(("aerodrome", "velodrome")) and rng.random() < 0.7
    ):
        apy_base = None if rng.random() < 0.6 else 0.0
    elif rng.random() < 0.08:
        apy_base = None
    elif rng.random() < 0.05:
        apy_base = 0.0
    reward: list[str] | None = None
    apy_reward: float | None = None
    if rng.random() < proj.reward_share:
        apy_reward = round(_lognormal(rng, 2.0 if kind != "dex" else 15.0, 1.3), 5)
        reward = [proj.reward or pick_volatile()]
        if rng.random() < 0.12:
            reward = list(dict.fromkeys((*reward, pick_volatile())))
    elif rng.random() < 0.02:
        apy_reward = 0.0
    apy_alone = None
    if apy_base is None and apy_reward is None:
        apy_alone = round(_lognormal(rng, 5.0, 1.0), 5)

    if proj.name == "morpho-blue" or proj.name.startswith("euler"):
        pool_meta = f"{rng.choice(_CURATORS)} {symbols[0]}" if rng.random() < 0.8 else None
    elif proj.name in ("pendle", "equilibria", "penpie"):
        pool_meta = (
            f"For buying PT-{symbols[0]}-{rng.choice(_MATURITIES)}"
            if rng.random() < 0.35
            else rng.choice(_MATURITIES)
        )
    elif proj.name == "beefy" and rng.random() < 0.6:
        pool_meta = rng.choice(("uniswap-v3", "curve-dex", "aerodrome-v1", "velodrome-v2",
                                "pancakeswap-amm-v3", "camelot-v3", "balancer-v2"))  # fmt: skip
    elif rng.random() < 0.06:
        pool_meta = rng.choice(("7d lockup", "Boosted", "Isolated", "Vault", "Leveraged"))
    underlying = None if rng.random() < 0.07 else symbols
    return _make_pool(
        rng, uni, chain, proj, symbols, tvl, apy_base, apy_reward, apy_alone, stable,
        pool_meta, reward, underlying,
    )  # fmt: skip


def _make_pools(n: int, seed: int) -> list[_Pool]:
    rng = random.Random(seed)
    uni = _Universe(rng)
    pools: list[_Pool] = []
    for chain, project, sym, tvl, ab, ar, alone, stable, meta, rsym, usym in _FLAGSHIPS[:n]:
        pools.append(
            _make_pool(
                rng,
                uni,
                chain,
                project,
                [sym],
                tvl * _lognormal(rng, 1.0, 0.05),
                ab,
                ar,
                alone,
                stable,
                meta,
                None if rsym is None else [rsym],
                None if usym is None else [usym],
            )
        )
    while len(pools) < n:
        pools.append(_random_pool(rng, uni))
    # Ordered as the API orders them: by TVL, largest first.
    pools.sort(key=lambda p: -p.base[0])
    return pools


# --------------------------------------------------------------------------- #
# Snapshots
# --------------------------------------------------------------------------- #

_NOISE_BITS: Final = 16
_NOISE_MASK: Final = (1 << _NOISE_BITS) - 1


class _Plan:
    """The pools of one run, their JSON templates and a noise table."""

    def __init__(self, n: int, seed: int, batch: int) -> None:
        if n < 0:
            raise ValueError("n must be >= 0")
        if batch < 1:
            raise ValueError("batch must be >= 1")
        pools = _make_pools(min(n, batch), seed)
        self.templates = [p.template for p in pools]
        self.bases = [p.base for p in pools]
        self._fmts: list[bytes] | None = None
        rng = random.Random(seed ^ 0x5EED)
        self.noise = [max(-3.0, min(3.0, rng.gauss(0.0, 1.0))) for _ in range(1 << _NOISE_BITS)]

    @property
    def fmts(self) -> list[bytes]:
        """Per pool, its JSON with a ``%b`` hole for each dynamic value."""
        if self._fmts is None:
            holes = {key: f"\x01{j}\x01" for j, key in enumerate(_DYNAMIC)}
            fmts: list[bytes] = []
            for tpl in self.templates:
                raw = orjson.dumps({**tpl, **holes}).replace(b"%", b"%%")
                for hole in holes.values():
                    raw = raw.replace(orjson.dumps(hole), b"%b")
                fmts.append(raw)
            self._fmts = fmts
        return self._fmts

    def _snapshot(self, m: int, k: int, fmts: list[bytes] | None) -> list[Any]:
        """Snapshot ``k`` of the first ``m`` pools: the dynamic values of each pool,
        or with ``fmts`` its JSON (one loop for both, so that they cannot disagree)."""
        noise = self.noise
        bases = self.bases
        dumps = orjson.dumps
        out: list[Any] = []
        append = out.append
        mask = _NOISE_MASK
        off1 = (k * 7919) & mask
        off2 = (k * 104_729 + 13) & mask
        off3 = (k * 15_485_863 + 101) & mask
        f0 = 1.0 + math.sin(k / 9.0) * 0.01  # a slow market-wide TVL swing
        day = k // 24
        for i in range(m):
            tvl0, tvl_int, ab, ar, alone, ps, count, vol1 = bases[i]
            z1 = noise[(i * 40_503 + off1) & mask]
            z2 = noise[(i * 9_973 + off2) & mask]
            f = f0 + 0.004 * z1
            # round(x * 1e5) / 1e5 is the double nearest to x rounded to 5 decimals, as
            # round(x, 5) is, at a fifth of its cost; "or 0" spells 0.0 as JavaScript does.
            tvl: _Num = round(tvl0 * f) if tvl_int else round(tvl0 * f * 100.0) / 100.0
            if ab:
                ab = round(ab * (1.0 + 0.03 * z2) * 1e5) / 1e5 or 0
            if ar:
                ar = round(ar * (1.0 - 0.02 * z1) * 1e5) / 1e5 or 0
            if alone is None:
                apy: _Num = round(((ab or 0) + (ar or 0)) * 1e5) / 1e5 or 0
            else:
                apy = round(alone * (1.0 + 0.01 * z2) * 1e5) / 1e5
            if ps:
                ps = round(ps * noise[(i * 31 + off3) & mask] * 1e5) / 1e5 or 0
            dyn = (
                tvl, ab, ar, apy, ps, count + day,
                None if vol1 is None else vol1 * (1.0 + 0.05 * z2) * f,
            )  # fmt: skip
            if fmts is None:
                append(dyn)
            else:
                # The values are numbers or null: no comma inside any of them.
                append(fmts[i] % tuple(dumps(dyn)[1:-1].split(b",")))
        return out

    def items(self, m: int, k: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        append = out.append
        templates = self.templates
        dyns: list[_Dyn] = self._snapshot(m, k, None)
        for i in range(m):
            d = templates[i].copy()
            (
                d["tvlUsd"], d["apyBase"], d["apyReward"], d["apy"], d["apyPct1D"], d["count"],
                d["volumeUsd1d"],
            ) = dyns[i]  # fmt: skip
            # Fresh nested containers, so that callers may mutate what they get.
            rt = d["rewardTokens"]
            if rt is not None:
                d["rewardTokens"] = rt.copy()
            ut = d["underlyingTokens"]
            if ut is not None:
                d["underlyingTokens"] = ut.copy()
            d["predictions"] = d["predictions"].copy()
            append(d)
        return out

    def payloads(self, m: int, k: int) -> list[bytes]:
        payloads: list[bytes] = self._snapshot(m, k, self.fmts)
        return payloads

    def snapshots(self, n: int) -> Iterator[tuple[int, int]]:
        """``(k, m)``: snapshot index and its number of pools, adding up to ``n``."""
        k = 0
        left = n
        while left > 0:
            m = min(left, len(self.bases))
            yield k, m
            left -= m
            k += 1


def pool_items(
    n: int, *, seed: int = 0, batch: int = 20_000
) -> Iterator[tuple[datetime, list[dict[str, Any]]]]:
    """Yield ``(fetched_at, items)`` hourly snapshots adding up to ``n`` items.

    The first ``min(n, batch)`` pools make up every snapshot; snapshot ``k`` is
    observed at :func:`snapshot_time` ``(k)``; the last one may hold fewer pools.
    Every item is a new dict with new nested lists and dicts: callers may mutate it.
    """
    plan = _Plan(n, seed, batch)
    for k, m in plan.snapshots(n):
        yield snapshot_time(k), plan.items(m, k)


def pool_payloads(
    n: int, *, seed: int = 0, batch: int = 20_000
) -> Iterator[tuple[datetime, list[bytes]]]:
    """Same snapshots as :func:`pool_items`, each item as compact JSON bytes.

    The bytes equal ``orjson.dumps(item)`` of the matching :func:`pool_items` item;
    they are spliced from per-pool templates rather than serialized item by item.
    """
    plan = _Plan(n, seed, batch)
    for k, m in plan.snapshots(n):
        yield snapshot_time(k), plan.payloads(m, k)


def _main() -> None:
    import argparse
    import json
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument(
        "--check", action="store_true", help="also check payloads against orjson.dumps(items)"
    )
    args = parser.parse_args()
    report: dict[str, Any] = {"rows": args.rows}
    for name, gen in (("payloads", pool_payloads), ("items", pool_items)):
        start = time.perf_counter()
        first = 0.0
        rows = 0
        for _, batch in gen(args.rows, seed=args.seed, batch=args.batch):
            if not first:
                first = time.perf_counter() - start
            rows += len(batch)
        seconds = time.perf_counter() - start
        report[name] = {
            "seconds": round(seconds, 3),
            "items_per_s": round(rows / seconds),
            "first_snapshot_s": round(first, 3),
        }
    if args.check:
        pairs = zip(
            pool_items(args.rows, seed=args.seed, batch=args.batch),
            pool_payloads(args.rows, seed=args.seed, batch=args.batch),
            strict=True,
        )
        for (at_a, items), (at_b, payloads) in pairs:
            assert at_a == at_b
            assert len(items) == len(payloads)
            for item, payload in zip(items, payloads, strict=True):
                assert tuple(item) == KEYS
                assert orjson.dumps(item) == payload
        report["check"] = "ok"
    print(json.dumps(report))


if __name__ == "__main__":
    _main()
