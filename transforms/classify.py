"""Strategy classification: a pool's protocol category and its own fields -> Strategy.

DefiLlama's ``/protocols`` gives each protocol a ``category``; a pool in ``/pools``
names its protocol in ``project`` (the protocol's ``slug``) and describes itself:
``exposure`` (``single``/``multi``), ``ilRisk``, ``symbol`` (an LP is ``USDC-WETH``),
``stablecoin``, ``underlyingTokens``, ``rewardTokens``, ``poolMeta`` and its APY split.
:func:`classify` reads both, in this order:

1. An LP position is ``farming`` in any category: impermanent loss and trading fees
   make its return, whoever runs the pool. A pool is an LP when ``ilRisk`` is
   ``yes`` or ``exposure`` is ``multi``; when ``exposure`` is missing (older
   records), a pair symbol or two or more underlying tokens say so.
2. A known category decides the rest (:data:`CATEGORY_STRATEGY`). The categories in
   :data:`POOL_DECIDES` take both single-asset deposits and LP positions (vaults):
   their single-asset pools are classified by rule 3, their other pools take the
   table's strategy.
3. Without a known category the pool's fields give a best guess, flagged
   ``guessed``: a liquid-staking token that is no stablecoin (stETH, weETH, mSOL:
   a proof-of-stake coin's ticker behind a short prefix other than the wrapper's
   ``W``; or a pool whose ``poolMeta`` says liquid staking) is ``staking``; a
   deposit paid only in reward tokens (no base APY at all) is ``farming``; any
   other single-asset deposit is ``lending`` (lending markets, savings and credit
   vaults are most of them); fields that say neither single nor LP leave ``other``.

Every category is matched case-insensitively, surrounding space ignored. The table
holds every category DefiLlama's ``/protocols`` uses: the whitelist of the test "no
surprise category" in DefiLlama/defillama-server ``defi/src/protocols/data.test.ts``
(commit 00a307a3fb90a17f5819a9322bb48a482816f173, 100 names, plus "Interest Rate
Derivatives" from its next version, seen in the fork tnrdd/defillama-server at
c68af3f91ced4d29492196015c8eddea67610af2), and the older names the same test held
at commit 7faedbe080e43f9d09357cc759633a74f47ee8cb, which 2022 responses carry
(Dexes, Cross Chain, Staking, Infrastructure). A category that is not in the table
is kept beside the observation and classified as if unknown (rule 3), so that a
table change can be replayed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from yieldstream.contracts import Strategy

_S, _L, _F, _O = Strategy.STAKING, Strategy.LENDING, Strategy.FARMING, Strategy.OTHER

CATEGORY_STRATEGY: Final[Mapping[str, Strategy]] = MappingProxyType(
    {
        # --- staking: stake secures a network or a service and is paid for it
        "liquid staking": _S,  # a liquid token for stake in a proof-of-stake chain
        "liquid restaking": _S,  # staked ETH restaked to secure other services too
        "restaking": _S,  # the same, without a liquid token
        "restaked btc": _S,  # BTC staked (Babylon) to secure proof-of-stake chains
        "staking pool": _S,  # pooled validator stake
        "staking": _S,  # 2022 name of the above
        "staking rental": _S,  # stake's resources (TRON energy) rented out: staking yield
        "oracle": _S,  # node and community stake securing an oracle network
        # --- lending: interest paid by borrowers (or debtors) to the depositor
        "lending": _L,  # supply to a lending market
        "cdp": _L,  # a CDP's savings rate and stability pool pass on borrowers' interest
        "cdp manager": _L,  # automation of CDP positions: borrowing and lending
        "nft lending": _L,  # loans against NFTs
        "uncollateralized lending": _L,  # credit pools lent to known borrowers
        "rwa lending": _L,  # credit to real-world borrowers
        "rwa": _L,  # tokenised treasuries and credit: the yield is their interest
        "secondary debt markets": _L,  # buying existing loans: a lender's return
        "onchain capital allocator": _L,  # curated deposits lent across markets
        "risk curators": _L,  # curated lending vaults (Morpho, Euler)
        "basis trading": _L,  # cash-and-carry: longs' funding pays for the dollars
        "stablecoin issuer": _L,  # a stablecoin's savings rate: its reserves' interest
        "stablecoin wrapper": _L,  # a yield-bearing wrapper passes its reserves' interest
        "yield lottery": _L,  # no-loss lottery: deposits are lent, interest paid as prizes
        "insurance": _L,  # underwriting capital: paid a premium for bearing claims, as
        # a lender is for bearing defaults, plus the interest on the idle capital
        # --- farming: liquidity provision, market making and incentive emissions
        "dexs": _F,  # LPs earn swap fees
        "dexes": _F,  # 2022 name of the above
        "bridge": _F,  # bridge liquidity pools earn transfer fees
        "cross chain": _F,  # 2022 name for bridge liquidity
        "cross chain bridge": _F,  # the same
        "derivatives": _F,  # LPs are the perp traders' counterparty (GLP, HLP)
        "options": _F,  # LPs are the option buyers' counterparty
        "exotic options": _F,  # the same
        "options vault": _F,  # premiums for writing options: market making
        "interest rate derivatives": _F,  # rate-swap and yield-token AMM liquidity
        "synthetics": _F,  # stakers back the synths, paid in fees and emissions
        "prediction market": _F,  # liquidity for outcome markets
        "farm": _F,  # incentive farms
        "yield": _F,  # "a reward for your staking/LP"; single-asset pools: rule 3
        "yield aggregator": _F,  # auto-compounding vaults; single-asset: rule 3
        "leveraged farming": _F,  # leveraged LP; single-asset deposits lend: rule 3
        "liquidity manager": _F,  # managed concentrated-liquidity LP positions
        "liquidity automation": _F,  # the same, automated
        "algo-stables": _F,  # seigniorage shares and LP incentives: emissions
        "partially algorithmic stablecoin": _F,  # the same
        "dual-token stablecoin": _F,  # the share token's emissions and fees
        "reserve currency": _F,  # (3,3) rebases: new supply paid to lockers
        "governance incentives": _F,  # vote incentives (bribes) paid to lockers
        "chain bribes": _F,  # the same, paid by chains
        "ve-incentive automator": _F,  # automated ve-locking for incentives
        # --- other on purpose: the category pays no yield of its own, or a mix of
        # strategies; an LP in it is still farming (rule 1)
        "services": _O,  # tools run for users; their vaults (2022): rule 3
        "chain": _O,  # a chain listed as a protocol: its pools are its protocols'
        "indexes": _O,  # a basket's yield mixes its constituents' strategies
        "cedefi": _O,  # a centralised desk's product: no one on-chain mechanism
        "canonical bridge": _O,  # locks tokens, pays nothing (unlike bridge liquidity)
        "bridge aggregators": _O,  # routes over other bridges, holds no liquidity
        "bridge aggregator": _O,  # the same
        "dex aggregator": _O,  # routes over DEXs, holds no liquidity
        "cex": _O,  # an exchange's reserves; CeFi earn products are their own sources
        "mev": _O,  # searcher and relay income, not a depositor's strategy
        "block builders": _O,  # the same
        "mining pools": _O,  # proof-of-work hash rate, not stake
        "decentralized btc": _O,  # BTC wrappers: backing, no yield
        "anchor btc": _O,  # the same
        "collateral management": _O,  # custody of collateral, no yield of its own
        "liquidations": _O,  # liquidation tooling
        "treasury manager": _O,  # manages DAO treasuries, no public deposits
        "private investment platform": _O,  # private deals, no market yield
        "launchpad": _O,  # returns are token-sale allocations, not a yield
        "nft launchpad": _O,  # the same
        "ponzi": _O,  # pays earlier depositors from later ones: no mechanism to name
        "payments": _O,  # no yield: these move money
        "privacy": _O,  # mixers
        "wallets": _O,  # software
        "nft marketplace": _O,  # trading venues for NFTs
        "nftfi": _O,  # NFT AMMs, fractions and derivatives: a mix
        "nft automated strategies": _O,  # the same
        "gaming": _O,  # games
        "luck games": _O,  # gambling
        "gamified mining": _O,  # the same
        "sofi": _O,  # social apps
        "telegram bot": _O,  # trading bots
        "trading app": _O,  # trading front ends
        "interface": _O,  # front ends
        "otc marketplace": _O,  # trading venues
        "dca tools": _O,  # trading tools
        "volume boosting": _O,  # trading tools
        "security extension": _O,  # software
        "developer tools": _O,  # software
        "ai agents": _O,  # software
        "decentralized ai": _O,  # compute networks
        "depin": _O,  # physical infrastructure networks
        "video infrastructure": _O,  # the same
        "infrastructure": _O,  # 2022 name for such networks
        "token locker": _O,  # locks, pays nothing
        "bug bounty": _O,  # bounties, not a yield
        "coins tracker": _O,  # data sites
        "portfolio tracker": _O,  # the same
        "dor": _O,  # decentralized offered rates: a benchmark, not a deposit
        "domains": _O,  # name services
        "identity & reputation": _O,  # the same
        "foundation": _O,  # organisations
        "dao service provider": _O,  # the same
        "charity fundraising": _O,  # donations
        "meme": _O,  # tokens with no mechanism
        "physical tcg": _O,  # trading cards
        "crypto card issuer": _O,  # payment cards
    }
)

# Categories whose protocols take single-asset deposits as well as LP positions: a
# single-asset pool of theirs is a vault, classified by its own fields (rule 3).
POOL_DECIDES: Final = frozenset({"yield", "yield aggregator", "leveraged farming", "services"})

# Tickers of proof-of-stake coins: a token named after one behind a prefix is its
# staking token (stETH, wstETH, weETH, rETH, mSOL, JitoSOL, sAVAX; or BNBx, MATICx).
# The prefix is one to four letters (JITO, SFRX, ANKR); short tickers that end
# common words (TON, CRO) are left out.
_STAKED: Final = (
    "ETH", "SOL", "BNB", "AVAX", "MATIC", "POL", "DOT", "KSM", "ATOM", "NEAR", "FTM",
    "SUI", "APT", "TIA", "INJ", "TRX", "HYPE", "OSMO", "KAVA", "EGLD", "XTZ", "BERA",
)  # fmt: skip
_NOT_STAKING_PREFIX: Final = frozenset({"W"})  # WETH, WSOL: a wrapper, not stake
_STAKING_WORDS: Final = re.compile(r"liquid stak|validator", re.IGNORECASE)
_TOKEN: Final = re.compile(r"[A-Za-z]")


@dataclass(frozen=True, slots=True)
class Pool:
    """What a pool says of itself (DefiLlama ``/pools`` fields), for :func:`classify`."""

    symbol: str = ""
    exposure: str | None = None  # "single" or "multi"
    il_risk: bool | None = None
    stablecoin: bool | None = None
    pool_meta: str | None = None
    underlying: int | None = None  # how many underlying tokens; None: not listed
    rewards: int = 0  # how many reward tokens
    apy_base: float | None = None
    apy_reward: float | None = None


def classify(category: str | None, pool: Pool | None = None) -> tuple[Strategy, bool]:
    """The strategy of a pool of a protocol in ``category``, and whether it is a guess.

    ``guessed`` is True when the category is missing or not in the table, so that the
    strategy comes from the pool's fields alone (``other`` without a pool).
    """
    key = (category or "").strip().lower()
    known = CATEGORY_STRATEGY.get(key)
    if pool is None:
        return (known or _O), known is None
    if _is_lp(pool):
        return _F, known is None
    if known is None:
        return (_guess(pool) if _is_single(pool) else _O), True
    if key in POOL_DECIDES and _is_single(pool):
        return _guess(pool), False
    return known, False


def strategy_for(category: str | None) -> Strategy:
    """The strategy of a protocol in ``category``, without a pool; unknown -> other."""
    return classify(category)[0]


def _guess(pool: Pool) -> Strategy:
    """A single-asset deposit's strategy from its fields (rule 3)."""
    if pool.stablecoin is not True and (
        _is_staked_token(pool.symbol) or _STAKING_WORDS.search(pool.pool_meta or "")
    ):
        return _S
    if pool.rewards and pool.apy_base is None and pool.apy_reward:
        return _F  # paid in incentives only: the adaptor reports no base yield at all
    return _L


def _is_lp(pool: Pool) -> bool:
    if pool.il_risk is True or pool.exposure == "multi":
        return True
    return pool.exposure is None and (_is_pair(pool.symbol) or (pool.underlying or 0) >= 2)


def _is_single(pool: Pool) -> bool:
    return pool.exposure == "single" or pool.il_risk is False or pool.underlying == 1


def _is_pair(symbol: str) -> bool:
    """``USDC-WETH``, ``DAI-USDC-USDT``: two or more tokens (a date part is no token)."""
    parts = [p for p in re.split(r"[-/]", symbol) if p and not p[0].isdigit()]
    return len(parts) >= 2 and all(_TOKEN.search(p) for p in parts)


def _is_staked_token(symbol: str) -> bool:
    name = symbol.strip().upper()
    for coin in _STAKED:
        if name == f"{coin}X":
            return True
        prefix = name.removesuffix(coin)
        if prefix != name and prefix and prefix not in _NOT_STAKING_PREFIX:
            return len(prefix) <= 4 and prefix.isalpha()
    return False
