"""ultrasound.money's gauge rates -> Ethereum's net supply growth (one network row).

The record is the whole ``/api/v2/fees/gauge-rates`` answer (see
:mod:`ingest.ethereum_issuance`); only its ``d30`` window is read:

- ``apy_pct``: ``d30.supply_growth_rate_yearly``, a **fraction** a year, in percent
  (0.0085861 -> 0.85861 %; negative when more ETH is burnt than issued). It is
  ultrasound.money's own ``(issuance - burn) / supply`` over the last 30 days,
  annualised; stored as published, no compounding (a supply growth rate).
- ``pool_meta``: the window's issuance and burn in **ETH a year** (rounded to whole ETH).

Why 30 days: the burn follows gas demand, which swings by the day (one busy week
can multiply it several times), and the shorter windows (``m5``, ``h1``, ``d1``,
``d7``) annualise those swings; ``since_merge`` and ``since_burn`` are averages over
years, not today's rate. ``d30`` is the longest rolling window: the steadiest
estimate of the current annual rate. The ``_pow`` fields (a proof-of-work
counterfactual) are never read.

Checks, each a rejection with its reason: the figures must be numbers (a string is
an undecodable item); burn and issuance not negative; a growth beyond +-50 % a year
is no Ethereum figure but a unit error (a percent read as a fraction); and the
growth's sign must be that of issuance minus burn. The answer's ``timestamp`` is
optional and not used: ``observed_at`` is the fetch time floored to the hour.
"""

from __future__ import annotations

import math

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

SOURCE = "ethereum-issuance"
WINDOW = "d30"
# Ethereum's supply has moved by about 1 % a year either way since the merge.
MAX_GROWTH = 0.5


class Amount(msgspec.Struct):
    eth: float  # ETH a year


class Window(msgspec.Struct):
    burn_rate_yearly: Amount
    issuance_rate_yearly: Amount
    supply_growth_rate_yearly: float  # a fraction a year
    block_number: int | None = None


class GaugeRates(msgspec.Struct):
    d30: Window


_decode = msgspec.json.Decoder(GaugeRates).decode


def transform(record: RawRecord, ctx: Context) -> Result:
    window = _decode(record.payload).d30
    issuance = window.issuance_rate_yearly.eth
    burn = window.burn_rate_yearly.eth
    growth = window.supply_growth_rate_yearly
    if not all(math.isfinite(v) for v in (issuance, burn, growth)):
        raise ObservationError(f"{WINDOW}: figures are not finite numbers")
    if issuance < 0 or burn < 0:
        raise ObservationError(f"{WINDOW}: negative issuance {issuance} or burn {burn} ETH/yr")
    if abs(growth) > MAX_GROWTH:
        raise ObservationError(
            f"{WINDOW}: supply growth {growth!r} a year is beyond +-{MAX_GROWTH:g} "
            "(a fraction expected: a percent read as a fraction?)"
        )
    net = issuance - burn
    if growth != 0 and net != 0 and (growth > 0) != (net > 0):
        raise ObservationError(
            f"{WINDOW}: supply growth {growth!r} disagrees in sign with "
            f"issuance - burn = {net:.0f} ETH/yr"
        )
    meta = f"30-day window: issuance {issuance:.0f} ETH/yr, burn {burn:.0f} ETH/yr"
    if window.block_number is not None:
        meta += f", to block {window.block_number}"
    return [
        make_observation(
            {
                "source": SOURCE,
                "level": Level.NETWORK,
                "pool_id": "ethereum:inflation",
                "product_id": None,
                "observed_at": floor_hour(record.fetched_at),
                "protocol": "ethereum",
                "chain": "Ethereum",
                "symbol": "ETH",
                "strategy": Strategy.OTHER,
                "strategy_guessed": False,
                "venue": Venue.DEFI,
                "category": "Network inflation",
                "apy_pct": fraction_to_pct(growth),
                "pool_meta": meta,
            }
        )
    ]
