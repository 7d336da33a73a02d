"""The ``pool_stats`` view against an independent Python implementation of DefiLlama's
derived fields (yield-server ``src/handlers/triggerEnrichment.js``,
``src/utils/welford.js``), on generated histories written into a real store."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import yieldstream
from sinks.lake import Store, _attach, _duckdb
from sinks.writer import LakeWriter
from yieldstream.contracts import Observation, make_observation

Key = tuple[str, str]
Stats = dict[Key, dict[str, Any]]
END = datetime(2026, 3, 20, 17, tzinfo=UTC)  # 12 days after the US changed its clocks
DAY, WINDOW = timedelta(days=1), timedelta(hours=3)
FIGURES = ("mu", "sigma", "apy_mean_30d", "apy_change_1d", "apy_change_7d", "apy_change_30d")
FIGURES += ("tvl_change_1d_pct", "tvl_change_7d_pct", "tvl_change_30d_pct", "apy_pct", "tvl_usd")


@dataclass(frozen=True, slots=True)
class Point:
    at: datetime
    apy: float | None
    tvl: float | None


def observation(
    source: str, pool_id: str, at: datetime, apy: float | None, tvl: float | None = 1e6
) -> Observation:
    return make_observation(
        {
            "source": source,
            "pool_id": pool_id,
            "observed_at": at,
            "protocol": "aave-v3",
            "chain": "Ethereum",
            "symbol": "USDC",
            "strategy": "lending",
            "venue": "defi",
            "apy_pct": apy,
            "tvl_usd": tvl,
            "product_id": f"aave-v3:ethereum:{pool_id}",
        }
    )


# --------------------------------------------------------------------------- #
# The reference: plain Python, one pool at a time
# --------------------------------------------------------------------------- #


def ss_quantile(values: Sequence[float], p: float) -> float:
    """simple-statistics' ``quantile`` (src/quantile_sorted.js), which DefiLlama calls."""
    x = sorted(values)
    idx = len(x) * p
    if idx % 1:
        return x[math.ceil(idx) - 1]
    if len(x) % 2 == 0:
        return (x[int(idx) - 1] + x[int(idx)]) / 2
    return x[int(idx)]


def _nearest(points: Sequence[Point], target: datetime, field: str) -> float | None:
    near = [
        (abs(p.at - target), p.at, value)
        for p in points
        if (value := getattr(p, field)) is not None and abs(p.at - target) <= WINDOW
    ]
    return min(near)[2] if near else None


def _pool(points: Sequence[Point]) -> dict[str, Any]:
    last = max(points, key=lambda p: p.at)
    daily: dict[Any, Point] = {}
    for p in sorted(points, key=lambda p: p.at):
        if p.apy is not None:
            daily[p.at.date()] = p  # the last APY of each UTC day
    # welford.js: count, mean and M2 of the daily returns, and the product of (1 + r)
    count, mean, m2, product = 0, 0.0, 0.0, 1.0
    for p in daily.values():
        assert p.apy is not None
        r = (1 + p.apy / 100) ** (1 / 365) - 1
        count += 1
        delta = r - mean
        mean += delta / count
        m2 += delta * (r - mean)
        product *= 1 + r
    recent = [p.apy for p in points if p.apy is not None and p.at >= last.at - 30 * DAY]
    row: dict[str, Any] = {
        "last_observed_at": last.at,
        "apy_pct": last.apy,
        "tvl_usd": last.tvl,
        "count": count,
        "mu": (product ** (365 / count) - 1) * 100 if count else None,
        "sigma": (0.0 if count < 2 else math.sqrt(m2 / (count - 1) * 365) * 100) if count else None,
        "apy_mean_30d": sum(recent) / len(recent) if recent else None,
    }
    for days in (1, 7, 30):
        apy = _nearest(points, last.at - days * DAY, "apy")
        tvl = _nearest(points, last.at - days * DAY, "tvl")
        row[f"apy_change_{days}d"] = None if last.apy is None or apy is None else last.apy - apy
        row[f"tvl_change_{days}d_pct"] = (
            None if last.tvl is None or not tvl else 100 * (last.tvl - tvl) / tvl
        )
    return row


