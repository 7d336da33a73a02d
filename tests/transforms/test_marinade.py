"""Marinade's mSOL APY (a fraction, already compounded) -> percent, checked by its prices."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ingest import marinade as collector
from ingest._history import history_records as records
from tests.conftest import FETCHED_AT, raw
from tests.transforms import body_of, observe, records_of, rejection
from transforms import CLOCK_SKEW, marinade
from transforms.units import SECONDS_PER_YEAR, growth_to_apy_pct
from yieldstream.contracts import RawRecord, Strategy, Venue

SOURCE = "marinade"
FIXTURE = "apy-7d-built-from-documented-shape.json"
END_AT = datetime(2025, 12, 12, 11, 43, 3, 402186, tzinfo=UTC)
BODY: dict[str, Any] = {
    "value": 0.06779999939348946,
    "end_time": "2025-12-12T11:43:03.402186Z",
    "end_price": 1.3566245285,
    "start_time": "2025-12-05T11:42:23.117904Z",
    "start_price": 1.3549187311,
}


def answer(text: str, *, fetched_at: datetime = FETCHED_AT) -> RawRecord:
    return raw(SOURCE, text.encode(), endpoint="/msol/apy/7d", fetched_at=fetched_at)


def _with(**fields: Any) -> str:
    return json.dumps({**BODY, **fields})


def test_the_fixture_is_the_body_tested_here() -> None:
    assert body_of(SOURCE, FIXTURE) == BODY


def test_pinned_documented_value() -> None:
    # value 0.0678 (the documented example, to 9 digits) is a fraction APY:
    # x 100 = 6.78 % APY, nothing more (no APR -> APY step: Marinade compounded it).
    # 0.0678 % (read as percent) and 678 % (x 100 twice) both fail here.
    (rec,) = records_of(SOURCE, FIXTURE)
    assert rec.native_id == "2025-12-12T11:43:03.402186Z"
    obs = observe(marinade.transform, rec)
    assert obs.apy_pct == pytest.approx(6.78, abs=1e-6)
    assert obs.apy_pct == BODY["value"] * 100
    assert obs.apy_base_pct == obs.apy_pct
    assert obs.apy_reward_pct == 0.0
    assert obs.tvl_usd is None


def test_value_agrees_with_its_prices() -> None:
    # (1.3566245285 / 1.3549187311) ** (365 d / 7.000466 d) - 1 = 0.0678 (Marinade's calc_apy)
    elapsed = (END_AT - datetime(2025, 12, 5, 11, 42, 23, 117904, tzinfo=UTC)).total_seconds()
    assert elapsed == pytest.approx(7 * 86400 + 40.284282)
    by_hand = (BODY["end_price"] / BODY["start_price"]) ** (365 * 86400 / elapsed) - 1
    assert by_hand == pytest.approx(BODY["value"], rel=1e-9)
    assert growth_to_apy_pct(BODY["start_price"], BODY["end_price"], elapsed) == pytest.approx(
        by_hand * 100, rel=1e-9
    )


def test_identity_matches_defillama() -> None:
    obs = observe(marinade.transform, records_of(SOURCE, FIXTURE)[0])
    assert obs.product_id == "marinade-liquid-staking:solana:msol"
    assert (obs.source, obs.pool_id, obs.protocol) == ("marinade", "msol", "marinade")
    assert (obs.chain, obs.symbol, obs.category) == ("Solana", "MSOL", "Liquid Staking")
    assert obs.strategy is Strategy.STAKING
    assert obs.venue is Venue.DEFI
    assert obs.strategy_guessed is False
    assert obs.underlying_tokens == ["mSoLzYCxHdYgdzU16g5QSh3i5K3z3KZK7ytfqcJm7So"]


def test_observed_at_is_end_time_not_the_fetch() -> None:
    early = observe(marinade.transform, answer(_with(), fetched_at=END_AT))
    late = observe(marinade.transform, answer(_with(), fetched_at=END_AT + timedelta(days=400)))
    assert early.observed_at == END_AT
    assert early == late  # idempotent: the same sample is the same observation


def test_nanosecond_and_offset_times_are_read_as_utc() -> None:
    text = _with(end_time="2025-12-12T12:43:03.402186999+01:00")
    assert observe(marinade.transform, answer(text)).observed_at == END_AT


def test_within_tolerance_is_accepted_beyond_is_rejected() -> None:
    observe(marinade.transform, answer(_with(value=BODY["value"] * 1.005)))  # 0.5 % off
    rej = rejection(marinade.transform, answer(_with(value=BODY["value"] * 1.02)))  # 2 % off
    assert "disagrees with its prices" in rej.reason
    assert "6.7800 %" in rej.reason  # what the prices give


@pytest.mark.parametrize(
    ("text", "stage", "reason"),
    [
        (_with(value="0.0678"), "decode", "Expected `float`, got `str` - at `$.value`"),
        (_with(value=None), "decode", "Expected `float`, got `null` - at `$.value`"),
        (_with(value=float("nan")), "decode", "not a finite number: nan at `$.value`"),
        (_with(end_price="1.35"), "decode", "Expected `float`, got `str` - at `$.end_price`"),
        (_with(end_time=1765539783), "decode", "Expected `str`, got `int` - at `$.end_time`"),
        ('{"value": 0.0678}', "decode", "missing required field `end_time`"),
        ("[0.0678]", "decode", "Expected `object`, got `array`"),
        # A percent sent as a fraction, and a 10x slip the prices give away.
        (_with(value=6.78), "validate", "no APY fraction of mSOL"),
        (_with(value=-1.0), "validate", "no APY fraction of mSOL"),
        (_with(value=0.678), "validate", "disagrees with its prices"),
        (_with(value=0.00678), "validate", "disagrees with its prices"),
        # Prices swapped: mSOL losing value while value says 6.78 %.
        (
            _with(start_price=BODY["end_price"], end_price=BODY["start_price"]),
            "validate",
            "disagrees with its prices",
        ),
        (_with(start_price=0.0), "validate", "start price must be a finite positive number"),
        (_with(end_price=-1.3), "validate", "end price must be a finite positive number"),
        (_with(end_time="2025-12-12T11:43:03"), "validate", "unreadable end_time"),
        (_with(start_time="yesterday"), "validate", "unreadable start_time"),
        (_with(end_time="2025-12-05T11:42:23.117904Z"), "validate", "does not run forwards"),
        (_with(start_time="2021-07-01T00:00:00Z"), "validate", "mSOL's launch (2021-08-01)"),
    ],
)
def test_bad_answers_are_rejected_with_a_reason(text: str, stage: str, reason: str) -> None:
    rej = rejection(marinade.transform, answer(text))
    assert rej.stage == stage
    assert reason in rej.reason


def test_an_end_time_after_the_fetch_is_rejected_beyond_clock_skew() -> None:
    skewed = END_AT - CLOCK_SKEW
    assert observe(marinade.transform, answer(_with(), fetched_at=skewed)).observed_at == END_AT
    rej = rejection(marinade.transform, answer(_with(), fetched_at=skewed - timedelta(seconds=1)))
    assert "does not run forwards" in rej.reason


# --- transforms.units.growth_to_apy_pct ----------------------------------------------


def test_growth_to_apy_compounds_over_a_365_day_year() -> None:
    assert SECONDS_PER_YEAR == 31_536_000
    assert growth_to_apy_pct(1.0, 1.01, SECONDS_PER_YEAR) == pytest.approx(1.0, rel=1e-12)
    assert growth_to_apy_pct(1.0, 1.01, SECONDS_PER_YEAR / 2) == pytest.approx(2.01, rel=1e-12)
    week = 7 * 86400
    assert growth_to_apy_pct(2.0, 2.002, week) == pytest.approx(
        (1.001 ** (365 / 7) - 1) * 100, rel=1e-12
    )
    assert growth_to_apy_pct(1.0, 0.99, SECONDS_PER_YEAR) == pytest.approx(-1.0, rel=1e-12)
    assert growth_to_apy_pct(1.3, 1.3, week) == 0.0


@pytest.mark.parametrize(
    ("start", "end", "elapsed", "reason"),
    [
        (0.0, 1.0, 86400.0, "start price"),
        (1.0, math.nan, 86400.0, "end price"),
        (1.0, math.inf, 86400.0, "end price"),
        (True, 1.0, 86400.0, "start price"),
        (1.0, 1.1, 0.0, "elapsed time must be positive"),
        (1.0, 1.1, -60.0, "elapsed time must be positive"),
        (1.0, 2.0, 1.0, "overflows"),  # doubling every second
    ],
)
def test_growth_to_apy_rejects_unusable_input(
    start: float, end: float, elapsed: float, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        growth_to_apy_pct(start, end, elapsed)


# --- a history response (/msol/apy/7d?time=2025-12-11T11:43:03Z) ------------------------

HISTORY_FIXTURE = "history-apy-7d-time-2025-12-11-built.json"


def history_records() -> list[RawRecord]:
    body = body_of(SOURCE, HISTORY_FIXTURE)
    points = list(collector.HISTORY.points(body, "7d", "test", b""))
    return list(
        records(
            points,
            source=SOURCE,
            endpoint=collector.HISTORY.endpoint("7d"),
            fetched_at=FETCHED_AT,
            run_id="test",
            lenient=False,
        )
    )


def test_a_history_point_is_the_observation_of_its_own_sample() -> None:
    (record,) = history_records()
    assert record.kind == "history"
    assert record.native_id == "2025-12-11T11:27:41.886021Z"
    obs = observe(marinade.transform, record)
    # 0.0683 (to 9 digits) x 100 = 6.83 % APY, dated at its end_time.
    assert obs.apy_pct == pytest.approx(6.83, abs=1e-6)
    assert obs.observed_at == datetime(2025, 12, 11, 11, 27, 41, 886021, tzinfo=UTC)
    # The same sample fetched as a snapshot is the same observation (one key).
    snapshot = answer(record.payload.decode())
    assert observe(marinade.transform, snapshot) == obs
