"""Unit handling: the one place where rates change units."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

DAILY = 365


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


def unix_time(value: Any) -> datetime | None:
    """Seconds since the epoch (an int or float, not a bool) as UTC, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
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
    return moment.astimezone(UTC) if moment.tzinfo is not None else None
