"""Property tests of transforms.units: every conversion, against its definition.

Each property is the conversion's definition written another way (or its inverse),
checked on hypothesis-generated values, so that a factor of 100 (fraction vs
percent), 365 (per-day vs annual) or 8,760 (per-hour) cannot hide in one branch.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms.units import (
    DAILY,
    HOURLY,
    LAMPORTS_PER_SOL,
    RAY,
    WEI_PER_ETH,
    apr_to_apy_pct,
    apy_to_apr_pct,
    base_units,
    compact_time,
    exact,
    fraction_to_pct,
    frr_to_daily_rate,
    iso_time,
    ms_time,
    net_of_fee_pct,
    percent_string,
    period_rate_to_apr_pct,
    period_rate_to_apy_pct,
    scaled,
    to_float,
    unix_time,
)

APRS = st.floats(min_value=-90.0, max_value=2_000.0, allow_nan=False)
PERIODS = st.sampled_from([1, 2, 4, 12, 52, DAILY, HOURLY])
# Per-period rates as venues publish them: -0.1 % .. 1 % a day or an hour.
PERIOD_RATES = st.floats(min_value=-0.001, max_value=0.01, allow_nan=False)
FRACTIONS = st.floats(min_value=-1.0, max_value=10_000.0, allow_nan=False)
BIG = st.integers(min_value=0, max_value=10**40)
# hypothesis bounds are naive; the zone comes from ``timezones``.
MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@given(APRS, PERIODS)
def test_apy_to_apr_inverts_apr_to_apy(apr_pct: float, n: int) -> None:
    assert apy_to_apr_pct(apr_to_apy_pct(apr_pct, n), n) == pytest.approx(
        apr_pct, rel=1e-9, abs=1e-9
    )


@given(st.floats(min_value=0.0, max_value=500.0), PERIODS)
def test_compounding_never_pays_less_than_the_apr(apr_pct: float, n: int) -> None:
    apy = apr_to_apy_pct(apr_pct, n)
    assert apy >= apr_pct * (1 - 1e-12) - 1e-300  # (subnormal APRs round)
    # ... and never more than continuous compounding.
    assert apy <= math.expm1(apr_pct / 100) * 100 * (1 + 1e-12) + 1e-12


@given(PERIOD_RATES, PERIODS)
def test_a_period_rate_is_the_apr_divided_by_the_periods(rate: float, n: int) -> None:
    apr = period_rate_to_apr_pct(rate, n)
    assert apr == pytest.approx(rate * 100 * n, rel=1e-12, abs=1e-15)
    assert period_rate_to_apy_pct(rate, n) == pytest.approx(
        ((1 + rate) ** n - 1) * 100, rel=1e-7, abs=1e-9
    )


@given(st.floats(min_value=1e-6, max_value=0.01))
def test_a_daily_rate_is_365_times_smaller_than_its_apr_and_100_times_its_percent(
    rate: float,
) -> None:
    apr = period_rate_to_apr_pct(rate, DAILY)
    assert apr / fraction_to_pct(rate) == pytest.approx(365)
    assert apr / rate == pytest.approx(36_500)
    hourly = period_rate_to_apr_pct(rate, HOURLY)
    assert hourly / apr == pytest.approx(24)


@given(st.floats(min_value=0.0, max_value=1e-4))
def test_bitfinex_stats_frr_is_a_365th_of_the_daily_rate(frr: float) -> None:
    assert frr_to_daily_rate(frr) == pytest.approx(frr * 365)
    assert frr_to_daily_rate(frr) / 365 == pytest.approx(frr)


@given(FRACTIONS)
def test_fraction_to_percent_is_times_100(fraction: float) -> None:
    assert fraction_to_pct(fraction) == fraction * 100.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, True])
def test_a_rate_that_is_not_a_finite_number_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        fraction_to_pct(bad)
    with pytest.raises(ValueError, match="finite"):
        frr_to_daily_rate(bad)


@given(st.floats(min_value=-1e3, max_value=1e3), st.floats(min_value=0.0, max_value=0.99))
def test_a_fee_takes_its_share_of_the_interest(rate: float, share: float) -> None:
    net = net_of_fee_pct(rate, share)
    assert net == pytest.approx(rate * (1 - share))
    assert abs(net) <= abs(rate)


@pytest.mark.parametrize("share", [-0.1, 1.0, 15.0])
def test_a_fee_share_outside_0_1_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="fee share"):
        net_of_fee_pct(3.0, share)


@given(st.decimals(min_value=-1000, max_value=1000, places=4, allow_nan=False))
def test_percent_strings_read_back_as_the_percent(value: Decimal) -> None:
    assert percent_string(f"{value}%") == pytest.approx(float(value))
    assert percent_string(f" {value} % ") == pytest.approx(float(value))


@pytest.mark.parametrize("text", ["3", "0.03", "%", "3%%", "three%", "", "3 %5", None, 3.0])
def test_a_percent_without_its_sign_is_refused_not_guessed(text: object) -> None:
    with pytest.raises(ValueError, match="percent string"):
        percent_string(text)


@given(BIG)
def test_integers_and_digit_strings_are_exact_at_any_size(n: int) -> None:
    assert exact(n) == Decimal(n)
    assert exact(str(n)) == Decimal(n)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_float_is_taken_at_its_shortest_repr(value: float) -> None:
    assert exact(value) == Decimal(repr(value))
    assert float(exact(value)) == value


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-inf", "1e", "", " ", "0x10", True, None, []])
def test_exact_refuses_what_is_not_a_finite_number(bad: object) -> None:
    with pytest.raises(ValueError, match="number"):
        exact(bad)


@given(BIG, st.sampled_from([LAMPORTS_PER_SOL, WEI_PER_ETH, 6, RAY]))
def test_base_units_scale_without_loss(n: int, decimals: int) -> None:
    whole = base_units(n, decimals)
    with localcontext() as ctx:
        ctx.prec = 100
        assert whole.scaleb(decimals) == n
    assert base_units(str(n), decimals) == whole


def test_lamports_beyond_2_53_keep_their_last_digits() -> None:
    lamports = 15211604884230567  # Jito's recorded TVL of 2025-08-16: > 2**53, odd
    assert lamports > 2**53
    assert base_units(lamports, LAMPORTS_PER_SOL) == Decimal("15211604.884230567")
    # The float round trip this exists to prevent loses the last lamport:
    assert Decimal(float(lamports)) != lamports


@pytest.mark.parametrize("bad", [1.5, 1e18, "1.5", "-3", "12a", True])
def test_base_units_refuse_what_is_not_an_integer_amount(bad: object) -> None:
    with pytest.raises(ValueError, match=r"integer amount|number"):
        base_units(bad, LAMPORTS_PER_SOL)


@given(st.integers(min_value=0, max_value=10**36))
def test_1e18_scaled_decimals_and_their_decimal_form_agree(n: int) -> None:
    with localcontext() as ctx:
        ctx.prec = 100
        text = f"{Decimal(n).scaleb(-18):f}"  # "0.130197115720711261" for 130197115720711261
    assert scaled(n, 18) == exact(text)
    assert scaled(str(n), 18) == exact(text)


def test_to_float_rounds_once_and_refuses_what_does_not_fit() -> None:
    assert to_float(Decimal("15209213.875510266")) == 15209213.875510266
    with pytest.raises(ValueError, match="fit"):
        to_float(Decimal("1e400"))


@given(MOMENTS)
def test_seconds_milliseconds_iso_and_compact_times_agree(moment: datetime) -> None:
    ms = int(moment.timestamp() * 1000)
    at_ms = datetime.fromtimestamp(ms / 1000, UTC)
    assert ms_time(ms) == at_ms
    assert ms_time(str(ms)) == at_ms
    assert unix_time(ms / 1000) == at_ms
    assert iso_time(moment.isoformat()) == moment
    minute = moment.replace(second=0, microsecond=0)
    assert compact_time(minute.strftime("%Y%m%d%H%M")) == minute
    plus8 = timezone(timedelta(hours=8))
    assert compact_time(minute.strftime("%Y%m%d%H%M"), plus8) == minute - timedelta(hours=8)


@pytest.mark.parametrize("bad", ["202413010000", "20241017000", "2024101700000", "2024-10-17", 1])
def test_a_compact_time_that_is_no_time_is_none(bad: object) -> None:
    assert compact_time(bad) is None


@pytest.mark.parametrize("bad", [True, 1.5, "1.5", "", "-5", "12345678901234567", None])
def test_a_millisecond_time_that_is_no_time_is_none(bad: object) -> None:
    assert ms_time(bad) is None


def test_an_iso_time_without_a_zone_is_none() -> None:
    assert iso_time("2025-08-15T22:55:06") is None
    assert iso_time("2025-08-15T22:55:06Z") == datetime(2025, 8, 15, 22, 55, 6, tzinfo=UTC)
