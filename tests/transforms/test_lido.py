"""Lido stETH APR points -> staking observations, APR converted to APY (daily)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import FETCHED_AT, raw
from tests.transforms import body_of, observe, records_of, rejection
from transforms import lido
from transforms.units import apr_to_apy_pct
from yieldstream.contracts import RawRecord, Strategy, Venue

SOURCE = "lido"
LAST_TIME = 1773318119  # the /last point of the recorded 2026 responses
LAST_AT = datetime(2026, 3, 12, 12, 21, 59, tzinfo=UTC)


def point(text: str, *, fetched_at: datetime = FETCHED_AT) -> RawRecord:
    return raw(SOURCE, text.encode(), endpoint="/v1/protocol/steth/apr/last", fetched_at=fetched_at)


def daily_apy(apr_pct: float) -> float:
    """APR -> APY with daily compounding, written out independently."""
    return ((1 + apr_pct / 100 / 365) ** 365 - 1) * 100


def test_last_point_values() -> None:
    (rec,) = records_of(SOURCE, "apr-last-from-mcp-test.json")
    assert rec.native_id == str(LAST_TIME)
    obs = observe(lido.transform, rec)
    assert obs.observed_at == LAST_AT  # the point's own time, not the fetch hour
    assert obs.apy_pct == pytest.approx(2.4945221, abs=1e-7)  # 2.464 % APR, daily
    assert obs.apy_pct == pytest.approx(daily_apy(2.464), rel=1e-9)
    assert obs.apy_pct == apr_to_apy_pct(2.464, 365)
    assert obs.apy_base_pct == obs.apy_pct
    assert obs.apy_reward_pct == 0.0
    assert obs.tvl_usd is None
    assert (obs.source, obs.pool_id, obs.protocol) == ("lido", "steth", "lido")
    assert (obs.chain, obs.symbol) == ("Ethereum", "STETH")
    assert obs.strategy is Strategy.STAKING
    assert obs.venue is Venue.DEFI
    assert obs.category == "Liquid Staking"
    assert obs.underlying_tokens == ["0xae7ab96520DE3A18E5e111B5EaAb095312D7fE84"]


def test_every_sma_point_becomes_an_observation_at_its_own_time() -> None:
    aprs = body_of(SOURCE, "apr-sma-from-mcp-test.json")["data"]["aprs"]
    records = records_of(SOURCE, "apr-sma-from-mcp-test.json")
    assert len(records) == len(aprs) == 8
    for item, rec in zip(aprs, records, strict=True):
        obs = observe(lido.transform, rec)
        assert obs.observed_at == datetime.fromtimestamp(item["timeUnix"], UTC)
        assert obs.apy_pct == pytest.approx(daily_apy(item["apr"]), rel=1e-9)
        assert obs.apy_pct > item["apr"]  # compounding adds a little
    times = [observe(lido.transform, r).observed_at for r in records]
    assert times == sorted(times)
    assert len(set(times)) == 8


def test_last_point_and_newest_sma_point_are_one_observation() -> None:
    (last,) = records_of(SOURCE, "apr-last-from-mcp-test.json")
    newest = records_of(SOURCE, "apr-sma-from-mcp-test.json")[-1]
    assert last.endpoint != newest.endpoint
    assert observe(lido.transform, last) == observe(lido.transform, newest)


def test_docs_2023_last_point() -> None:
    (rec,) = records_of(SOURCE, "apr-last-lidodocs-2023.json")
    obs = observe(lido.transform, rec)
    assert obs.observed_at == datetime(2023, 4, 25, 12, 24, 35, tzinfo=UTC)
    assert obs.apy_pct == pytest.approx(daily_apy(4.77), rel=1e-9)
    assert obs.apy_pct == pytest.approx(4.8853, abs=1e-4)


def test_truncated_docs_sma_sample_still_parses_its_one_point() -> None:
    records = records_of(SOURCE, "apr-sma-lidodocs-2023-TRUNCATED.json")
    assert len(records) == 1
    obs = observe(lido.transform, records[0])
    assert obs.observed_at == datetime(2023, 4, 18, 12, 25, 35, tzinfo=UTC)
    assert obs.apy_pct == pytest.approx(daily_apy(4.86), rel=1e-9)


def test_observed_at_does_not_depend_on_the_fetch_time() -> None:
    text = f'{{"timeUnix": {LAST_TIME}, "apr": 2.464}}'
    early = observe(lido.transform, point(text, fetched_at=LAST_AT))
    late = observe(lido.transform, point(text, fetched_at=LAST_AT + timedelta(days=400)))
    assert early == late


def test_extra_fields_in_a_point_are_ignored() -> None:
    text = f'{{"timeUnix": {LAST_TIME}, "apr": 2.464, "smaApr": 2.38, "note": null}}'
    assert observe(lido.transform, point(text)).observed_at == LAST_AT


def test_a_negative_apr_is_a_loss_not_an_error() -> None:
    obs = observe(lido.transform, point(f'{{"timeUnix": {LAST_TIME}, "apr": -1.5}}'))
    assert obs.apy_pct == pytest.approx(daily_apy(-1.5), rel=1e-9)
    assert obs.apy_pct < 0


# --- bad points become rejections -------------------------------------------------


def _bad(**fields: Any) -> str:
    return json.dumps({"timeUnix": LAST_TIME, "apr": 2.464, **fields})


@pytest.mark.parametrize(
    ("text", "stage", "reason"),
    [
        (_bad(apr=float("nan")), "decode", "not a finite number: nan at `$.apr`"),
        (_bad(apr=float("inf")), "decode", "not a finite number: inf at `$.apr`"),
        (_bad(apr="2.464"), "decode", "Expected `float`, got `str` - at `$.apr`"),
        (_bad(apr=None), "decode", "Expected `float`, got `null` - at `$.apr`"),
        ('{"timeUnix": 1773318119}', "decode", "missing required field `apr`"),
        ('{"apr": 2.464}', "decode", "missing required field `timeUnix`"),
        # Times must be epoch seconds: an ISO string, even with an offset, is not one.
        (_bad(timeUnix="2026-03-12T14:21:59+02:00"), "decode", "got `str` - at `$.timeUnix`"),
        (_bad(timeUnix="1773318119"), "decode", "got `str` - at `$.timeUnix`"),
        (_bad(timeUnix=1773318119.5), "decode", "got `float` - at `$.timeUnix`"),
        ("[1773318119, 2.464]", "decode", "Expected `object`, got `array`"),
        # An APR that cannot compound daily, or whose APY is no number.
        (_bad(apr=-36500), "validate", "cannot compound 365 times a year"),
        (_bad(apr=-50000.0), "validate", "cannot compound 365 times a year"),
        (_bad(apr=1e6), "validate", "overflows"),
        (_bad(apr=1e300), "validate", "overflows"),
        # Compounds, but the APY is beyond the accepted range.
        (_bad(apr=1500.0), "validate", "<= 1000000.0 - at `$.apy_pct`"),
    ],
)
def test_bad_points_are_rejected_with_a_reason(text: str, stage: str, reason: str) -> None:
    rej = rejection(lido.transform, point(text))
    assert rej.stage == stage
    assert reason in rej.reason


@pytest.mark.parametrize(
    "time_unix",
    [
        0,  # the epoch: a missing value filled in
        -1,
        1_600_000_000,  # 2020-09, before stETH
        LAST_TIME * 1000,  # milliseconds sent as seconds
        LAST_TIME * 1_000_000,
        10**20,
        -(10**20),
        4_102_444_800,  # 2100
    ],
)
def test_absurd_times_are_rejected(time_unix: int) -> None:
    rej = rejection(lido.transform, point(_bad(timeUnix=time_unix)))
    assert rej.stage == "validate"
    assert "APR point" in rej.reason


def test_a_point_from_after_the_fetch_is_rejected_beyond_clock_skew() -> None:
    text = _bad()
    assert observe(lido.transform, point(text, fetched_at=LAST_AT)).observed_at == LAST_AT
    skewed = LAST_AT - lido.CLOCK_SKEW
    assert observe(lido.transform, point(text, fetched_at=skewed)).observed_at == LAST_AT
    rej = rejection(lido.transform, point(text, fetched_at=skewed - timedelta(seconds=1)))
    assert rej.stage == "validate"
    assert "2026-03-12T12:21:59+00:00 is not between stETH's launch" in rej.reason


def test_the_first_day_of_steth_is_accepted() -> None:
    launched = int(lido.LAUNCHED.timestamp())
    obs = observe(lido.transform, point(_bad(timeUnix=launched)))
    assert obs.observed_at == lido.LAUNCHED
    rejection(lido.transform, point(_bad(timeUnix=launched - 1)))
