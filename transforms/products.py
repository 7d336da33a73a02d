"""Product identity: the same way of earning, named the same by every source.

A product is one way of earning on one asset at one venue: a pool, a lending
reserve, a staking token, an exchange earn product. Its id is

    ``<protocol>:<chain>:<token>`` (and ``:<variant>`` when one protocol has several
    products for the same token on the same chain, e.g. a DEX pool's fee tier)

each part normalised by :func:`normal` (lower case, runs of spaces, ``_`` and
``/`` as ``-``), then looked up in the curated alias tables below. The namespace
is DefiLlama's: its protocol slugs (``lido``, ``aave-v3``, ``rocket-pool``) and its
chain names (``ethereum``, ``arbitrum``, ``bsc``), because DefiLlama lists the most
products; a first-party source that names a protocol, chain or token differently
gets an alias here, so that Lido's own stETH figure and DefiLlama's Lido stETH
pool share ``lido:ethereum:steth`` and meet in the ``crosscheck`` view.

Pure and deterministic: the same names always give the same id, so a changed alias
table is applied to stored history by ``yieldstream replay``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Final

_SEPARATORS = re.compile(r"[\s_/]+")
_DASHES = re.compile(r"-{2,}")

# Protocol names as other sources spell them -> DefiLlama's protocol slug.
PROTOCOL_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "lido-finance": "lido",
        "rocketpool": "rocket-pool",
        "marinade": "marinade-liquid-staking",
        "marinade-finance": "marinade-liquid-staking",
        "jito": "jito-liquid-staking",
        "frax": "frax-ether",
        "coinbase": "coinbase-wrapped-staked-eth",
    }
)

# Chain names and ids as other sources spell them -> DefiLlama's chain name.
CHAIN_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "eth": "ethereum",
        "mainnet": "ethereum",
        "ethereum-mainnet": "ethereum",
        "1": "ethereum",
        "binance": "bsc",
        "bnb": "bsc",
        "bnb-chain": "bsc",
        "bnb-smart-chain": "bsc",
        "56": "bsc",
        "arbitrum-one": "arbitrum",
        "42161": "arbitrum",
        "op-mainnet": "optimism",
        "10": "optimism",
        "matic": "polygon",
        "polygon-pos": "polygon",
        "137": "polygon",
        "avax": "avalanche",
        "avalanche-c-chain": "avalanche",
        "43114": "avalanche",
        "8453": "base",
        "sol": "solana",
    }
)

# Token symbols as other sources spell them -> the symbol DefiLlama lists.
TOKEN_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "st-eth": "steth",
        "r-eth": "reth",
        "m-sol": "msol",
        "jito-sol": "jitosol",
        "cb-eth": "cbeth",
        "sfrx-eth": "sfrxeth",
    }
)


def normal(name: str) -> str:
    """One part of an id: lower case, spaces, ``_`` and ``/`` as ``-``, no ``:``."""
    text = _SEPARATORS.sub("-", name.strip().lower()).replace(":", "-")
    return _DASHES.sub("-", text).strip("-")


@lru_cache(maxsize=65536)  # a source's products repeat every poll
def product_id(protocol: str, chain: str, token: str, variant: str | None = None) -> str:
    """The id of the product ``token`` of ``protocol`` on ``chain`` (see the module doc).

    ``token`` is the receipt token the saver holds (stETH, an LP token's pair name)
    or, where there is none, the asset supplied. A part that is empty once
    normalised is written ``_`` (an observation without a protocol or chain is
    rejected by its own validation; a pool without a symbol keeps its row).
    """
    parts = [
        _alias(PROTOCOL_ALIASES, protocol) or "_",
        _alias(CHAIN_ALIASES, chain) or "_",
        _alias(TOKEN_ALIASES, token) or "_",
    ]
    if variant and (extra := normal(variant)):
        parts.append(extra)
    return ":".join(parts)


def _alias(aliases: Mapping[str, str], name: str) -> str:
    key = normal(name)
    return aliases.get(key, key)