def reference(observations: Iterable[Observation]) -> Stats:
    """pool_stats recomputed: every pool on its own, then the outlier bounds over all."""
    pools: dict[Key, list[Point]] = defaultdict(list)
    for o in observations:
        if o.level == "product":
            pools[o.source, o.pool_id].append(Point(o.observed_at, o.apy_pct, o.tvl_usd))
    stats = {key: _pool(points) for key, points in pools.items()}
    bounds = {}
    for column in ("mu", "sigma"):
        x = [
            s[column] for s in stats.values() if s[column] is not None and math.isfinite(s[column])
        ]
        iqr = ss_quantile(x, 0.75) - ss_quantile(x, 0.25)
        median = ss_quantile(x, 0.5)
        bounds[column] = (max(0.0, median - 1.5 * iqr), median + 1.5 * iqr)
    for s in stats.values():
        s["outlier"] = s["count"] > 0 and any(
            not lo <= s[column] <= hi for column, (lo, hi) in bounds.items()
        )
    return stats


# --------------------------------------------------------------------------- #
# The store
# --------------------------------------------------------------------------- #


@pytest.fixture
def pool_stats(tmp_path: Path) -> Callable[..., Stats]:
    """Write observations into a new store; the rows of ``pool_stats`` by (source, pool)."""
    made = 0

    def run(observations: Sequence[Observation]) -> Stats:
        nonlocal made
        made += 1
        data_dir = tmp_path / f"store-{made}"
        writer = LakeWriter(Store(data_dir))
        try:
            writer.store(None, "test", len(observations), observations, [])
        finally:
            writer.close()
        return read(data_dir)

    return run


def read(data_dir: Path, time_zone: str = "UTC") -> Stats:
    """The rows of ``pool_stats``: through ``yieldstream.connect``, or in another
    session time zone (a reader's settings are locked: an unlocked connection)."""
    if time_zone == "UTC":
        con = yieldstream.connect(data_dir)
    else:
        con = _attach(_duckdb(Store(data_dir)), Store(data_dir), read_only=True)
        con.execute(f"SET TimeZone = '{time_zone}'")
    try:
        result = con.execute("FROM pool_stats")
        names = [d[0] for d in result.description]
        rows = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    finally:
        con.close()
    return {(r.pop("source"), r.pop("pool_id")): r for r in rows}


def assert_same(got: Stats, expected: Stats) -> None:
    assert sorted(got) == sorted(expected)
    for key, want in expected.items():
        row = got[key]
        assert row["product_id"] == f"aave-v3:ethereum:{key[1]}", key
        for column in ("count", "outlier", "last_observed_at"):
            assert row[column] == want[column], (key, column)
        for column in FIGURES:
            if want[column] is None:
                assert row[column] is None, (key, column, row[column])
            else:
                assert row[column] == pytest.approx(want[column], rel=1e-9, abs=1e-9), (
                    key,
                    column,
                )


# --------------------------------------------------------------------------- #
# Generated histories
# --------------------------------------------------------------------------- #


def _walk(rng: random.Random, times: Iterable[datetime], apy: float, spread: float) -> list[Point]:
    points = []
    tvl = rng.uniform(1e4, 1e8)
    for at in times:
        apy = max(-99.0, apy + rng.gauss(0, spread))
        tvl = 0.0 if rng.random() < 0.02 else max(1.0, tvl) * rng.lognormvariate(0, 0.05)
        figures = [round(apy, 5), tvl]
        if rng.random() < 0.1:
            figures[rng.random() > 0.7] = None  # the APY (or the TVL) missing, never both
        points.append(Point(at, *figures))
    return points


