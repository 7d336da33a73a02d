"""Coinbase cbETH -> one staking observation: APY, and TVL in ETH.

The ``/wrapped-assets/CBETH`` object gives ``apy`` as a fraction (converted to
percent once, by :func:`transforms.units.fraction_to_pct`), and the supplies and
``conversion_rate`` as decimal strings. TVL is what the cbETH held by customers
is worth in ETH: ``circulating_supply x conversion_rate``, multiplied exactly
(:func:`transforms.units.priced`) and made a float once; no USD TVL (the response has no price).

``apy`` is Coinbase's own figure and, as its name says, an APY: no compounding
is applied to it (staking rewards accrue to cbETH through the conversion rate).
The object has no time: it is stamped with the fetch time. An object without
``apy`` (the 2022 form) is rejected.

The product is DefiLlama's ``coinbase-wrapped-staked-eth:ethereum:cbeth`` (the
``coinbase`` alias of transforms.products), so the two meet in ``crosscheck``.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from transforms import Context, Result
from transforms.products import product_id
from transforms.units import exact, fraction_to_pct, priced, to_float
from yieldstream.contracts import ObservationError, RawRecord, Strategy, Venue, make_observation

SOURCE = "coinbase"
CBETH = "0xBe9895146f7AF43049ca1c1AE358B0541Ea49704"  # cbETH on Ethereum
PRODUCT = product_id("coinbase", "Ethereum", "CBETH")
MAX_APY = Decimal("1")  # a staking APY above 100 % is a unit error (percent sent)


class WrappedAsset(msgspec.Struct):
    id: str
    circulating_supply: str
    conversion_rate: str
    apy: str | None = None


_decode = msgspec.json.Decoder(WrappedAsset).decode


def _number(name: str, value: str) -> Decimal:
    try:
        return exact(value)
    except ValueError as exc:
        raise ObservationError(f"unusable {name}: {exc}") from None


def tvl_eth(circulating_supply: str, conversion_rate: str) -> Decimal:
    """cbETH in customers' hands times ETH per cbETH, exactly."""
    supply = _number("circulating_supply", circulating_supply)
    rate = _number("conversion_rate", conversion_rate)
    if supply < 0:
        raise ObservationError(f"negative circulating_supply {circulating_supply!r}")
    if not 1 <= rate < 2:  # cbETH only ever gains on ETH, and slowly
        raise ObservationError(f"conversion_rate {conversion_rate!r} is not ETH per cbETH")
    return priced(supply, rate)


def transform(record: RawRecord, ctx: Context) -> Result:
    asset = _decode(record.payload)
    if asset.id.upper() != "CBETH":
        raise ObservationError(f"not cbETH: {asset.id!r}")
    if asset.apy is None:
        raise ObservationError("no apy (responses before 2023 carry none)")
    apy_fraction = _number("apy", asset.apy)
    if not -MAX_APY < apy_fraction <= MAX_APY:
        raise ObservationError(f"apy {asset.apy!r} is not a fraction in (-1, 1]")
    apy = fraction_to_pct(to_float(apy_fraction))
    return [
        make_observation(
            {
                "source": SOURCE,
                "pool_id": "cbeth",
                "product_id": PRODUCT,
                "observed_at": record.fetched_at,
                "protocol": "coinbase-wrapped-staked-eth",
                "chain": "Ethereum",
                "symbol": "CBETH",
                "strategy": Strategy.STAKING,
                "strategy_guessed": False,
                "venue": Venue.CEFI,
                "category": "Liquid Staking",
                "apy_pct": apy,
                "apy_base_pct": apy,
                "apy_reward_pct": 0.0,
                "tvl_tokens": to_float(tvl_eth(asset.circulating_supply, asset.conversion_rate)),
                "tvl_token": "ETH",
                "underlying_tokens": [CBETH],
            }
        )
    ]
