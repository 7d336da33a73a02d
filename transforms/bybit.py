"""Bybit Earn products -> savings (lending) observations, APR compounded daily.

An item of ``/v5/earn/product`` is one product: ``productId`` (its id), ``coin``,
``category`` (``FlexibleSaving``; ``OnChain`` is on-chain staking), ``status``
and ``estimateApr``, a percent string with its sign (``"3%"`` is 3 % a year, read
by :func:`transforms.units.percent_string`, never as a fraction).

Compounding: daily (n = 365). Bybit: flexible savings' "hourly yield will be
automatically calculated and distributed to your account at 12:30AM UTC the next
day" (https://testnet.bybit.com/en/help-center/article/Flexible-Staking-FAQ), and
the staked amount then earns on it; "the management fee charged by Bybit is
already reflected in the APR", so the APR is what the saver keeps.

A product whose ``status`` is not ``Available`` (sold out, paused) still has a
rate; it is kept, with ``pool_meta`` saying so. Items carry no time of their own:
the observation is stamped with the fetch time.
"""

from __future__ import annotations

import msgspec

from transforms import Context, Result
from transforms.products import product_id
from transforms.units import DAILY, apr_to_apy_pct, percent_string
from yieldstream.contracts import ObservationError, RawRecord, Strategy, Venue, make_observation

SOURCE = "bybit"
MAX_APR_PCT = 1000.0  # an APR above 1,000 % is a unit error (a fraction times 100 twice)
# category -> (strategy, product variant, category shown)
KINDS = {
    "FlexibleSaving": (Strategy.LENDING, "flexible-saving", "Savings"),
    "OnChain": (Strategy.STAKING, "onchain", "Staking"),
}


class Product(msgspec.Struct):
    productId: str
    coin: str
    category: str
    estimateApr: str
    status: str


_decode = msgspec.json.Decoder(Product).decode


def transform(record: RawRecord, ctx: Context) -> Result:
    item = _decode(record.payload)
    kind = KINDS.get(item.category)
    if kind is None:
        raise ObservationError(f"unknown product category {item.category!r}")
    strategy, variant, category = kind
    if not item.coin.strip() or not item.productId.strip():
        raise ObservationError("a product needs its coin and productId")
    try:
        apr = percent_string(item.estimateApr)
    except ValueError as exc:
        raise ObservationError(f"unusable estimateApr: {exc}") from None
    if not 0.0 <= apr <= MAX_APR_PCT:
        raise ObservationError(f"estimateApr {item.estimateApr!r} is not in [0, {MAX_APR_PCT}] %")
    try:
        apy = apr_to_apy_pct(apr, DAILY)
    except ValueError as exc:
        raise ObservationError(str(exc)) from None
    return [
        make_observation(
            {
                "source": SOURCE,
                "pool_id": item.productId,
                "product_id": product_id("bybit", "Off-chain", item.coin, variant),
                "observed_at": record.fetched_at,
                "protocol": "bybit",
                "chain": "Off-chain",
                "symbol": item.coin,
                "strategy": strategy,
                "strategy_guessed": False,
                "venue": Venue.CEFI,
                "category": category,
                "apy_pct": apy,
                "apy_base_pct": apy,
                "apy_reward_pct": 0.0,
                "pool_meta": None if item.status == "Available" else f"status {item.status}",
            }
        )
    ]
