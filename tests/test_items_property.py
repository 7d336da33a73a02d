"""Property: every item of any /pools body ends as exactly one observation or rejection.

Bodies come from :func:`bench.fuzz_items.bodies` (valid pools and hostile items:
repeated ids, deep nesting, ids no stage can store, NaN, wrong types, missing
fields). Each example runs the real pipeline once (the real collector over
``httpx.MockTransport``, real transforms) into a fresh DuckLake store, and checks the
store and the run's summary against the number of items in the body.
``python -m bench.fuzz_items`` runs thousands more.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings

import yieldstream
from bench.fuzz_items import bodies, render
from yieldstream.app import run_pipeline
from yieldstream.settings import Settings

YIELDS = "defillama-yields"


def run_once(body: bytes, data_dir: Path) -> tuple[int, int, int]:
    """(items fetched, observation rows, rejection rows); the summary must agree."""

    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    settings_ = Settings(
        data_dir=data_dir,
        transform_processes=0,
        sources={YIELDS: {"base_url": "http://upstream.test", "attempts": 1}},
    )
    stats = asyncio.run(
        run_pipeline(
            settings_,
            once=True,
            only=[YIELDS],
            handle_signals=False,
            transport=httpx.MockTransport(serve),
        )
    )
    mine = stats.sources[YIELDS]
    assert mine.fetch_failures == 0, mine.error
    con = yieldstream.connect(data_dir)
    try:
        row = con.execute(
            """
            SELECT (SELECT count(*) FROM observations), (SELECT count(*) FROM rejections),
                   (SELECT count(DISTINCT raw_id) FROM rejections)
            """
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    rows, rejections, distinct = (int(v) for v in row)
    assert distinct == rejections
    assert (mine.stored, mine.rejected, mine.duplicates) == (rows, rejections, 0)
    return mine.fetched, rows, rejections


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(bodies())
def test_every_item_is_one_observation_or_one_rejection(items: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        fetched, rows, rejections = run_once(render(items, ""), Path(tmp) / "store")
    assert fetched == len(items)
    assert rows + rejections == len(items)
