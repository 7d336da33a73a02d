"""OKX Simple Earn rates -> lending observations (hourly compounding).

Each item is ``{"ccy": "AVAX", "lendingRate": "0.0206", "rate": "0.127", "ts":
"1787756400000", "amt": ""}``. ``lendingRate`` is what a saver earns, an annual
rate (APR) as a decimal fraction string; ``rate`` is what borrowers pay, stored as
``apy_borrow_pct`` and never as the saver's APY. ``ts`` (ms) is the hour the rate
is for and the observation's time, so a snapshot and a backfill of the same hour
are one key.

Compounding: OKX calculates Simple Earn interest every hour and pays it at the start
of the next hour, where it earns in turn ("Interest is calculated hourly and
distributed at the beginning of the next hour", OKX help "Introduction to OKX
Simple Earn Flexible and Its Rules", https://www.okx.com/help/4415718212237), hence
``HOURLY`` (n = 8760) for both rates. ``lendingRate`` is already the lender's share,
after the interest OKX keeps, so no fee is taken off and no gross APY is stored.

A rate below 0 or above 10 (1,000 % APR) is a unit error and rejected, as is a
point before 2021-12-14 (OKX's first) or after the fetch (beyond CLOCK_SKEW).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import msgspec

from transforms import CLOCK_SKEW, Context, Result
from transforms.products import product_id
from transforms.units import HOURLY, apr_to_apy_pct, exact, fraction_to_pct, ms_time, to_float
from yieldstream.contracts import ObservationError, RawRecord, Strategy, Venue, make_observation

SOURCE = "okx"
SINCE = datetime(2021, 12, 14, tzinfo=UTC)
MAX_RATE = Decimal(10)  # an annual fraction: 1,000 % APR
STABLE = frozenset({"USDT", "USDC", "DAI", "PYUSD", "USDG", "FDUSD", "TUSD"})


class LendingRate(msgspec.Struct):
    ccy: str
    lendingRate: str
    ts: str
    rate: str | None = None


_decode = msgspec.json.Decoder(LendingRate).decode


def _apy_pct(text: str, name: str) -> float:
    """An annual fraction string (APR) as APY in percent, compounded hourly."""
    try:
        fraction = exact(text)
    except ValueError as exc:
        raise ObservationError(f"{name}: {exc}") from None
    if not 0 <= fraction <= MAX_RATE:
        raise ObservationError(f"{name} {text!r} is not an annual fraction between 0 and 10")
    try:
        return apr_to_apy_pct(fraction_to_pct(to_float(fraction)), HOURLY)
    except ValueError as exc:
        raise ObservationError(f"{name}: {exc}") from None


def transform(record: RawRecord, ctx: Context) -> Result:
    item = _decode(record.payload)
    if not item.ccy:
        raise ObservationError("empty ccy")
    observed_at = ms_time(item.ts)
    if observed_at is None or not SINCE <= observed_at <= record.fetched_at + CLOCK_SKEW:
        raise ObservationError(
            f"ts {item.ts!r} is no time in ms between {SINCE.date()} and the fetch "
            f"({record.fetched_at.isoformat()})"
        )
    apy = _apy_pct(item.lendingRate, "lendingRate")
    borrow = _apy_pct(item.rate, "rate") if item.rate else None
    return [
        make_observation(
            {
                "source": SOURCE,
                "pool_id": item.ccy,
                "product_id": product_id("okx", "Off-chain", item.ccy, "savings"),
                "observed_at": observed_at,
                "protocol": "okx",
                "chain": "Off-chain",
                "symbol": item.ccy,
                "strategy": Strategy.LENDING,
                "strategy_guessed": False,
                "venue": Venue.CEFI,
                "category": "CeFi Lending",
                "stablecoin": item.ccy in STABLE,
                "apy_pct": apy,
                "apy_base_pct": apy,
                "apy_reward_pct": 0.0,
                "apy_borrow_pct": borrow,
            }
        )
    ]
