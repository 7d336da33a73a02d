"""Marinade's mSOL APY -> a staking observation (already an APY: percent only).

The answer is ``{"value", "end_time", "end_price", "start_time", "start_price"}``.
``value`` is an APY as a fraction, compounded by Marinade from mSOL's price (SOL per
mSOL) over the window: ``(end_price / start_price) ** (365 days / elapsed) - 1``
(Marinade's ``calc_apy``). So it only changes unit (:func:`fraction_to_pct`); no
APR -> APY step, no compounding ``n`` of ours: mSOL's price already carries every
epoch's rewards (about every two days), and the compounding is in the price.

``observed_at`` is ``end_time``, the sample the window ends at (RFC 3339, UTC): a
re-fetch before the next sample, and a history point of the same sample, are the
same key. Rejected: times that cannot be read, a window that does not run forwards
from mSOL's launch to the fetch (beyond :data:`CLOCK_SKEW`), a ``value`` of 1 or
more (100 % APY: a percent sent as a fraction) or at/below -1, and a ``value``
that disagrees with its own prices by more than 1 % of the APY or 0.01 percentage
points (recomputed here with :func:`growth_to_apy_pct`; Marinade computes the same
float, so only a unit or field mix-up upstream breaks it).
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from transforms import CLOCK_SKEW, Context, Result
from transforms.products import product_id
from transforms.units import fraction_to_pct, growth_to_apy_pct, iso_time
from yieldstream.contracts import ObservationError, RawRecord, Strategy, Venue, make_observation

SOURCE = "marinade"
MSOL = "mSoLzYCxHdYgdzU16g5QSh3i5K3z3KZK7ytfqcJm7So"
# The same product as DefiLlama's Marinade mSOL pool (project marinade-liquid-staking).
PRODUCT = product_id("marinade", "Solana", "MSOL")
LAUNCHED = datetime(2021, 8, 1, tzinfo=UTC)  # mSOL went live in August 2021
# How far ``value`` may be from the APY its prices give (percentage points, share).
TOLERANCE_PCT = 0.01
TOLERANCE_SHARE = 0.01


class Apy(msgspec.Struct):
    value: float  # APY, a fraction
    end_time: str
    end_price: float  # SOL per mSOL
    start_time: str
    start_price: float


_decode = msgspec.json.Decoder(Apy).decode


def _time(answer: Apy, field: str) -> datetime:
    text = getattr(answer, field)
    moment = iso_time(text)
    if moment is None:
        raise ObservationError(f"unreadable {field} {text!r}: expected RFC 3339 with a zone")
    return moment


def transform(record: RawRecord, ctx: Context) -> Result:
    answer = _decode(record.payload)
    start, end = _time(answer, "start_time"), _time(answer, "end_time")
    if not LAUNCHED <= start < end <= record.fetched_at + CLOCK_SKEW:
        raise ObservationError(
            f"APY window {start.isoformat()} .. {end.isoformat()} does not run forwards "
            f"between mSOL's launch ({LAUNCHED.date()}) and its fetch "
            f"({record.fetched_at.isoformat()})"
        )
    if not -1.0 < answer.value < 1.0:
        raise ObservationError(
            f"value {answer.value!r} is no APY fraction of mSOL: 1 would be 100 % "
            "(a percent sent as a fraction?)"
        )
    try:
        apy = fraction_to_pct(answer.value)
        implied = growth_to_apy_pct(
            answer.start_price, answer.end_price, (end - start).total_seconds()
        )
    except ValueError as exc:
        raise ObservationError(f"unusable APY answer: {exc}") from None
    if abs(apy - implied) > max(TOLERANCE_PCT, TOLERANCE_SHARE * abs(implied)):
        raise ObservationError(
            f"value {answer.value!r} ({apy:.4f} %) disagrees with its prices: "
            f"{answer.start_price!r} -> {answer.end_price!r} SOL per mSOL over "
            f"{(end - start).total_seconds() / 86400:.2f} days is {implied:.4f} %"
        )
    return [
        make_observation(
            {
                "source": SOURCE,
                "pool_id": "msol",
                "product_id": PRODUCT,
                "observed_at": end,
                "protocol": "marinade",
                "chain": "Solana",
                "symbol": "MSOL",
                "strategy": Strategy.STAKING,
                "strategy_guessed": False,
                "venue": Venue.DEFI,
                "category": "Liquid Staking",
                "apy_pct": apy,
                "apy_base_pct": apy,
                "apy_reward_pct": 0.0,
                "underlying_tokens": [MSOL],
            }
        )
    ]
