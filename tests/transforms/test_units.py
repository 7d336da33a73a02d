"""apr_to_apy_pct: the one place where an APR becomes an APY."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest

from transforms.units import DAILY, apr_to_apy_pct


def textbook(apr_pct: float, n: int) -> float:
    """The same formula written plainly, as an independent check."""
    return ((1 + apr_pct / 100 / n) ** n - 1) * 100


@pytest.mark.parametrize(
    ("apr_pct", "n", "apy_pct"),
    [
        (3.65, 365, 3.7172411),  # 0.01 % a day for a year
        (2.464, 365, 2.4945221),  # the recorded Lido /last APR
        (10.0, 12, 10.4713067),  # monthly
        (10.0, 4, 10.3812891),  # quarterly
        (100.0, 2, 125.0),  # 50 % twice
        (0.0, 365, 0.0),
    ],
)
def test_known_values(apr_pct: float, n: int, apy_pct: float) -> None:
    assert apr_to_apy_pct(apr_pct, n) == pytest.approx(apy_pct, abs=1e-6)


@pytest.mark.parametrize("apr_pct", [-50.0, -1.0, 0.5, 2.464, 4.77, 35.0, 250.0, 1000.0])
@pytest.mark.parametrize("n", [1, 2, 12, 52, 365, 8760])
def test_matches_the_textbook_formula(apr_pct: float, n: int) -> None:
    assert apr_to_apy_pct(apr_pct, n) == pytest.approx(textbook(apr_pct, n), rel=1e-9)


def test_default_is_daily_compounding() -> None:
    assert DAILY == 365
    assert apr_to_apy_pct(3.65) == apr_to_apy_pct(3.65, 365)


def test_tiny_rates_keep_their_precision() -> None:
    # A naive (1 + r/n) ** n loses most digits here; log1p/expm1 keep them.
    assert apr_to_apy_pct(1e-10, DAILY) == pytest.approx(1e-10, rel=1e-6)


@pytest.mark.parametrize("apr_pct", [-99.0, -3.0, 0.0, 0.001, 2.464, 12.5, 400.0, 5000.0])
def test_one_period_a_year_is_the_identity(apr_pct: float) -> None:
    assert apr_to_apy_pct(apr_pct, 1) == pytest.approx(apr_pct, rel=1e-12, abs=1e-12)


def test_strictly_increasing_in_the_apr() -> None:
    aprs = [-90.0 + i * 0.5 for i in range(2400)]  # -90 % .. 1109.5 %
    apys = [apr_to_apy_pct(a, DAILY) for a in aprs]
    assert all(b > a for a, b in pairwise(apys))


def test_more_compounding_earns_more_and_approaches_the_continuous_limit() -> None:
    apys = [apr_to_apy_pct(5.0, n) for n in (1, 2, 4, 12, 52, 365, 8760)]
    assert all(b > a for a, b in pairwise(apys))
    assert apys[-1] < math.expm1(0.05) * 100
    assert apys[-1] == pytest.approx(math.expm1(0.05) * 100, rel=1e-5)


def test_a_negative_apr_loses_less_when_compounded() -> None:
    assert -10.0 < apr_to_apy_pct(-10.0, DAILY) < 0.0


@pytest.mark.parametrize("apr_pct", [math.nan, math.inf, -math.inf])
def test_rejects_a_non_finite_apr(apr_pct: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        apr_to_apy_pct(apr_pct)


@pytest.mark.parametrize("n", [0, -1, -365])
def test_rejects_fewer_than_one_period(n: int) -> None:
    with pytest.raises(ValueError, match="periods_per_year"):
        apr_to_apy_pct(3.0, n)


@pytest.mark.parametrize(("apr_pct", "n"), [(-100.0, 1), (-150.0, 1), (-36500.0, 365), (-1e6, 365)])
def test_rejects_an_apr_that_cannot_compound(apr_pct: float, n: int) -> None:
    with pytest.raises(ValueError, match="cannot compound"):
        apr_to_apy_pct(apr_pct, n)


def test_just_above_the_floor_still_compounds() -> None:
    assert apr_to_apy_pct(-99.999, 1) == pytest.approx(-99.999)


@pytest.mark.parametrize("apr_pct", [1e6, 1e300, 1.7e308])
def test_rejects_an_apr_whose_apy_overflows(apr_pct: float) -> None:
    with pytest.raises(ValueError, match="overflows"):
        apr_to_apy_pct(apr_pct, DAILY)
