"""KuCoin lending rates -> lending observations (annual rate compounded hourly).

A ``/api/v3/project/list`` item is one currency's lending market; its
``marketInterestRate`` is the rate the hour's bidding cleared at, an ANNUAL
fraction string (``"0.005"`` = 0.5 % a year), and the lender earns it: it is the
APR here. ``min``/``maxInterestRate`` bound what a lender may bid and are not
kept. History points of ``/api/v3/project/marketInterestRate?currency=`` are
``{"time": "YYYYMMDDHH00", "marketInterestRate": ...}``.

Compounding: hourly (n = 8760). KuCoin: "Bidding is conducted once every hour to
determine interest rates ... Interest earnings are also paid out every hour"
(https://www.kucoin.com/margin/v2/lend). The APY assumes the paid interest is lent
again (auto-subscription), as a saver's APY does. KuCoin's pages call the rate
"APY", but interest is computed each hour from the hourly share of it, so it is
read as a nominal annual rate (APR). KuCoin's margin page says 15 % of borrowers'
interest goes to its fee and risk fund; whether ``marketInterestRate`` is before
that cut is not documented, so none is applied (``apy_gross_pct`` is left unset).

Times: a snapshot item carries none, so it is the hour it was fetched in (the
rate is the hour's clearing rate; the same hour's history point shares its key).
A history point's ``time`` names no zone and KuCoin documents none: it is read in
:data:`ZONE` (UTC). Were KuCoin writing UTC+8, the newest points would come out 8
hours after their fetch and be rejected for it, which is how a live run shows it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from transforms import Context, Result, floor_hour, history_time
from transforms.products import product_id
from transforms.units import HOURLY, apr_to_apy_pct, compact_time, exact, fraction_to_pct, to_float
from yieldstream.contracts import (
    Observation,
    ObservationError,
    RawRecord,
    Strategy,
    Venue,
    make_observation,
)

SOURCE = "kucoin"
ZONE = UTC  # the zone of the history's "YYYYMMDDHH00" times (undocumented; see above)
HISTORY_PREFIX = "/api/v3/project/marketInterestRate?currency="
MAX_RATE = 10  # an annual fraction above 1,000 % a year is a unit error, not a market


class Market(msgspec.Struct):
    currency: str
    marketInterestRate: str


class RatePoint(msgspec.Struct):
    time: str
    marketInterestRate: str


_market = msgspec.json.Decoder(Market).decode
_point = msgspec.json.Decoder(RatePoint).decode


def apr_pct(rate: str) -> float:
    """The annual fraction string as an APR in percent, checked for sense."""
    try:
        fraction = exact(rate)
    except ValueError as exc:
        raise ObservationError(f"unusable marketInterestRate: {exc}") from None
    if not 0 <= fraction <= MAX_RATE:
        raise ObservationError(
            f"marketInterestRate {rate!r} is not an annual fraction in [0, {MAX_RATE}]"
        )
    return fraction_to_pct(to_float(fraction))


def transform(record: RawRecord, ctx: Context) -> Result:
    if record.endpoint.startswith(HISTORY_PREFIX):
        point = _point(record.payload)
        currency = record.endpoint.removeprefix(HISTORY_PREFIX)
        rate = point.marketInterestRate
        observed_at = history_time(compact_time(point.time, ZONE), point.time, record)
    else:
        market = _market(record.payload)
        currency, rate = market.currency, market.marketInterestRate
        observed_at = floor_hour(record.fetched_at)
    return [observation(currency, apr_pct(rate), observed_at)]


def observation(currency: str, apr: float, observed_at: datetime) -> Observation:
    if not currency.strip():
        raise ObservationError("empty currency")
    try:
        apy = apr_to_apy_pct(apr, HOURLY)
    except ValueError as exc:
        raise ObservationError(str(exc)) from None
    return make_observation(
        {
            "source": SOURCE,
            "pool_id": currency,
            "product_id": product_id("kucoin", "Off-chain", currency, "lending"),
            "observed_at": observed_at,
            "protocol": "kucoin",
            "chain": "Off-chain",
            "symbol": currency,
            "strategy": Strategy.LENDING,
            "strategy_guessed": False,
            "venue": Venue.CEFI,
            "category": "Lending",
            "apy_pct": apy,
            "apy_base_pct": apy,
            "apy_reward_pct": 0.0,
        }
    )
