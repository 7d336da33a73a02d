"""The fast reading of history bodies (ingest._timed) against the item-by-item path.

For every body it reads, it must give the records the item-by-item path gives (the
same ids, times and values; payloads as upstream wrote them); for every body it
cannot read surely, it must answer None so that the item-by-item path says why.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest._history import Window, fetch_history, history_records
from ingest._http import parse_json
from ingest._timed import timed_items
from ingest.defillama_yields import HISTORY, Config
from tests.conftest import recorded
from yieldstream.contracts import RawRecord
from yieldstream.items import MAX_DEPTH

CHART = recorded("defillama-yields", "chart-d829b642-from-cn-doc.json")
FETCHED = datetime(2026, 11, 25, 12, tzinfo=UTC)
ENDPOINT = "/chart/p"
read = timed_items(("data",), "timestamp")
ALL_TIME = Window()


def one_by_one(body: bytes, window: Window = ALL_TIME) -> list[RawRecord]:
    """What the item-by-item path makes of ``body``."""
    parsed, lenient = parse_json(body, "application/json", "u")
    return history_records(
        HISTORY.points(parsed, "p", "u", b""),
        source="defillama-yields",
        endpoint=ENDPOINT,
        fetched_at=FETCHED,
        run_id="r",
        lenient=lenient,
        window=window,
    )


def fast(body: bytes, window: Window = ALL_TIME) -> list[RawRecord] | None:
    timed = read(body)
    if timed is None:
        return None
    return timed.records(
        source="defillama-yields",
        endpoint=ENDPOINT,
        fetched_at=FETCHED,
        run_id="r",
        since=window.since,
        until=window.until,
    )


def same_records(a: list[RawRecord], b: list[RawRecord]) -> None:
    assert [r.native_id for r in a] == [r.native_id for r in b]
    assert [orjson.loads(r.payload) for r in a] == [orjson.loads(r.payload) for r in b]
    assert all(r.problem is None for r in a + b)


def test_the_recorded_chart_is_read_as_the_item_by_item_path_reads_it() -> None:
    records = fast(CHART)
    assert records is not None
    assert len(records) == 8
    same_records(records, one_by_one(CHART))
    # The payload is upstream's own text (the recorded file has spaces after ':').
    assert records[0].payload == (
        b'{"timestamp": "2025-05-14T23:01:10.331Z", "tvlUsd": 2292, "apy": 2624.11364, '
        b'"apyBase": 12.21444, "apyReward": 2611.8992, "il7d": null, "apyBase7d": null}'
    )


def point(stamp: object, **more: object) -> dict[str, object]:
    return {"timestamp": stamp, "tvlUsd": 1.0, "apy": 2.0, **more}


def chart(*points: object) -> bytes:
    return orjson.dumps({"status": "success", "data": list(points)})


@pytest.mark.parametrize(
    "body",
    [
        b'{"status": "error", "data": "busy"}',
        b'{"status": "success"}',
        b"[]",
        chart(1, 2),
        chart(point(1717200000)),  # a number names the point: the other path reads it
        chart(point(None)),
        chart({"tvlUsd": 1.0}),
        chart(point("")),
        chart(point("2024-06-01T00:00:00+00:00")),  # a time with its offset, not "Z"
        chart(point("2024-06-01 00:00:00Z")),
        chart(point("2024-02-30T00:00:00Z")),  # no such day
        chart(point("2024-06-01T00:00:00Z"), point("2024-06-01T00:00:00Z")),  # repeated
        b'{"data": [{"timestamp": "2024-06-01T00:00:00Z", "apy": NaN}]}',
        b'{"data": [{"timestamp": "2024-06-01T00:00:00Z", "apy": 1}',  # truncated
        b'{"data": [{"timestamp": "2024-06-01T00:00:00Z", "deep": '
        + b"[" * (MAX_DEPTH + 1)
        + b"]" * (MAX_DEPTH + 1)
        + b"}]}",
        b"<html>busy</html>",
    ],
)
def test_a_body_it_cannot_read_surely_is_left_to_the_item_by_item_path(body: bytes) -> None:
    assert read(body) is None


def test_an_empty_history_is_no_records() -> None:
    assert fast(chart()) == []


def plain_time(moment: datetime, digits: int) -> str:
    """``moment`` as a plain UTC time with ``digits`` fraction digits (0: none)."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return (text[:19] if digits == 0 else text[: 20 + digits]) + "Z"


PLAIN = st.builds(
    plain_time,
    # hypothesis takes naive bounds, and the zone apart
    st.datetimes(datetime(2020, 1, 1), datetime(2027, 1, 1), timezones=st.just(UTC)),  # noqa: DTZ001
    st.integers(0, 6),
)


@given(
    stamps=st.lists(PLAIN, max_size=40, unique=True),
    since=st.none() | st.datetimes(timezones=st.just(UTC)),
    span=st.none() | st.integers(0, 3000),
    values=st.floats(allow_nan=False, allow_infinity=False) | st.none(),
)
def test_windows_and_values_match_the_item_by_item_path(
    stamps: list[str], since: datetime | None, span: int | None, values: float | None
) -> None:
    until = None if since is None or span is None else since + timedelta(days=span)
    body = chart(*(point(s, apyBase=values) for s in stamps))
    window = Window(since, until)
    records = fast(body, window)
    assert records is not None
    same_records(records, one_by_one(body, window))


def test_a_backfill_fetch_reads_fast_and_falls_back_to_the_item_by_item_path() -> None:
    bodies = {
        "/chart/fast": CHART,
        # A repeated id: the other path keeps the first and rejects the second.
        "/chart/slow": chart(point("2024-06-01T00:00:00Z"), point("2024-06-01T00:00:00Z")),
    }

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=bodies[request.url.path])

    async def fetch(entity: str) -> list[RawRecord]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            return await fetch_history(
                client,
                Config(base_url="http://test", attempts=1),
                HISTORY,
                source="defillama-yields",
                entity=entity,
                run_id="r",
                window=Window(until=FETCHED),
            )

    fast_records = asyncio.run(fetch("fast"))
    assert [r.payload for r in fast_records] == [r.payload for r in fast(CHART) or []]
    slow = asyncio.run(fetch("slow"))
    assert [r.problem is None for r in slow] == [True, False]
    assert "duplicate id" in str(slow[1].problem)
