"""Aave v3 reserves (AaveKit GraphQL API) -> lending observations, one per reserve.

A reserve's ``supplyInfo.apy`` is already an APY (Aave's interest accrues every second
and the API compounds it), so no compounding is applied here: n does not enter. Of
its ``PercentValue`` the exact ``raw`` integer scaled by ``decimals`` (RAY, 27) is
read, and checked against the other two spellings: ``value`` (the same fraction as a
decimal string) and ``formatted`` (percent, 2 decimals). A reserve whose spellings
disagree is a unit change upstream and is rejected. ``borrowInfo.apy`` and
``utilizationRate`` are read the same way; ``size`` (the supplied amount) gives
``tvl_usd`` and ``tvl_tokens``. Supply incentives' ``extraSupplyApr`` are summed into
``apy_reward_pct`` and added to the base APY in ``apy_pct``, as DefiLlama adds
``apyReward`` (an APR) to ``apyBase``.

Products: DefiLlama's aave-v3 adaptor (DefiLlama/yield-server
``src/adaptors/aave-v3/index.js``) publishes ``symbol`` (the underlying's ERC-20
symbol), the chain, and ``poolMeta`` ``"lido-market"``/``"etherfi-market"`` for the
two extra Ethereum markets (null for each chain's core market), so the product is
``aave-v3:<chain>:<symbol>[:<poolMeta>]``. A market DefiLlama does not list keeps
its own name as the variant, so that it never shares the id of a core reserve.
DefiLlama's ``apyBase`` is the RAY ``liquidityRate`` (an APR) while this is Aave's
APY: the two differ by the per-second compounding (3.9 % APR is 3.98 % APY).

History points (``supplyAPYHistory``) are ``{"avgRate": {raw, decimals, value},
"date": ISO}``; their record's endpoint names the reserve (``/graphql#<entity>``).
A snapshot is stamped with the hour it was fetched in, a point with its own hour.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import msgspec

from transforms import Context, Result, floor_hour, history_time
from transforms.products import product_id
from transforms.units import base_units, exact, fraction_to_pct, iso_time, to_float
from yieldstream.contracts import (
    Observation,
    ObservationError,
    RawRecord,
    Strategy,
    Venue,
    make_observation,
)

SOURCE = "aave-v3"
LAUNCHED = datetime(2022, 3, 16, tzinfo=UTC)  # Aave v3 went live in March 2022
MAX_FRACTION = Decimal(10)  # an APY above 1,000 % is a unit error, not a reserve
# ``formatted`` is ``value`` in percent with 2 decimals; ``value`` is ``raw`` scaled.
FORMATTED_TOLERANCE_PCT = 0.01
VALUE_TOLERANCE = Decimal("1e-12")

# Chain ids -> DefiLlama's chain names (its adaptor's keys ethereum, optimism, bsc,
# xdai, polygon, sonic, era, metis, base, arbitrum, avax, scroll, as it formats them).
CHAIN_NAMES: Final = {
    1: "Ethereum",
    10: "Optimism",
    56: "BSC",
    100: "xDai",
    137: "Polygon",
    146: "Sonic",
    324: "zkSync Era",
    1088: "Metis",
    8453: "Base",
    42161: "Arbitrum",
    43114: "Avalanche",
    534352: "Scroll",
}
# DefiLlama's poolMeta of the markets beside each chain's core market.
MARKET_VARIANTS: Final = {
    "AaveV3EthereumLido": "lido-market",
    "AaveV3EthereumEtherFi": "etherfi-market",
}
# Each chain's core market (Aave address-book names): poolMeta null at DefiLlama.
CORE_MARKETS: Final = frozenset(
    {
        "AaveV3Ethereum",
        "AaveV3Optimism",
        "AaveV3BNB",
        "AaveV3Gnosis",
        "AaveV3Polygon",
        "AaveV3Sonic",
        "AaveV3ZkSync",
        "AaveV3Metis",
        "AaveV3Base",
        "AaveV3Arbitrum",
        "AaveV3Avalanche",
        "AaveV3Scroll",
    }
)

# A reserve's name: <chainId>-<market address>-<underlying address>-<symbol>. Found
# anywhere in a text (``/graphql#<entity>``, a file stem ``history-<entity>``).
_ENTITY = re.compile(r"(\d+)-(0x[0-9a-fA-F]{40})-(0x[0-9a-fA-F]{40})-(.+)")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def entity(chain_id: Any, market: Any, token: Any, symbol: Any) -> str:
    """The name of one reserve (its records' native id, its history's entity)."""
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id < 0:
        raise ValueError(f"chain id {chain_id!r} is not a number")
    for address in (market, token):
        if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
            raise ValueError(f"{address!r} is not an EVM address")
    if not isinstance(symbol, str) or not symbol:
        raise ValueError(f"symbol {symbol!r} is not a name")
    return f"{chain_id}-{market}-{token}-{symbol}"


def parse_entity(text: str) -> tuple[int, str, str, str]:
    """``(chain id, market, underlying token, symbol)`` of a reserve's name in ``text``."""
    match = _ENTITY.search(text)
    if match is None:
        raise ValueError(f"{text!r} names no reserve (<chainId>-<market>-<token>-<symbol>)")
    chain, market, token, symbol = match.groups()
    return int(chain), market, token, symbol


