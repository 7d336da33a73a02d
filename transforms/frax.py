"""Frax sfrxETH summaries -> staking observations (percent APR compounded weekly).

A summary (``/v2/frxeth/summary/latest``, or one item of ``/summary/history``)
gives ``sfrxethApr``, a nominal APR in percent. sfrxETH is an ERC-4626 vault
built on xERC4626 (the verified ``sfrxETH.sol``, 0xac3E...e38F): new frxETH
rewards are queued by ``syncRewards`` and streamed linearly over fixed-length
reward cycles, and only after their cycle do they become assets that earn. The
cycle length is the constructor's ``rewardsCycleLength``, one week (604,800 s)
as deployed (not re-checked on chain here), so a holder's yield compounds once a
week: ``n = 52`` (``apr_to_apy_pct(apr, 52)``; daily compounding would overstate
it by ~0.0007 points at 2.85 %).
The rewards streamed to the vault are net of Frax's 10 % fee (Origin Protocol's
frxETH page), so the APR is what holders get.

TVL: ``sfrxethTotalAssets`` (frxETH in the vault) x ``frxethEthCurvePrice`` (ETH
per frxETH) x ``ethPriceUsd``, exactly (:func:`transforms.units.priced`), when all
three are given; ``tvl_tokens`` is the frxETH in the vault.

The interval's own ``intervalTimestamp`` is the observation time; a summary
without one is stamped with the hour it was fetched in. A time before sfrxETH or
after the fetch (beyond :data:`CLOCK_SKEW`) is rejected, as is an APR above
100 % (a unit error, not a staking yield).
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from transforms import CLOCK_SKEW, Context, Result, floor_hour
from transforms.products import product_id
from transforms.units import apr_to_apy_pct, exact, iso_time, priced, to_float
from yieldstream.contracts import ObservationError, RawRecord, Strategy, Venue, make_observation

SOURCE = "frax"
SFRXETH = "0xac3E018457B222d93114458476f3E3416Abbe38F"
FRXETH = "0x5E8422345238F34275888049021821E8E08CAa1f"
# The same product as DefiLlama's Frax Ether pool (project frax-ether).
PRODUCT = product_id("frax", "Ethereum", "SFRXETH")
LAUNCHED = datetime(2022, 10, 1, tzinfo=UTC)  # frxETH and sfrxETH went live in October 2022
WEEKLY = 52  # xERC4626 reward cycles of one week
APR_MAX_PCT = 100.0


class Summary(msgspec.Struct):
    sfrxethApr: float
    intervalTimestamp: str | None = None
    sfrxethTotalAssets: float | None = None
    frxethEthCurvePrice: float | None = None
    ethPriceUsd: float | None = None


_decode = msgspec.json.Decoder(Summary).decode


def transform(record: RawRecord, ctx: Context) -> Result:
    summary = _decode(record.payload)
    if summary.intervalTimestamp is None:
        observed_at = floor_hour(record.fetched_at)
    else:
        moment = iso_time(summary.intervalTimestamp)
        if moment is None:
            raise ObservationError(
                f"unreadable intervalTimestamp {summary.intervalTimestamp!r}: "
                "expected ISO-8601 with a zone"
            )
        observed_at = moment
    if not LAUNCHED <= observed_at <= record.fetched_at + CLOCK_SKEW:
        raise ObservationError(
            f"summary time {observed_at.isoformat()} is not between sfrxETH's launch "
            f"({LAUNCHED.date()}) and its fetch ({record.fetched_at.isoformat()})"
        )
    if summary.sfrxethApr > APR_MAX_PCT:
        raise ObservationError(
            f"sfrxethApr {summary.sfrxethApr!r} % is above {APR_MAX_PCT:g} %: not a staking APR"
        )
    try:
        apy = apr_to_apy_pct(summary.sfrxethApr, WEEKLY)
        assets = None if summary.sfrxethTotalAssets is None else exact(summary.sfrxethTotalAssets)
        prices = (summary.frxethEthCurvePrice, summary.ethPriceUsd)
        tvl_usd = (
            None
            if assets is None or prices[0] is None or prices[1] is None
            else to_float(priced(assets, *prices))
        )
    except ValueError as exc:
        raise ObservationError(f"unusable summary: {exc}") from None
    return [
        make_observation(
            {
                "source": SOURCE,
                "pool_id": "sfrxeth",
                "product_id": PRODUCT,
                "observed_at": observed_at,
                "protocol": "frax",
                "chain": "Ethereum",
                "symbol": "SFRXETH",
                "strategy": Strategy.STAKING,
                "strategy_guessed": False,
                "venue": Venue.DEFI,
                "category": "Liquid Staking",
                "apy_pct": apy,
                "apy_base_pct": apy,
                "apy_reward_pct": 0.0,
                "tvl_usd": tvl_usd,
                "tvl_tokens": None if assets is None else to_float(assets),
                "tvl_token": None if assets is None else "FRXETH",
                "underlying_tokens": [FRXETH],
            }
        )
    ]