def history(rng: random.Random) -> list[Observation]:
    """Two sources sharing pool ids: hourly, irregular, near-zero, short, huge APYs."""
    observations = []
    for source in ("alpha", "beta"):
        for n in range(12):
            end = END - timedelta(hours=rng.randrange(0, 30), minutes=rng.choice((0, 17)))
            kind = n % 5
            if kind in (0, 2):  # hourly, some hours missing, a gap of days
                length = 40 if kind == 0 else 20
                gap = rng.randrange(3, length)
                times = [
                    end - timedelta(hours=h)
                    for h in range(length * 24)
                    if rng.random() > 0.1 and not gap * 24 <= h < gap * 24 + 72
                ]
            elif kind in (1, 4):  # irregular: 5 minutes to 9 hours apart
                times, at = [], end
                while at > end - timedelta(days=35 if kind == 1 else 60):
                    times.append(at)
                    at -= timedelta(seconds=rng.randrange(300, 9 * 3600), microseconds=17)
            else:  # a few hours of one UTC day: count 1
                hours = rng.sample(range(end.hour + 1), min(3, end.hour + 1))
                times = [end.replace(hour=h) for h in sorted(hours)]
            apy, spread = {0: (5, 0.2), 1: (8, 1), 2: (0, 2), 3: (3, 1), 4: (3000, 300)}[kind]
            for p in _walk(rng, times, apy, spread):
                observations.append(observation(source, f"pool-{n}", p.at, p.apy, p.tvl))
    # Edge cases: no APY at all; an APY of -100 %; exactly 0 %; rows that are not products.
    observations += [observation("alpha", "no-apy", END - h * WINDOW, None) for h in range(9)]
    observations += [observation("beta", "wiped", END - h * DAY, -100.0) for h in range(3)]
    observations += [observation("beta", "zero", END - h * DAY, 0.0) for h in range(3)]
    observations += [
        make_observation(
            {
                "source": "alpha",
                "pool_id": "aave-v3",
                "observed_at": END,
                "protocol": "aave-v3",
                "chain": "Ethereum",
                "symbol": "",
                "strategy": "lending",
                "venue": "defi",
                "tvl_usd": 1e9,
                "level": "protocol",
            }
        )
    ]
    return observations


@pytest.mark.parametrize("seed", [1, 2])
def test_pool_stats_match_an_independent_implementation(
    seed: int, pool_stats: Callable[..., Stats], tmp_path: Path
) -> None:
    observations = history(random.Random(seed))
    expected = reference(observations)
    assert ("alpha", "aave-v3") not in expected  # the protocol total is no product
    got = pool_stats(observations)
    assert_same(got, expected)
    # The generated history does reach the cases it is meant to reach.
    assert {s["count"] for s in expected.values()} >= {0, 1}
    assert sum(s["outlier"] for s in expected.values()) >= 1
    assert sum(s["apy_change_1d"] is None for s in expected.values()) >= 3
    assert sum(s["apy_change_30d"] is not None for s in expected.values()) >= 5
    assert expected["beta", "wiped"]["mu"] == pytest.approx(-100)
    # Days are 24 h and days UTC days in any session time zone (the data spans the
    # US clock change of 2026-03-08).
    assert_same(read(tmp_path / "store-1", "America/New_York"), expected)


def test_a_change_takes_the_nearest_observation_within_3_hours(
    pool_stats: Callable[..., Stats],
) -> None:
    rows = [
        ("near", END - DAY - timedelta(minutes=150), 7.0, 90.0),
        ("near", END - DAY, None, 50.0),  # nearest for the TVL, no APY
        ("near", END - DAY + 2 * timedelta(hours=1), 4.0, 100.0),
        ("far", END - DAY - timedelta(hours=4), 4.0, 100.0),
        ("far", END - DAY + timedelta(hours=4), 4.0, 100.0),
        ("far", END - 7 * DAY + WINDOW, 1.0, 400.0),  # the bound itself counts
        ("far", END - 30 * DAY - WINDOW - timedelta(seconds=1), 1.0, 400.0),
        ("tie", END - DAY - timedelta(hours=1), 2.0, 100.0),
        ("tie", END - DAY + timedelta(hours=1), 3.0, 100.0),
    ]
    observations = [observation("s", pool, at, apy, tvl) for pool, at, apy, tvl in rows]
    observations += [observation("s", pool, END, 10.0, 200.0) for pool in ("near", "far", "tie")]
    got = pool_stats(observations)
    assert got["s", "near"]["apy_change_1d"] == pytest.approx(6.0)
    assert got["s", "near"]["tvl_change_1d_pct"] == pytest.approx(300.0)
    assert got["s", "far"]["apy_change_1d"] is None
    assert got["s", "far"]["tvl_change_1d_pct"] is None
    assert got["s", "far"]["apy_change_7d"] == pytest.approx(9.0)
    assert got["s", "far"]["tvl_change_7d_pct"] == pytest.approx(-50.0)
    assert got["s", "far"]["apy_change_30d"] is None
    assert got["s", "tie"]["apy_change_1d"] == pytest.approx(8.0)  # the earlier of two
    assert_same(got, reference(observations))