class Percent(msgspec.Struct):
    """A ``PercentValue`` (``formatted`` absent in a history's ``avgRate``)."""

    raw: str | int
    decimals: int
    value: str | float | int
    formatted: str | float | int | None = None


class Amount(msgspec.Struct):
    raw: str | int
    decimals: int


class Chain(msgspec.Struct):
    chainId: int
    name: str


class MarketInfo(msgspec.Struct):
    name: str
    address: str
    chain: Chain


class Token(msgspec.Struct):
    address: str
    symbol: str


class Size(msgspec.Struct):
    amount: Amount
    usd: str | float | int


class SupplyInfo(msgspec.Struct):
    apy: Percent


class BorrowInfo(msgspec.Struct):
    apy: Percent
    utilizationRate: Percent


class Incentive(msgspec.Struct):
    typename: str = msgspec.field(name="__typename")
    extraSupplyApr: Percent | None = None
    rewardTokenAddress: str | None = None


class Reserve(msgspec.Struct):
    market: MarketInfo
    underlyingToken: Token
    size: Size
    supplyInfo: SupplyInfo
    borrowInfo: BorrowInfo | None = None
    incentives: list[Incentive] = []


class Sample(msgspec.Struct):
    avgRate: Percent
    date: str


_reserve = msgspec.json.Decoder(Reserve).decode
_sample = msgspec.json.Decoder(Sample).decode


def fraction_of(percent: Percent, what: str) -> Decimal:
    """The exact fraction of a ``PercentValue``: ``raw / 10**decimals``, cross-checked.

    ``value`` must be the same fraction and ``formatted`` (where given) the same in
    percent to 2 decimals; ObservationError naming ``what`` otherwise.
    """
    try:
        fraction = base_units(percent.raw, percent.decimals)
        value = exact(percent.value)
        formatted = None if percent.formatted is None else to_float(exact(percent.formatted))
    except ValueError as exc:
        raise ObservationError(f"unusable {what}: {exc}") from None
    if abs(fraction - value) > VALUE_TOLERANCE:
        raise ObservationError(
            f"{what}: raw {percent.raw} / 1e{percent.decimals} = {fraction} is not its "
            f"value {percent.value}"
        )
    if formatted is not None and abs(fraction_to_pct(to_float(value)) - formatted) > (
        FORMATTED_TOLERANCE_PCT
    ):
        raise ObservationError(
            f"{what}: formatted {percent.formatted} % is not its value {percent.value} in percent"
        )
    if fraction > MAX_FRACTION:
        raise ObservationError(f"{what} {fraction} (a fraction) is above 1,000 %: a unit error")
    return fraction


def pct(percent: Percent, what: str) -> float:
    return fraction_to_pct(to_float(fraction_of(percent, what)))


