"""latest_observations: each pool's newest row, kept right by every way rows change."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from msgspec.structs import replace

from sinks.lake import Store
from sinks.writer import LakeWriter
from tests.sinks import lido_observations
from yieldstream.contracts import Observation

T0 = datetime(2026, 3, 1, tzinfo=UTC)
KEPT = """
    SELECT source, pool_id, observed_at, first_observed_at, apy_pct, batch_id
    FROM latest_observations ORDER BY ALL
"""
# What the table must equal: the newest row of each pool, computed from the history.
COMPUTED = """
    SELECT source, pool_id, max(observed_at), min(observed_at),
           arg_max(apy_pct, observed_at), arg_max(batch_id, observed_at)
    FROM observations GROUP BY source, pool_id ORDER BY ALL
"""


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[LakeWriter]:
    w = LakeWriter(Store(tmp_path / "data"))
    try:
        yield w
    finally:
        w.close()


def at(hours: int, pools: int = 3, apy: float = 3.1, prefix: str = "p") -> list[Observation]:
    return [
        replace(o, apy_pct=apy)
        for o in lido_observations(prefix, pools, T0 + timedelta(hours=hours))
    ]


def latest(writer: LakeWriter) -> list[tuple[object, ...]]:
    return writer.con.execute(KEPT).fetchall()


def agrees(writer: LakeWriter) -> bool:
    """The kept rows are the history's newest; first_observed_at is at or before the
    pool's oldest row (a replay that drops old rows leaves it earlier: still a bound)."""
    kept, computed = latest(writer), writer.con.execute(COMPUTED).fetchall()
    return len(kept) == len(computed) and all(
        k[:3] == c[:3] and k[4:] == c[4:] and k[3] <= c[3]
        for k, c in zip(kept, computed, strict=True)
    )


def test_a_poll_moves_each_pool_to_its_newest_row(writer: LakeWriter) -> None:
    writer.store("b1", "lido", 3, at(0, apy=3.0), [])
    writer.store("b2", "lido", 3, at(1, apy=3.5), [])
    rows = latest(writer)
    assert [(r[1], r[2], r[3], r[4], r[5]) for r in rows] == [
        (f"p-{i}", T0 + timedelta(hours=1), T0, 3.5, "b2") for i in range(3)
    ]
    assert agrees(writer)
    # latest_yields reads it: one row per pool, the newest figure.
    view = writer.con.execute("SELECT pool_id, apy_pct FROM latest_yields ORDER BY 1").fetchall()
    assert view == [("p-0", 3.5), ("p-1", 3.5), ("p-2", 3.5)]


def test_backfilled_points_move_it_only_when_newer(writer: LakeWriter) -> None:
    writer.store("poll", "lido", 3, at(10, apy=4.0), [])
    older = at(2, apy=1.0) + at(3, apy=1.5)
    writer.store_history("old", "lido", None, older, [], [])
    assert [(r[2], r[3], r[4]) for r in latest(writer)] == [
        (T0 + timedelta(hours=10), T0 + timedelta(hours=2), 4.0)
    ] * 3
    writer.store_history("new", "lido", None, at(11, pools=1, apy=9.0), [], [])
    assert latest(writer)[0][2:5] == (T0 + timedelta(hours=11), T0 + timedelta(hours=2), 9.0)
    assert agrees(writer)


def test_a_commit_overlapping_stored_rows_adds_only_the_missing_ones(writer: LakeWriter) -> None:
    writer.store_history("first", "lido", None, at(0) + at(1) + at(2), [], [])
    # A resumed backfill sends the same range again, with one new hour in the middle
    # of it for one more pool, and a newer hour.
    again = at(0) + at(1) + at(1, pools=4)[3:] + at(2) + at(3)
    stored = writer.store_history("again", "lido", None, again, [], [])
    assert (stored.observations, stored.duplicates) == (4, 9)
    dupes = writer.con.execute(
        "SELECT count(*) FROM (SELECT 1 FROM observations GROUP BY source, pool_id, observed_at "
        "HAVING count(*) > 1)"
    ).fetchone()
    assert dupes == (0,)
    assert agrees(writer)


def test_a_replay_that_drops_a_pools_newest_row_recomputes_it(writer: LakeWriter) -> None:
    writer.store("b1", "lido", 3, at(0, apy=3.0), [])
    writer.store("b2", "lido", 3, at(1, apy=3.5), [])
    # The new outcome of b2 has only p-0, with a new figure: p-1 and p-2 fall back to b1.
    writer.replace([("b2", at(1, pools=1, apy=7.0), [])])
    rows = {r[1]: (r[2], r[4], r[5]) for r in latest(writer)}
    assert rows == {
        "p-0": (T0 + timedelta(hours=1), 7.0, "b2"),
        "p-1": (T0, 3.0, "b1"),
        "p-2": (T0, 3.0, "b1"),
    }
    assert agrees(writer)


def test_a_reconcile_that_changes_the_newest_row_replaces_it(writer: LakeWriter) -> None:
    writer.store("b1", "lido", 3, at(0, apy=3.0), [])
    writer.reconcile("r1", at(0, apy=5.0), [], [])
    assert [r[4] for r in latest(writer)] == [5.0, 5.0, 5.0]
    assert agrees(writer)


def test_any_sequence_of_commits_keeps_it_equal_to_the_history(writer: LakeWriter) -> None:
    rng = random.Random(7)
    batches: list[str] = []
    for step in range(25):
        rows = [
            replace(o, apy_pct=round(rng.uniform(0, 10), 2))
            for hour in rng.sample(range(48), rng.randint(1, 4))
            for o in at(hour, pools=rng.randint(1, 5))
        ]
        name = f"b{step}"
        action = rng.choice(["store", "history", "replace"]) if batches else "store"
        if action == "store":
            writer.store(name, "lido", len(rows), rows, [])
            batches.append(name)
        elif action == "history":
            writer.store_history(name, "lido", None, rows, [], [])
        else:
            writer.replace([(rng.choice(batches), rows[: rng.randint(0, len(rows))], [])])
        assert agrees(writer), step
