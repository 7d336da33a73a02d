"""Unit handling: the one place where rates, amounts and times change units.

Every figure a source publishes passes through one of these before it is stored,
so a fraction read as a percent (100x) or a per-day rate read as an annual one
(365x) can only be wrong here, where it is tested (``tests/transforms/test_units*``).

Rates
    ``*_pct`` is percent (3.1 means 3.1 %); a *fraction* is 0.031 for the same.
    An **APR** is a nominal annual rate (the per-period rate times the periods in
    a year); an **APY** compounds it: ``APY = (1 + APR / n) ** n - 1`` with ``n``
    periods a year. Each source says which ``n`` its venue pays with.
Amounts
    Base units (lamports, wei, 1e18-scaled decimals, RAY) are integers, often
    beyond 2**53, where a float is no longer exact: they are read as ``int`` or
    digit strings and scaled as :class:`~decimal.Decimal`, never through a float.
Times
    Seconds, milliseconds (a number or a digit string), ISO-8601 with a zone, and
    ``"YYYYMMDDHHmm"`` strings, all read as UTC; anything else is None, so that
    the transform rejects the record with the reason.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any, Final

DAILY: Final = 365  # compounding once a day (stETH rebases, exchange interest paid daily)
HOURLY: Final = 8760  # once an hour (365 x 24)

LAMPORTS_PER_SOL: Final = 9  # decimals: 1 SOL = 10**9 lamports
WEI_PER_ETH: Final = 18  # decimals: 1 ETH = 10**18 wei
RAY: Final = 27  # decimals of Aave's RAY rates: 1e27 is 1.0

# Large enough for a 40-digit amount scaled by 10**-27 without rounding.
_PRECISION: Final = 80


def apr_to_apy_pct(apr_pct: float, periods_per_year: int = DAILY) -> float:
    """Convert a nominal APR in percent to an APY in percent.

    ``APY = (1 + APR / n) ** n - 1`` with ``n`` compounding periods a year.
    The default ``n = 365`` matches rewards that accrue daily (stETH rebases once
    a day). Both sides are percent: ``apr_to_apy_pct(3.65)`` is ~3.7172.

    Raises ``ValueError`` for a non-finite APR, ``n < 1``, an APR at or below
    ``-100 * n`` % (no real APY), or one whose APY is too large for a float.
    """
    if not math.isfinite(apr_pct):
        raise ValueError(f"APR must be finite, got {apr_pct!r}")
    if periods_per_year < 1:
        raise ValueError(f"periods_per_year must be >= 1, got {periods_per_year}")
    rate = apr_pct / 100.0 / periods_per_year
    if rate <= -1.0:
        raise ValueError(f"APR {apr_pct} % cannot compound {periods_per_year} times a year")
    try:
        apy_pct = math.expm1(periods_per_year * math.log1p(rate)) * 100.0
    except OverflowError:
        apy_pct = math.inf
    if not math.isfinite(apy_pct):
        raise ValueError(f"APR {apr_pct} % compounded {periods_per_year} times a year overflows")
    return apy_pct


def apy_to_apr_pct(apy_pct: float, periods_per_year: int = DAILY) -> float:
    """The inverse of :func:`apr_to_apy_pct`: the nominal APR that compounds to ``apy_pct``."""
    if not math.isfinite(apy_pct) or apy_pct <= -100.0:
        raise ValueError(f"APY must be finite and above -100 %, got {apy_pct!r}")
    if periods_per_year < 1:
        raise ValueError(f"periods_per_year must be >= 1, got {periods_per_year}")
    return math.expm1(math.log1p(apy_pct / 100.0) / periods_per_year) * periods_per_year * 100.0


def fraction_to_pct(fraction: float) -> float:
    """A rate given as a fraction (0.031) in percent (3.1); ValueError if not finite."""
    if isinstance(fraction, bool) or not math.isfinite(fraction):
        raise ValueError(f"rate must be a finite number, got {fraction!r}")
    return fraction * 100.0


def period_rate_to_apr_pct(rate: float, periods_per_year: int) -> float:
    """A rate per period (a fraction: 0.0002 a day) as the nominal APR in percent."""
    return fraction_to_pct(rate) * periods_per_year


def period_rate_to_apy_pct(rate: float, periods_per_year: int) -> float:
    """A rate per period (a fraction a day or an hour), compounded each period, as APY %."""
    return apr_to_apy_pct(period_rate_to_apr_pct(rate, periods_per_year), periods_per_year)


def frr_to_daily_rate(frr: float) -> float:
    """Bitfinex's ``FRR`` in ``/funding/stats`` is 1/365 of the per-day rate: x 365.

    (The FRR in ``/ticker`` and ``/tickers`` is the per-day rate itself.)
    """
    if isinstance(frr, bool) or not math.isfinite(frr):
        raise ValueError(f"FRR must be a finite number, got {frr!r}")
    return frr * 365


def net_of_fee_pct(rate_pct: float, fee_share: float) -> float:
    """What a lender keeps of ``rate_pct`` when the venue takes ``fee_share`` of the interest."""
    if not 0.0 <= fee_share < 1.0:
        raise ValueError(f"fee share must be in [0, 1), got {fee_share!r}")
    return rate_pct * (1.0 - fee_share)


_PERCENT = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*%\s*")


def percent_string(text: Any) -> float:
    """A percent written with its sign, ``"3%"`` or ``" 2.5 %"``, as a float percent.

    ``"3"`` (no ``%``) and ``"0.03%%"`` are ValueErrors: a string without the sign
    could be a fraction or a percent, and guessing is the 100x bug.
    """
    match = _PERCENT.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"expected a percent string like '3%', got {text!r}")
    value = float(match.group(1))
    if not math.isfinite(value):
        raise ValueError(f"percent out of range: {text!r}")
    return value


def exact(value: Any) -> Decimal:
    """A number given as an int, a decimal string or a float, as an exact Decimal.

    Ints and strings keep every digit (a 40-digit amount, lamports beyond 2**53);
    a float is taken at its shortest repr (``0.1`` is ``Decimal('0.1')``), which is
    what upstream wrote. Bools, NaN, infinities and other text are ValueErrors.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, Decimal) and value.is_finite():
        return value
    text = (
        repr(value) if isinstance(value, float) else value.strip() if isinstance(value, str) else ""
    )
    if not text:
        raise ValueError(f"expected a number, got {type(value).__name__} {value!r}")
    if len(text) > 200:
        raise ValueError(f"number too long: {len(text)} characters")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"expected a number, got {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def base_units(value: Any, decimals: int) -> Decimal:
    """An integer amount in base units (lamports, wei: an int or digit string), scaled.

    ``base_units(15209213875510266, LAMPORTS_PER_SOL)`` is exactly
    ``Decimal('15209213.875510266')``; a float or a fractional string is a
    ValueError, since a base-unit amount that is not an integer is a unit error.
    """
    if isinstance(value, float) or (isinstance(value, str) and not value.strip().isdigit()):
        raise ValueError(f"expected an integer amount in base units, got {value!r}")
    number = exact(value)
    if number != number.to_integral_value():
        raise ValueError(f"expected an integer amount in base units, got {value!r}")
    return scaled(number, decimals)


