"""``yieldstream crosscheck``: the products whose sources disagree beyond a threshold."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sinks.lake import Store
from sinks.writer import LakeWriter
from tests.test_cli import yieldstream_cmd
from yieldstream.contracts import Observation, Strategy, Venue, make_observation
from yieldstream.disagreements import query

HOUR = datetime(2026, 11, 20, 10, tzinfo=UTC)


def figure(source: str, product: str, at: datetime, apy: float) -> Observation:
    return make_observation(
        {
            "source": source,
            "pool_id": f"{source}:{product}",
            "product_id": product,
            "observed_at": at,
            "protocol": product.split(":")[0],
            "chain": "Ethereum",
            "symbol": "X",
            "strategy": Strategy.STAKING,
            "venue": Venue.DEFI,
            "apy_pct": apy,
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Two products seen by two sources for three hours: one apart by 2 pp at worst."""
    writer = LakeWriter(Store(tmp_path / "store"), compact_every=None)
    rows = []
    for hour, (gap_a, gap_b) in enumerate([(0.1, 0.0), (2.0, 0.3), (0.6, 0.2)]):
        at = HOUR + timedelta(hours=hour, minutes=5)
        rows += [
            figure("first", "a:ethereum:x", at, 3.0),
            figure("second", "a:ethereum:x", at, 3.0 + gap_a),
            figure("first", "b:ethereum:x", at, 5.0),
            figure("second", "b:ethereum:x", at, 5.0 - gap_b),
        ]
    for row in rows:
        writer.store(None, row.source, 1, [row], [])
    writer.close()
    return tmp_path / "store"


def run(store: Path, *args: str) -> list[dict[str, object]]:
    result = yieldstream_cmd("-d", str(store), "crosscheck", "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_lists_only_products_over_the_threshold_with_worst_and_last_gap(store: Path) -> None:
    since = (HOUR - timedelta(days=1)).isoformat()
    (row,) = run(store, "--threshold", "0.5", "--since", since)
    assert row["product_id"] == "a:ethereum:x"
    assert row["worst_gap_pp"] == 2.0
    assert row["last_gap_pp"] == 0.6
    assert row["hours_over"] == 2  # 2.0 and 0.6 pass 0.5, 0.1 does not
    assert row["hours"] == 3
    assert row["last_apy_pct"] == "first 3.0, second 3.6"
    both = run(store, "--threshold", "0.25", "--since", since)
    assert [r["product_id"] for r in both] == ["a:ethereum:x", "b:ethereum:x"]


def test_the_window_starts_at_since(store: Path) -> None:
    assert run(store, "--since", (HOUR + timedelta(hours=2)).isoformat()) == [
        {
            "product_id": "a:ethereum:x",
            "last_hour": (HOUR + timedelta(hours=2)).isoformat().replace("+00:00", "+00"),
            "last_gap_pp": 0.6,
            "worst_gap_pp": 0.6,
            "hours_over": 1,
            "hours": 1,
            "last_apy_pct": "first 3.0, second 3.6",
        }
    ]
    # By default the last 7 days: these hours are older than that.
    assert run(store) == []


def test_bad_input_is_a_one_line_error(tmp_path: Path) -> None:
    missing = yieldstream_cmd("-d", str(tmp_path / "none"), "crosscheck")
    assert missing.returncode != 0
    assert "no store" in missing.stderr
    with pytest.raises(ValueError, match="threshold"):
        query(float("nan"), HOUR)
