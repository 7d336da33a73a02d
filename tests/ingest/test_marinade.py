"""Marinade's collector and its history: the real paths, retries, ``time`` paging."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ingest import marinade
from ingest._history import Window, fetch_history
from ingest._http import fetch_json
from tests.conftest import recorded
from tests.transforms import observe
from transforms import marinade as transform
from yieldstream.contracts import RawRecord
from yieldstream.errors import UpstreamRejected, UpstreamUnavailable

BODY = recorded("marinade", "apy-7d-built-from-documented-shape.json")
CFG = marinade.Config(attempts=2, wait_initial_s=0, wait_max_s=0, deadline_s=2.0)
URL = "https://api.marinade.finance/msol/apy/7d"
GROWTH_PER_WEEK = 1.0012597  # about 6.8 % a year


def json_response(content: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=content, headers={"Content-Type": "application/json"})


def script(*answers: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0)

    return httpx.MockTransport(handle), seen


async def collect(transport: httpx.MockTransport) -> list[RawRecord]:
    async with httpx.AsyncClient(transport=transport) as client:
        return [r async for r in marinade.collect(client, CFG, "run-1")]


async def test_collect_requests_the_real_url_and_yields_one_record() -> None:
    transport, seen = script(json_response(BODY))
    (record,) = await collect(transport)
    assert [str(r.url) for r in seen] == [URL]
    assert (record.source, record.endpoint) == ("marinade", "/msol/apy/7d")
    assert record.native_id == "2025-12-12T11:43:03.402186Z"  # its end_time
    assert record.kind == "snapshot"
    assert observe(transform.transform, record).apy_pct == pytest.approx(6.78, abs=1e-6)


async def test_a_rate_limit_answer_then_a_good_one_succeeds() -> None:
    transport, seen = script(httpx.Response(429, headers={"Retry-After": "0"}), json_response(BODY))
    async with httpx.AsyncClient(transport=transport) as client:
        fetched = await fetch_json(client, URL, CFG, request=marinade.ENDPOINTS[0].request)
    assert fetched.body["value"] == pytest.approx(0.0678, abs=1e-9)
    assert len(seen) == 2


async def test_an_outage_is_retriable_a_client_error_fatal() -> None:
    transport, seen = script(httpx.Response(500, text="Not enough data"), httpx.Response(500))
    with pytest.raises(UpstreamUnavailable):
        await collect(transport)
    assert len(seen) == 2
    transport, seen = script(httpx.Response(404, text="duration parsing error"))
    with pytest.raises(UpstreamRejected):
        await collect(transport)
    assert len(seen) == 1


# --- history: /msol/apy/7d?time=<RFC 3339>, one day back per request -------------------


def sample_before(time: str) -> bytes:
    """What Marinade answers for ``time``: the 7-day window of the last sample before it."""
    end = datetime.fromisoformat(time) - timedelta(minutes=17)
    start = end - timedelta(days=7, seconds=30)
    elapsed = (end - start).total_seconds()
    start_price = 1.35
    end_price = start_price * GROWTH_PER_WEEK ** (elapsed / (7 * 86400))
    return json.dumps(
        {
            "value": (end_price / start_price) ** (365 * 86400 / elapsed) - 1,
            "end_time": end.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "end_price": end_price,
            "start_time": start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "start_price": start_price,
        }
    ).encode()


class Marinade:
    """A Marinade API that honours ``time`` (or, ``ignores_time``, always answers the latest)."""

    def __init__(self, *, ignores_time: bool = False) -> None:
        self.requests: list[httpx.Request] = []
        self.ignores_time = ignores_time

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        time = request.url.params.get("time")
        if time is None or self.ignores_time:
            return json_response(BODY)
        return json_response(sample_before(time))


async def history(api: Marinade, window: Window) -> list[RawRecord]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as client:
        return await fetch_history(
            client,
            CFG,
            marinade.HISTORY,
            source="marinade",
            entity="7d",
            run_id="run-1",
            window=window,
        )


async def test_history_walks_back_one_day_per_request_within_the_window() -> None:
    api = Marinade()
    window = Window(
        since=datetime(2025, 12, 9, tzinfo=UTC), until=datetime(2025, 12, 12, 12, tzinfo=UTC)
    )
    records = await history(api, window)
    assert {r.url.path for r in api.requests} == {"/msol/apy/7d"}
    assert [r.url.params.get("time") for r in api.requests] == [
        "2025-12-12T12:00:00Z",
        "2025-12-11T11:43:00Z",
        "2025-12-10T11:26:00Z",
        "2025-12-09T11:09:00Z",
    ]
    step = timedelta(days=1, minutes=17)  # a day back, and the sample 17 minutes before
    ends = [datetime(2025, 12, 12, 11, 43, tzinfo=UTC) - k * step for k in range(4)]
    assert [r.native_id for r in records] == [e.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for e in ends]
    assert {(r.kind, r.endpoint, r.source) for r in records} == {
        ("history", "/msol/apy/7d", "marinade")
    }
    for record, end in zip(records, ends, strict=True):
        obs = observe(transform.transform, record)
        assert obs.observed_at == end
        assert obs.apy_pct == pytest.approx((GROWTH_PER_WEEK ** (365 / 7) - 1) * 100, rel=1e-6)
        assert observe(transform.transform, record) == obs  # idempotent


async def test_history_without_an_end_starts_from_the_latest_point() -> None:
    api = Marinade()
    window = Window(since=datetime(2025, 12, 11, tzinfo=UTC))
    records = await history(api, window)
    assert "time" not in api.requests[0].url.params
    assert api.requests[1].url.params["time"] == "2025-12-11T11:43:03Z"
    assert records[0].payload == json.dumps(json.loads(BODY), separators=(",", ":")).encode()
    assert len(records) == len(api.requests) == 2  # the next step (12-10) is before it


async def test_an_api_that_ignores_time_gives_one_point_once() -> None:
    api = Marinade(ignores_time=True)
    records = await history(api, Window(since=datetime(2025, 1, 1, tzinfo=UTC)))
    assert len(records) == 1
    assert len(api.requests) == 2  # the second page repeats the first: done


def test_history_pages_are_bounded() -> None:
    assert marinade.HISTORY.max_pages == marinade.MAX_DAYS
    assert marinade.HISTORY.entities == ("7d",)
    assert marinade.HISTORY.endpoint("7d") == marinade.ENDPOINTS[0].path