def scaled(value: Any, decimals: int) -> Decimal:
    """An exact number divided by ``10 ** decimals`` (1e18-scaled decimals, RAY rates)."""
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return exact(value).scaleb(-decimals)


def to_float(value: Decimal) -> float:
    """An exact Decimal as the nearest float, once, at the end (ValueError if too large)."""
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{value} does not fit a float")
    return result


def unix_time(value: Any) -> datetime | None:
    """Seconds since the epoch (an int or float, not a bool) as UTC, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def ms_time(value: Any) -> datetime | None:
    """Milliseconds since the epoch (an int, or a digit string like OKX's ``ts``) as UTC."""
    if isinstance(value, str) and value.isdigit() and len(value) <= 16:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def iso_time(value: Any) -> datetime | None:
    """An ISO-8601 time that names its zone (``2025-05-14T23:01:10.331Z``) as UTC, or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is UTC:  # "...Z": as a history gives thousands of them
        return moment
    return moment.astimezone(UTC) if moment.tzinfo is not None else None


# An ISO time that :func:`iso_time` and Arrow's cast to a UTC timestamp read alike:
# UTC, ``Z``, at most microseconds; Arrow may read a whole column of them at once.
# Any other (offsets, nanoseconds, no zone) is read one value at a time.
PLAIN_UTC_TIME: Final = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$"


def compact_time(value: Any, zone: tzinfo = UTC) -> datetime | None:
    """A ``"YYYYMMDDHHmm"`` string (KuCoin's ``202410170100``) in ``zone``, as UTC, or None."""
    if not isinstance(value, str) or len(value) != 12 or not value.isdigit():
        return None
    try:
        return datetime.strptime(value, "%Y%m%d%H%M").replace(tzinfo=zone).astimezone(UTC)
    except ValueError:
        return None


SECONDS_PER_YEAR: Final = 365 * 86400  # a 365-day year, as Marinade annualises mSOL's price


def growth_to_apy_pct(
    start_price: float, end_price: float, elapsed_s: float, year_s: float = SECONDS_PER_YEAR
) -> float:
    """The APY in percent of an exchange rate growing from ``start_price`` to ``end_price``.

    ``(end / start) ** (year_s / elapsed_s) - 1``: the growth over ``elapsed_s``
    seconds, compounded over a year (Marinade's ``calc_apy`` for mSOL, whose
    ``/msol/apy/7d`` ``value`` is this as a fraction). Prices (SOL per mSOL, ETH per
    rETH) must be finite and positive, the time positive; ValueError otherwise, or if
    the APY does not fit a float. ``growth_to_apy_pct(1.0, 1.01, 365 * 86400)`` is 1.0.
    """
    for name, value in (("start price", start_price), ("end price", end_price)):
        if isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    if not math.isfinite(elapsed_s) or elapsed_s <= 0 or not math.isfinite(year_s) or year_s <= 0:
        raise ValueError(f"elapsed time must be positive, got {elapsed_s!r} s")
    try:
        apy_pct = math.expm1(year_s / elapsed_s * math.log(end_price / start_price)) * 100.0
    except OverflowError:
        apy_pct = math.inf
    if not math.isfinite(apy_pct):
        raise ValueError(f"growth {start_price} -> {end_price} in {elapsed_s} s overflows as APY")
    return apy_pct


def priced(amount: Any, *rates: Any) -> Decimal:
    """An amount valued through exchange rates, exactly: ``amount x rate x ...``.

    Each factor is read by :func:`exact` (ints and digit strings keep every digit,
    a float its shortest repr), e.g. frxETH held x ETH per frxETH x USD per ETH;
    :func:`to_float` it once, at the end. A negative factor is a ValueError: an
    amount or a price below zero is a unit or sign error upstream.
    """
    factors = [exact(amount), *(exact(rate) for rate in rates)]
    if any(factor < 0 for factor in factors):
        raise ValueError(f"expected amounts and prices >= 0, got {[str(f) for f in factors]}")
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        total = factors[0]
        for factor in factors[1:]:
            total *= factor
        return total


def ratio(part: Any, whole: Any) -> Decimal:
    """``part / whole`` exactly (borrowed / supplied: a utilisation as a fraction).

    Both are read by :func:`exact` (40-digit decimal strings keep every digit). A
    negative amount, or a zero or negative ``whole``, is a ValueError: a share of
    nothing has no value, and an amount below zero is a sign error upstream.
    """
    top, bottom = exact(part), exact(whole)
    if top < 0 or bottom <= 0:
        raise ValueError(f"expected a part >= 0 of a whole > 0, got {top} of {bottom}")
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return top / bottom


LEGACY_DEC_DECIMALS: Final = 18  # a Cosmos SDK LegacyDec is an integer scaled by 1e18
_LEGACY_DEC = re.compile(r"\d+(?:\.\d+)?")


def legacy_dec(value: Any) -> Decimal:
    """A Cosmos SDK ``LegacyDec`` string (inflation, community tax) as an exact Decimal.

    The LCD writes it as a decimal, ``"0.130197115720711261"`` (``String()`` always
    prints 18 places, so it has a ``.``); gRPC-JSON answers (and the x/mint README)
    write its 1e18-scaled integer, ``"130197115720711261"``. Told apart as: a string
    without a ``.`` whose value is >= 1 is scaled by 1e18 (a decimal-form ``LegacyDec``
    never lacks its ``.``); ``"0"`` is zero either way. Anything but a string of
    digits (signs, exponents, numbers, bools) is a ValueError.
    """
    if not isinstance(value, str) or not _LEGACY_DEC.fullmatch(value.strip()):
        raise ValueError(
            f"expected a LegacyDec string like '0.13' or '130000000000000000', got {value!r}"
        )
    number = exact(value)
    if "." not in value and number >= 1:
        return scaled(number, LEGACY_DEC_DECIMALS)
    return number