def variant(market: str) -> str | None:
    """DefiLlama's poolMeta of a market (None for a core market), else its own name."""
    if market in CORE_MARKETS:
        return None
    return MARKET_VARIANTS.get(market, market)


def pool_id(chain_id: int, market: str, token: str) -> str:
    return f"{chain_id}-{market.lower()}-{token.lower()}"


def transform(record: RawRecord, ctx: Context) -> Result:
    if record.kind == "history":
        return [_history(record, ctx)]
    reserve = _reserve(record.payload)
    market, token = reserve.market, reserve.underlyingToken
    base = pct(reserve.supplyInfo.apy, "supply APY")
    rewards = [i for i in reserve.incentives if i.extraSupplyApr is not None]
    reward = sum((pct(i.extraSupplyApr, "incentive APR") for i in rewards if i.extraSupplyApr), 0.0)
    try:
        tvl_usd = to_float(exact(reserve.size.usd))
        tvl_tokens = to_float(base_units(reserve.size.amount.raw, reserve.size.amount.decimals))
    except ValueError as exc:
        raise ObservationError(f"unusable reserve size: {exc}") from None
    borrow = reserve.borrowInfo
    fields: dict[str, Any] = {
        **_product(market.chain.chainId, market.chain.name, market.name, market.address, token),
        "observed_at": floor_hour(record.fetched_at),
        "apy_pct": base + reward,
        "apy_base_pct": base,
        "apy_reward_pct": reward,
        "reward_tokens": [i.rewardTokenAddress for i in rewards if i.rewardTokenAddress] or None,
        "tvl_usd": tvl_usd,
        "tvl_tokens": tvl_tokens,
        "tvl_token": token.symbol,
    }
    if borrow is not None:
        fields["apy_borrow_pct"] = pct(borrow.apy, "borrow APY")
        fields["utilization_pct"] = pct(borrow.utilizationRate, "utilization")
    return [make_observation(fields)]


def _history(record: RawRecord, ctx: Context) -> Observation:
    named = record.endpoint.partition("#")[2] or record.endpoint
    try:
        chain_id, market, token, symbol = parse_entity(named)
    except ValueError as exc:
        raise ObservationError(f"history of no reserve: {exc}") from None
    sample = _sample(record.payload)
    observed_at = history_time(iso_time(sample.date), sample.date, record)
    if observed_at < LAUNCHED:
        raise ObservationError(f"point time {sample.date} is before Aave v3 ({LAUNCHED.date()})")
    apy = pct(sample.avgRate, "average supply APY")
    # A point names its market by address only: its name (the variant) is the
    # listing's (backfill passes the snapshot item), else the address book's, else
    # a core market's.
    listed = ctx.listing.get(named)
    name = _reserve(listed).market.name if listed else _MARKET_NAMES.get(market.lower(), "")
    chain = CHAIN_NAMES.get(chain_id, str(chain_id))
    fields = {
        **_product(chain_id, chain, name, market, Token(token, symbol)),
        "observed_at": observed_at,
        "apy_pct": apy,
        "apy_base_pct": apy,
    }
    return make_observation(fields)


# The extra markets' addresses (Aave address book), for histories, which name none.
_MARKET_NAMES: Final = {
    "0x4e033931ad43597d96d6bcc25c280717730b58b1": "AaveV3EthereumLido",
    "0x0aa97c284e98396202b6a04024f5e2c65026f3c0": "AaveV3EthereumEtherFi",
}


def _product(
    chain_id: int, chain_name: str, market: str, address: str, token: Token
) -> dict[str, Any]:
    chain = CHAIN_NAMES.get(chain_id, chain_name)
    meta = variant(market) if market else None
    return {
        "source": SOURCE,
        "pool_id": pool_id(chain_id, address, token.address),
        "product_id": product_id("aave-v3", chain, token.symbol, meta),
        "protocol": "aave-v3",
        "chain": chain,
        "symbol": token.symbol,
        "pool_meta": meta,
        "strategy": Strategy.LENDING,
        "strategy_guessed": False,
        "venue": Venue.DEFI,
        "category": "Lending",
        "underlying_tokens": [token.address],
    }
