"""Solana's joined ``getInflationRate`` and ``getInflationGovernor`` -> one network row.

The record (see :mod:`ingest.solana_inflation`) is ``{"rate": {"total", "validator",
"foundation", "epoch"}, "governor": {"initial", "terminal", "taper", "foundation",
"foundationTerm"} | null}``, both as the RPC gave them:

- ``apy_pct``: the rate's ``total``, the annual inflation as a FRACTION, in percent
  (0.0386 -> 3.86 %). No compounding: a supply growth rate, stored as published.
- ``pool_meta``: the epoch, the foundation's share, and the schedule the governor
  published, its fractions shown as percent written exactly as published
  (``initial 8%, taper 15%/yr, terminal 1.5%, foundation 5% for 7 yr``); without a
  governor (its request failed) it says ``schedule not fetched``.

A rate that is not a fraction in ``[0, 0.5]`` (its foundation share in ``[0, 1]``)
is a unit error: a rejection with the reason. The schedule is context, not the
figure: a governor that holds no schedule (``schedule unreadable (<why>)``) or
whose fractions are outside ``[0, 1]`` or whose terminal rate exceeds its initial
one (``schedule unusable (<why>)``) is said so in ``pool_meta``, and the rate is
kept. The API gives no time, so the observation time is the fetch time
floored to the hour.
"""

from __future__ import annotations

import math
from decimal import Decimal

import msgspec

from transforms import Context, Result, floor_hour
from transforms.units import fraction_to_pct
from yieldstream.contracts import (
    Level,
    ObservationError,
    RawRecord,
    Strategy,
    Venue,
    make_observation,
)

SOURCE = "solana-inflation"


class InflationRate(msgspec.Struct):
    total: float
    validator: float
    foundation: float
    epoch: int


class InflationGovernor(msgspec.Struct):
    initial: float
    terminal: float
    taper: float
    foundation: float
    foundationTerm: float  # years


class Joined(msgspec.Struct):
    rate: InflationRate
    governor: msgspec.Raw = msgspec.Raw(b"null")  # decoded on its own: see _schedule


_decode = msgspec.json.Decoder(Joined).decode
_decode_governor = msgspec.json.Decoder(InflationGovernor | None).decode


def _pct(fraction: float) -> str:
    """A published fraction in percent, as written: 0.15 -> ``15`` (not 15.000000000000002)."""
    return format(Decimal(repr(fraction)).scaleb(2).normalize(), "f")


def _schedule(raw: msgspec.Raw) -> str:
    """The published schedule in words, or why there is none (never a rejection)."""
    try:
        governor = _decode_governor(raw)
    except msgspec.DecodeError as exc:  # ValidationError included
        return f"schedule unreadable ({exc})"
    if governor is None:
        return "schedule not fetched"
    fractions = (governor.initial, governor.terminal, governor.taper, governor.foundation)
    if not all(math.isfinite(f) and 0.0 <= f <= 1.0 for f in fractions):
        return "schedule unusable (fractions outside [0, 1])"
    if governor.terminal > governor.initial or not 0.0 <= governor.foundationTerm < 1000:
        return "schedule unusable (terminal above initial, or no foundation term)"
    return (
        f"schedule initial {_pct(governor.initial)}%, taper {_pct(governor.taper)}%/yr, "
        f"terminal {_pct(governor.terminal)}%, foundation {_pct(governor.foundation)}% "
        f"for {governor.foundationTerm:g} yr"
    )


def transform(record: RawRecord, ctx: Context) -> Result:
    joined = _decode(record.payload)
    rate = joined.rate
    if not (0.0 <= rate.total <= 0.5 and 0.0 <= rate.foundation <= 1.0) or rate.epoch < 0:
        raise ObservationError(
            f"inflation {rate.total!r} (foundation {rate.foundation!r}) at epoch {rate.epoch} "
            "is not a fraction"
        )
    try:
        pct = fraction_to_pct(rate.total)
        foundation = _pct(rate.foundation)
    except (ValueError, ArithmeticError) as exc:
        raise ObservationError(f"unusable inflation: {exc}") from None
    meta = f"epoch {rate.epoch}, foundation {foundation}%, {_schedule(joined.governor)}"
    return [
        make_observation(
            {
                "source": SOURCE,
                "level": Level.NETWORK,
                "pool_id": "solana:inflation",
                "product_id": None,
                "observed_at": floor_hour(record.fetched_at),
                "protocol": "solana",
                "chain": "Solana",
                "symbol": "SOL",
                "strategy": Strategy.OTHER,
                "strategy_guessed": False,
                "venue": Venue.DEFI,
                "category": "Network inflation",
                "apy_pct": pct,
                "pool_meta": meta,
            }
        )
    ]