@pytest.mark.parametrize(
    ("apys", "outliers"),
    [
        # Twelve ordinary pools and one extreme one.
        ([4.0, 4.5, 5.0, 5.2, 5.5, 4.8, 4.1, 5.9, 5.1, 4.9, 5.3, 4.4, 500.0], {12}),
        # median 3.5, IQR 5 - 2 (simple-statistics' quartiles): bounds [0, 8]. DuckDB's
        # interpolating quartiles (2.25, 4.75) would give [0, 7.25] and flag 7.5.
        ([1.0, 2.0, 3.0, 4.0, 5.0, 7.5], set()),
        ([1.0, 2.0, 3.0, 4.0, 5.0, 8.5], {5}),
        # The lower bound is max(0, median - 1.5 IQR): a negative mu is an outlier.
        ([-0.5, 2.0, 3.0, 4.0, 5.0, 6.0], {0}),
    ],
)
def test_outliers_are_outside_the_median_plus_minus_1_5_iqr(
    apys: list[float], outliers: set[int], pool_stats: Callable[..., Stats]
) -> None:
    # One day each: mu is the APY itself, sigma 0 (bounds [0, 0], never outside).
    got = pool_stats([observation("s", f"p{i:02}", END, apy) for i, apy in enumerate(apys)])
    assert {i for i in range(len(apys)) if got["s", f"p{i:02}"]["outlier"]} == outliers
    for i, apy in enumerate(apys):
        assert got["s", f"p{i:02}"]["mu"] == pytest.approx(apy, rel=1e-9)
        assert got["s", f"p{i:02}"]["sigma"] == 0


def test_mu_and_sigma_at_the_edges(pool_stats: Callable[..., Stats]) -> None:
    rows = [
        ("one-day", END - timedelta(hours=5), 50.0),  # the day's last APY is its sample
        ("one-day", END, 0.0),
        ("two-days", END - DAY, 0.0),
        ("two-days", END, 21.0),
        ("negative", END - 2 * DAY, -99.99),
        ("negative", END - DAY, -99.99),
        ("negative", END, -99.99),
        ("gone", END - DAY, 5.0),
        ("gone", END, -100.0),
        ("none", END, None),
    ]
    got = pool_stats([observation("s", pool, at, apy) for pool, at, apy in rows])
    assert (got["s", "one-day"]["count"], got["s", "one-day"]["sigma"]) == (1, 0)
    assert got["s", "one-day"]["mu"] == pytest.approx(0, abs=1e-12)
    # Two days of 0 % and 21 %: the geometric mean, sqrt(1.21) - 1 = 10 %.
    two = got["s", "two-days"]
    r = 1.21 ** (1 / 365) - 1
    assert (two["count"], two["mu"]) == (2, pytest.approx(10.0))
    assert two["sigma"] == pytest.approx(math.sqrt(r * r / 2 * 365) * 100)
    assert got["s", "negative"]["mu"] == pytest.approx(-99.99)
    assert got["s", "negative"]["sigma"] == pytest.approx(0, abs=1e-9)
    assert got["s", "gone"]["mu"] == pytest.approx(-100)
    assert math.isfinite(got["s", "gone"]["sigma"])
    none = got["s", "none"]
    assert (none["count"], none["mu"], none["sigma"], none["outlier"]) == (0, None, None, False)
