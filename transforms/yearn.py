"""yDaemon vaults -> farming observations, one per vault and chain.

What yDaemon computes (github.com/yearn/ydaemon, ``processes/apr``), all fractions:

- ``apr.netAPR`` (type ``v2:averaged``/``v3:averaged``) is the vault's realised
  30-day return annualised **simply**: ``(pps_today - pps_month_ago) /
  pps_month_ago / 30 * 365`` (``common/helpers/apyTime.go`` ``GetEvolution``),
  net of fees since the share price is. Despite the store's ``netAPY`` name it is
  not compounded: an APR of the realised growth.
- ``apr.forwardAPR.netAPR`` (``v3:onchainOracle``) is the APR oracle's expected APR
  (``forward.v3.go``); v2 types estimate it from the underlying farm.
- ``apr.extra.stakingRewardsAPR``: extra rewards for staking the vault token.

yearn.fi shows these figures as the vault's APY, and DefiLlama's yearn-finance
adaptor publishes ``apyBase = (forwardAPR.netAPR ?? netAPR) * 100`` and ``apyReward
= stakingRewardsAPR * 100`` unconverted. The same is done here, so that the figure
meets DefiLlama's and yearn.fi's: ``apy_base_pct`` the forward APR (the historical
one where there is no forward figure), ``apy_reward_pct`` the staking rewards (0
when none), ``apy_pct`` their sum. No compounding is applied (n = 1): the oracle's
compounding is undocumented; at 3.9 % the daily-compounded APY would be 0.08 points
higher.

Products as DefiLlama's adaptor names them: chain from the requested chain id,
symbol ``formatSymbol(token.display_symbol)`` (the underlying token's), no poolMeta,
so two vaults of one token on one chain share a product id there too. Retired or
hidden vaults, which DefiLlama drops, are kept with ``pool_meta`` "retired" or
"hidden". pool_id is ``<chainId>-<address>`` (one address can be a vault on two
chains). observed_at is the fetch time: yDaemon's figures carry no time.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from ingest.yearn import ENDPOINTS
from transforms import Context, Result
from transforms.products import product_id
from transforms.units import fraction_to_pct
from yieldstream.contracts import ObservationError, RawRecord, Strategy, Venue, make_observation

SOURCE = "yearn"
PROTOCOL = "yearn-finance"  # DefiLlama's project slug
CHAINS = {
    "1": "Ethereum",
    "10": "Optimism",
    "137": "Polygon",
    "250": "Fantom",
    "8453": "Base",
    "42161": "Arbitrum",
    "747474": "Katana",
}


class Token(msgspec.Struct):
    address: str
    symbol: str
    display_symbol: str | None = None
    underlyingTokensAddresses: list[str] | None = None


class Tvl(msgspec.Struct):
    tvl: float | None = None


class Forward(msgspec.Struct):
    netAPR: float | None = None


class Extra(msgspec.Struct):
    stakingRewardsAPR: float | None = None


class Apr(msgspec.Struct):
    type: str = ""
    netAPR: float | None = None
    forwardAPR: Forward | None = None
    extra: Extra | None = None


class Flags(msgspec.Struct):
    isRetired: bool = False
    isHidden: bool = False


class Vault(msgspec.Struct):
    address: str
    token: Token
    tvl: Tvl
    apr: Apr
    chainID: int | None = None
    details: Flags | None = None
    info: Flags | None = None


_decode = msgspec.json.Decoder(Vault).decode


def format_symbol(symbol: str) -> str:
    """DefiLlama's ``formatSymbol``: ``_`` and ``/`` as ``-``, whitespace removed."""
    return re.sub(r"\s", "", re.sub(r"[_/]", "-", symbol))


def _pct(value: float, name: str) -> float:
    try:
        return fraction_to_pct(value)
    except ValueError as exc:
        raise ObservationError(f"{name}: {exc}") from None


def base_fraction(apr: Apr) -> float | None:
    """DefiLlama's ``forwardAPR.netAPR ?? netAPR``: the forward figure, even 0, first."""
    forward = apr.forwardAPR.netAPR if apr.forwardAPR is not None else None
    return forward if forward is not None else apr.netAPR


def transform(record: RawRecord, ctx: Context) -> Result:
    vault = _decode(record.payload)
    chain_id = ENDPOINTS[0].entity_of(record.endpoint)
    chain = CHAINS.get(chain_id or "")
    if chain is None:
        raise ObservationError(f"chain {chain_id!r} of {record.endpoint} is not a known chain")
    if vault.chainID is not None and str(vault.chainID) != chain_id:
        raise ObservationError(
            f"vault of chain {vault.chainID} in the response of chain {chain_id}"
        )
    base = base_fraction(vault.apr)
    base_pct = None if base is None else _pct(base, "apr")
    reward = vault.apr.extra.stakingRewardsAPR if vault.apr.extra else None
    reward_pct = 0.0 if reward is None else _pct(reward, "stakingRewardsAPR")
    symbol = format_symbol(vault.token.display_symbol or vault.token.symbol)
    flags = [f for f in (vault.details, vault.info) if f is not None]
    meta = (
        "retired"
        if any(f.isRetired for f in flags)
        else "hidden"
        if any(f.isHidden for f in flags)
        else None
    )
    fields: dict[str, Any] = {
        "source": SOURCE,
        "pool_id": f"{chain_id}-{vault.address}",
        "product_id": product_id(PROTOCOL, chain, symbol),
        "observed_at": record.fetched_at,
        "protocol": PROTOCOL,
        "chain": chain,
        "symbol": symbol,
        "strategy": Strategy.FARMING,
        "strategy_guessed": False,
        "venue": Venue.DEFI,
        "category": "Yield Aggregator",
        "apy_pct": None if base_pct is None else base_pct + reward_pct,
        "apy_base_pct": base_pct,
        "apy_reward_pct": None if base_pct is None else reward_pct,
        "tvl_usd": vault.tvl.tvl,
        "pool_meta": meta,
        "underlying_tokens": vault.token.underlyingTokensAddresses or [vault.token.address],
    }
    return [make_observation(fields)]
