"""Compound III market summaries -> lending observations of each market's base asset.

``supply_apr``/``borrow_apr`` are FRACTION strings and APRs. Compounding: per second,
n = 31,536,000 (:data:`transforms.units.SECONDS_PER_YEAR`): Comet's rates are
per-second rates (``getSupplyRate`` / 1e18 per second) that accrue into the supply
index on every interaction, and Compound's docs annualise them as ``rate x
SECONDS_PER_YEAR`` with ``SECONDS_PER_YEAR = 60 * 60 * 24 * 365``
(https://docs.compound.finance/interest-rates/). ``apy_pct`` is that APR compounded
per second; ``utilization`` (a fraction) is in percent; ``tvl_usd`` is
``total_supply_value`` (base asset) x ``base_usd_price``, exact until the end.
COMP rewards are not in the summary: ``apy_reward_pct`` stays unset (unknown).

Products: the summary names only the Comet contract, so its base asset comes from
:data:`MARKETS`, the markets of DefiLlama's compound-v3 adaptor (DefiLlama/yield-
server ``src/adaptors/compound-v3/index.js``: ``symbol: underlyingSymbol``, chain
capitalised, no poolMeta on the base-asset pool), spelled as it spells them (the
Ethereum WETH market is ``ETH``; both Arbitrum USDC markets are ``USDC``). A market
it does not list is rejected with the reason, until it is added here. DefiLlama's
``apyBase`` is the APR (``rate x seconds x 100``): 3.9 % APR is 3.98 % APY here.

A snapshot is stamped with the hour it was fetched in; a history point with its own
``timestamp`` (seconds), which must lie between Compound III's launch and the fetch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

import msgspec

from transforms import Context, Result, floor_hour, history_time
from transforms.products import product_id
from transforms.units import (
    SECONDS_PER_YEAR,
    apr_to_apy_pct,
    exact,
    fraction_to_pct,
    priced,
    to_float,
    unix_time,
)
from yieldstream.contracts import ObservationError, RawRecord, Strategy, Venue, make_observation

SOURCE = "compound-v3"
LAUNCHED = datetime(2022, 8, 1, tzinfo=UTC)  # cUSDCv3 on Ethereum, August 2022
# An APR above 100 % (a percent read as a fraction: "3.91") or a utilisation above
# 200 % is a unit error, not a market.
MAX_APR = Decimal(1)
MAX_UTILIZATION = Decimal(2)

CHAINS: Final = {
    1: "Ethereum",
    10: "Optimism",
    137: "Polygon",
    8453: "Base",
    42161: "Arbitrum",
    534352: "Scroll",
}

# (chain id, Comet address lower-cased) -> (DefiLlama's symbol, the base asset).
MARKETS: Final = {
    (1, "0xc3d688b66703497daa19211eedff47f25384cdc3"): (
        "USDC",
        "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
    ),
    (1, "0x3afdc9bca9213a35503b077a6072f3d0d5ab0840"): (
        "USDT",
        "0xdAC17F958D2ee523a2206206994597C13D831ec7",
    ),
    (1, "0xa17581a9e3356d9a858b789d68b4d866e593ae94"): (
        "ETH",
        "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
    ),
    (137, "0xf25212e676d1f7f89cd72ffee66158f541246445"): (
        "USDC",
        "0x2791Bca1f2de4661ED88A30C99A7a9449Aa84174",
    ),
    (137, "0xaeb318360f27748acb200ce616e389a6c9409a07"): (
        "USDT",
        "0xc2132D05D31c914a87C6611C10748AEb04B58e8F",
    ),
    (42161, "0xa5edbdd9646f8dff606d7448e414884c7d905dca"): (
        "USDC",
        "0xFF970A61A04b1cA14834A43f5dE4533eBDDB5CC8",
    ),
    (42161, "0x9c4ec768c28520b50860ea7a15bd7213a9ff58bf"): (
        "USDC",
        "0xaf88d065e77c8cC2239327C5EDb3A432268e5831",
    ),
    (42161, "0x6f7d514bbd4aff3bcd1140b7344b32f063dee486"): (
        "WETH",
        "0x82aF49447D8a07e3bd95BD0d56f35241523fBab1",
    ),
    (42161, "0xd98be00b5d27fc98112bde293e487f8d4ca57d07"): (
        "USDT",
        "0xFd086bC7CD5C481DCC9C85ebE478A1C0b69FCbb9",
    ),
    (8453, "0x9c4ec768c28520b50860ea7a15bd7213a9ff58bf"): (
        "USDbC",
        "0xd9aAEc86B65D86f6A7B5B1b0c42FFA531710b6CA",
    ),
    (8453, "0x46e6b214b524310239732d51387075e0e70970bf"): (
        "WETH",
        "0x4200000000000000000000000000000000000006",
    ),
    (8453, "0xb125e6687d4313864e53df431d5425969c15eb2f"): (
        "USDC",
        "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913",
    ),
    (534352, "0xb2f97c1bd3bf02f5e74d13f02e3e26f93d77ce44"): (
        "USDC",
        "0x06eFdBFf2a14a7c8E15944D1F4A48F9F95F663A4",
    ),
    (10, "0x2e44e174f7d53f0212823acc11c01a11d58c5bcb"): (
        "USDC",
        "0x0b2C639c533813f4Aa9D7837CAf62653d097Ff85",
    ),
    (10, "0x995e394b8b2437ac8ce61ee0bc610d617962b214"): (
        "USDT",
        "0x94b008aA00579c1307B0EF2c499aD98a8ce58e58",
    ),
    (10, "0xe36a30d249f7761327fd973001a32010b521b6fd"): (
        "WETH",
        "0x4200000000000000000000000000000000000006",
    ),
}


class Comet(msgspec.Struct):
    address: str


class Summary(msgspec.Struct):
    chain_id: int
    comet: Comet
    supply_apr: str | float | int
    borrow_apr: str | float | int
    utilization: str | float | int
    total_supply_value: str | float | int
    base_usd_price: str | float | int
    total_borrow_value: str | float | int | None = None
    timestamp: int | None = None


_decode = msgspec.json.Decoder(Summary).decode


def fraction(value: str | float | int, what: str, upper: Decimal = MAX_APR) -> Decimal:
    """A rate or share given as a fraction, exactly; outside ``[0, upper]`` rejected."""
    try:
        number = exact(value)
    except ValueError as exc:
        raise ObservationError(f"unusable {what}: {exc}") from None
    if not Decimal(0) <= number <= upper:
        raise ObservationError(
            f"{what} {value!r} (a fraction) is not in [0, {upper}]: a unit error"
        )
    return number


def apy_pct(apr: str | float | int, what: str) -> float:
    """An APR fraction compounded per second, as an APY in percent."""
    try:
        return apr_to_apy_pct(fraction_to_pct(to_float(fraction(apr, what))), SECONDS_PER_YEAR)
    except ValueError as exc:
        raise ObservationError(f"{what} {apr!r}: {exc}") from None


def transform(record: RawRecord, ctx: Context) -> Result:
    item = _decode(record.payload)
    comet = item.comet.address
    known = MARKETS.get((item.chain_id, comet.lower()))
    if known is None:
        raise ObservationError(
            f"Comet {comet} on chain {item.chain_id} is not a market DefiLlama lists "
            "(transforms.compound_v3.MARKETS): the summary names no base asset"
        )
    symbol, asset = known
    if record.kind == "history":
        observed_at = history_time(unix_time(item.timestamp), item.timestamp, record)
        if observed_at < LAUNCHED:
            raise ObservationError(f"point time {observed_at.isoformat()} is before Compound III")
    else:
        observed_at = floor_hour(record.fetched_at)
    supply = apy_pct(item.supply_apr, "supply APR")
    try:
        supplied = exact(item.total_supply_value)
        tvl_usd = to_float(priced(supplied, item.base_usd_price))
        tvl_tokens = to_float(supplied)
        utilization = fraction_to_pct(
            to_float(fraction(item.utilization, "utilization", MAX_UTILIZATION))
        )
    except ValueError as exc:
        raise ObservationError(f"unusable market totals: {exc}") from None
    chain = CHAINS[item.chain_id]
    return [
        make_observation(
            {
                "source": SOURCE,
                "pool_id": f"{item.chain_id}-{comet.lower()}",
                "product_id": product_id("compound-v3", chain, symbol),
                "observed_at": observed_at,
                "protocol": "compound-v3",
                "chain": chain,
                "symbol": symbol,
                "strategy": Strategy.LENDING,
                "strategy_guessed": False,
                "venue": Venue.DEFI,
                "category": "Lending",
                "apy_pct": supply,
                "apy_base_pct": supply,
                "apy_borrow_pct": apy_pct(item.borrow_apr, "borrow APR"),
                "utilization_pct": utilization,
                "tvl_usd": tvl_usd,
                "tvl_tokens": tvl_tokens,
                "tvl_token": symbol,
                "underlying_tokens": [asset],
            }
        )
    ]
