"""Morpho Blue markets and MetaMorpho vaults -> lending observations: what a saver earns.

Markets: ``state.supplyApy`` is the market's supply APY as a FRACTION, already
compounded by the API (Morpho accrues interest continuously, per second, and the API
publishes the APY of that rate: docs.morpho.org, "APY" of a market): no compounding
step here. ``netSupplyApy`` adds the reward programmes' APRs: it is ``apy_pct``,
``supplyApy`` the base, the difference the reward part. ``tvl_usd`` is the supplied
value (``supplyAssetsUsd``), ``tvl_tokens`` the supplied loan asset from its exact
base units (``supplyAssets``, a JSON number or a digit string) and the asset's
decimals. The product is the one DefiLlama lists for the market (yield-server
``src/adaptors/morpho-blue/index.js``, ``borrowPools``: ``project: 'morpho-blue'``,
``symbol: market.collateralAsset.symbol``, no ``poolMeta``), so
``morpho-blue:<chain>:<collateral symbol>``; markets without collateral (idle
markets) are not listed there either and are rejected.

Vaults (MetaMorpho, Vault V1: what a saver supplies to, a curator allocating it over
markets): ``state.netApy`` (a FRACTION, an APY, after the curator's ``fee``, with
rewards) is ``apy_pct``; ``state.apy`` (before the fee) is ``apy_gross_pct``; the
base is ``apy`` net of the fee, never above ``netApy``, and the rest of ``netApy``
the reward part, as DefiLlama's ``earnV1Pools`` splits them. ``tvl_usd`` is
``totalAssetsUsd``, ``tvl_tokens`` ``totalAssets`` in the asset's decimals. The
product is DefiLlama's ``earnV1Pools`` row: ``symbol: vault.symbol`` (the vault's
share token, e.g. steakUSDC), no ``poolMeta``, so ``morpho-blue:<chain>:<vault
symbol>``; the vault's name is kept as ``pool_meta``.

Chains are named as DefiLlama formats its adaptor's keys (:data:`CHAIN_NAMES`), by
chain id; the API's ``network`` where the id is not listed. Observations are dated
by the state's own ``timestamp``. History points (``{"x": unix seconds, "y": APY
fraction}``, daily) are a market's ``supplyApy`` or a vault's ``netApy``; their
record's endpoint names the entity (``/graphql#<entity>``), which carries the chain
and the product's symbol.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from transforms import CLOCK_SKEW, Context, Result, floor_hour, history_time
from transforms.products import product_id
from transforms.units import (
    WEI_PER_ETH,
    base_units,
    fraction_to_pct,
    net_of_fee_pct,
    scaled,
    to_float,
    unix_time,
)
from yieldstream.contracts import (
    Observation,
    ObservationError,
    RawRecord,
    Strategy,
    Venue,
    make_observation,
)

SOURCE = "morpho"
PROTOCOL = "morpho-blue"  # DefiLlama's project slug
LAUNCHED = datetime(2024, 1, 1, tzinfo=UTC)  # Morpho Blue went live in January 2024

# Chain ids -> DefiLlama's chain names (its adaptor's CHAINS keys ethereum, base,
# optimism, hyperliquid, katana, arbitrum, unichain, polygon, monad, formatted).
CHAIN_NAMES: Final = {
    1: "Ethereum",
    8453: "Base",
    10: "Optimism",
    999: "Hyperliquid",
    747474: "Katana",
    42161: "Arbitrum",
    130: "Unichain",
    137: "Polygon",
    143: "Monad",
}

# A market's name: <chainId>-<marketId>-<collateral symbol>; a vault's:
# vault-<chainId>-<address>-<symbol>. Found anywhere in a text (``/graphql#<entity>``,
# a file stem ``history-<entity>``).
_MARKET = re.compile(r"(\d+)-(0x[0-9a-fA-F]{64})-(.+)")
_VAULT = re.compile(r"vault-(\d+)-(0x[0-9a-fA-F]{40})-(.+)")


def _chain_id(chain_id: Any) -> int:
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id < 0:
        raise ValueError(f"chain id {chain_id!r} is not a number")
    return chain_id


def _symbol(symbol: Any) -> str:
    if not isinstance(symbol, str) or not symbol:
        raise ValueError(f"symbol {symbol!r} is not a name")
    return symbol


def market_entity(chain_id: Any, market_id: Any, collateral_symbol: Any) -> str:
    """The name of one market (its records' native id, its history's entity)."""
    if not isinstance(market_id, str) or not re.fullmatch(r"0x[0-9a-fA-F]{64}", market_id):
        raise ValueError(f"market id {market_id!r} is not a 32-byte key")
    return f"{_chain_id(chain_id)}-{market_id}-{_symbol(collateral_symbol)}"


def vault_entity(chain_id: Any, address: Any, symbol: Any) -> str:
    """The name of one vault (its records' native id, its history's entity)."""
    if not isinstance(address, str) or not re.fullmatch(r"0x[0-9a-fA-F]{40}", address):
        raise ValueError(f"vault address {address!r} is not an EVM address")
    return f"vault-{_chain_id(chain_id)}-{address}-{_symbol(symbol)}"


def parse_entity(text: str) -> tuple[str, int, str, str]:
    """``(kind, chain id, market id or vault address, symbol)`` of an entity in ``text``."""
    if match := _VAULT.search(text):
        chain, key, symbol = match.groups()
        return "vault", int(chain), key, symbol
    if match := _MARKET.search(text):
        chain, key, symbol = match.groups()
        return "market", int(chain), key, symbol
    raise ValueError(
        f"{text!r} names no market (<chainId>-<marketId>-<collateral symbol>) "
        "or vault (vault-<chainId>-<address>-<symbol>)"
    )


def chain_name(chain_id: int, network: str | None = None) -> str:
    return CHAIN_NAMES.get(chain_id, network or str(chain_id))


class Chain(msgspec.Struct):
    id: int
    network: str


class Asset(msgspec.Struct):
    address: str
    symbol: str
    decimals: int


class RewardAsset(msgspec.Struct):
    address: str


class Reward(msgspec.Struct):
    asset: RewardAsset
    supplyApr: float | None = None


class State(msgspec.Struct):
    timestamp: int
    supplyApy: float
    netSupplyApy: float | None
    borrowApy: float | None
    utilization: float | None
    supplyAssets: int | str
    supplyAssetsUsd: float | None
    rewards: list[Reward] = []


class Market(msgspec.Struct):
    marketId: str
    lltv: int | str
    chain: Chain
    loanAsset: Asset
    collateralAsset: Asset | None
    state: State | None


class VaultAsset(msgspec.Struct):
    address: str
    symbol: str
    decimals: int


class VaultState(msgspec.Struct):
    apy: float
    netApy: float
    fee: float
    totalAssets: int | str
    totalAssetsUsd: float | None
    timestamp: int | None = None
    rewards: list[Reward] | None = None


class Vault(msgspec.Struct):
    address: str
    symbol: str
    name: str
    chain: Chain
    asset: VaultAsset
    state: VaultState | None


class Kind(msgspec.Struct):
    """What tells a market's item from a vault's: a market has ``marketId``/``loanAsset``."""

    marketId: Any = None
    loanAsset: Any = None


class Sample(msgspec.Struct):
    x: int
    y: float | None


_decode = msgspec.json.Decoder(Market).decode
_vault = msgspec.json.Decoder(Vault).decode
_kind = msgspec.json.Decoder(Kind).decode
_sample = msgspec.json.Decoder(Sample).decode


def transform(record: RawRecord, ctx: Context) -> Result:
    if record.kind == "history":
        return [_history(record, ctx)]
    kind = _kind(record.payload)
    if kind.marketId is None and kind.loanAsset is None:
        return [_vault_observation(record)]
    market = _decode(record.payload)
    state = market.state
    if state is None:
        raise ObservationError(f"market {market.marketId} has no state")
    collateral = market.collateralAsset
    if collateral is None:
        raise ObservationError(f"market {market.marketId} has no collateral (an idle market)")
    observed_at = unix_time(state.timestamp)
    if observed_at is None or not LAUNCHED <= observed_at <= record.fetched_at + CLOCK_SKEW:
        raise ObservationError(
            f"state time {state.timestamp} is not between Morpho Blue's launch "
            f"({LAUNCHED.date()}) and its fetch ({record.fetched_at.isoformat()})"
        )
    loan = market.loanAsset
    try:
        base = fraction_to_pct(state.supplyApy)
        total = fraction_to_pct(state.netSupplyApy) if state.netSupplyApy is not None else base
        borrow = fraction_to_pct(state.borrowApy) if state.borrowApy is not None else None
        used = fraction_to_pct(state.utilization) if state.utilization is not None else None
        lltv = fraction_to_pct(to_float(scaled(market.lltv, WEI_PER_ETH)))
        supplied = to_float(base_units(state.supplyAssets, loan.decimals))
    except ValueError as exc:
        raise ObservationError(f"market {market.marketId}: {exc}") from None
    if base < 0 or total < 0:
        raise ObservationError(f"negative supply APY {base} % / {total} % (net)")
    if used is not None and not 0 <= used <= 100:
        raise ObservationError(f"utilization {used} % is not a share of the supply")
    # Rewards beyond the base, never below it (a net APY under the base is no reward).
    reward = max(total - base, 0.0)
    rewarded = [r.asset.address for r in state.rewards if (r.supplyApr or 0) > 0]
    chain = chain_name(market.chain.id, market.chain.network)
    return [
        make_observation(
            {
                "source": SOURCE,
                "pool_id": market.marketId,
                "product_id": product_id(PROTOCOL, chain, collateral.symbol),
                "observed_at": observed_at,
                "protocol": PROTOCOL,
                "chain": chain,
                "symbol": collateral.symbol,
                "pool_meta": f"{loan.symbol} lent against {collateral.symbol}, LLTV {lltv:g}%",
                "strategy": Strategy.LENDING,
                "strategy_guessed": False,
                "venue": Venue.DEFI,
                "category": "Lending",
                "apy_pct": base + reward,
                "apy_base_pct": base,
                "apy_reward_pct": reward,
                "apy_borrow_pct": borrow,
                "utilization_pct": used,
                "tvl_usd": state.supplyAssetsUsd,
                "tvl_tokens": supplied,
                "tvl_token": loan.symbol,
                "underlying_tokens": [loan.address, collateral.address],
                "reward_tokens": rewarded or None,
            }
        )
    ]


def _state_time(timestamp: int | None, record: RawRecord, what: str) -> datetime:
    observed_at = unix_time(timestamp)
    if observed_at is None or not LAUNCHED <= observed_at <= record.fetched_at + CLOCK_SKEW:
        raise ObservationError(
            f"{what} time {timestamp} is not between Morpho Blue's launch "
            f"({LAUNCHED.date()}) and its fetch ({record.fetched_at.isoformat()})"
        )
    return observed_at


def _vault_observation(record: RawRecord) -> Observation:
    vault = _vault(record.payload)
    state = vault.state
    if state is None:
        raise ObservationError(f"vault {vault.address} has no state")
    observed_at = (
        floor_hour(record.fetched_at)
        if state.timestamp is None
        else _state_time(state.timestamp, record, "vault state")
    )
    try:
        gross = fraction_to_pct(state.apy)
        total = fraction_to_pct(state.netApy)
        # DefiLlama's earnV1Pools: base = min(apy net of the fee, netApy), the rest rewards.
        base = min(net_of_fee_pct(gross, state.fee), total)
        supplied = to_float(base_units(state.totalAssets, vault.asset.decimals))
    except ValueError as exc:
        raise ObservationError(f"vault {vault.address}: {exc}") from None
    if gross < 0 or total < 0:
        raise ObservationError(f"negative vault APY {gross} % / {total} % (net)")
    rewarded = [r.asset.address for r in state.rewards or [] if (r.supplyApr or 0) > 0]
    chain = chain_name(vault.chain.id, vault.chain.network)
    fields: dict[str, Any] = {
        **_vault_product(vault.chain.id, chain, vault.address, vault.symbol),
        "observed_at": observed_at,
        "pool_meta": vault.name,
        "apy_pct": total,
        "apy_base_pct": base,
        "apy_reward_pct": total - base,
        "apy_gross_pct": gross,
        "tvl_usd": state.totalAssetsUsd,
        "tvl_tokens": supplied,
        "tvl_token": vault.asset.symbol,
        "underlying_tokens": [vault.asset.address],
        "reward_tokens": rewarded or None,
    }
    return make_observation(fields)


def _vault_product(chain_id: int, chain: str, address: str, symbol: str) -> dict[str, Any]:
    return {
        "source": SOURCE,
        "pool_id": f"vault-{chain_id}-{address.lower()}",
        "product_id": product_id(PROTOCOL, chain, symbol),
        "protocol": PROTOCOL,
        "chain": chain,
        "symbol": symbol,
        "strategy": Strategy.LENDING,
        "strategy_guessed": False,
        "venue": Venue.DEFI,
        "category": "Lending",
    }


def _history(record: RawRecord, ctx: Context) -> Observation:
    named = record.endpoint.partition("#")[2] or record.endpoint
    try:
        kind, chain_id, key, symbol = parse_entity(named)
    except ValueError as exc:
        raise ObservationError(f"history of no market or vault: {exc}") from None
    sample = _sample(record.payload)
    observed_at = history_time(unix_time(sample.x), sample.x, record)
    if observed_at < LAUNCHED:
        raise ObservationError(f"point time {sample.x} is before Morpho Blue ({LAUNCHED.date()})")
    if sample.y is None:
        raise ObservationError(f"no APY at {observed_at.isoformat()}")
    try:
        apy = fraction_to_pct(sample.y)
    except ValueError as exc:
        raise ObservationError(f"{named}: {exc}") from None
    if apy < 0:
        raise ObservationError(f"negative APY {apy} %")
    chain = chain_name(chain_id)
    fields: dict[str, Any]
    if kind == "vault":
        fields = {**_vault_product(chain_id, chain, key, symbol), "apy_pct": apy}
    else:
        fields = {
            "source": SOURCE,
            "pool_id": key,
            "product_id": product_id(PROTOCOL, chain, symbol),
            "protocol": PROTOCOL,
            "chain": chain,
            "symbol": symbol,
            "strategy": Strategy.LENDING,
            "strategy_guessed": False,
            "venue": Venue.DEFI,
            "category": "Lending",
            "apy_pct": apy,  # supplyApy: the base, without rewards
        }
    fields["apy_base_pct"] = apy if kind == "market" else None
    fields["observed_at"] = observed_at
    return make_observation(fields)
