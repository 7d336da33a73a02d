"""Strategy classification: DefiLlama protocol categories -> Strategy, in one table.

DefiLlama's ``/protocols`` gives each protocol a ``category``; a pool in ``/pools``
names its protocol in ``project`` (the protocol's ``slug``). Unknown or missing
categories classify as ``other``: the observation is kept, never dropped, and the
upstream category is stored beside it so a later table change can be replayed.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from yieldstream.contracts import Strategy

_S, _L, _F = Strategy.STAKING, Strategy.LENDING, Strategy.FARMING

CATEGORY_STRATEGY: Final[Mapping[str, Strategy]] = MappingProxyType(
    {
        # staking: lock tokens to secure a proof-of-stake network
        "liquid staking": _S,
        "liquid restaking": _S,
        "restaking": _S,
        "restaked btc": _S,
        "staking pool": _S,
        "staking": _S,
        "liquid staking derivatives": _S,
        # lending: supply assets to a lending market
        "lending": _L,
        "cdp": _L,
        "nft lending": _L,
        "uncollateralized lending": _L,
        "rwa lending": _L,
        "p2p lending": _L,
        "onchain capital allocator": _L,
        # farming: provide liquidity to DEX pools or vaults
        "dexs": _F,
        "dexes": _F,
        "yield": _F,
        "yield aggregator": _F,
        "farm": _F,
        "liquidity manager": _F,
        "leveraged farming": _F,
        "options vault": _F,
        "derivatives": _F,
        "basis trading": _F,
    }
)


def strategy_for(category: str | None) -> Strategy:
    """The strategy of a DefiLlama category (case-insensitive); unknown -> other."""
    if not category:
        return Strategy.OTHER
    return CATEGORY_STRATEGY.get(category.strip().lower(), Strategy.OTHER)
