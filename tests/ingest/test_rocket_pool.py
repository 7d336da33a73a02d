"""Rocket Pool's collector: the real path, one record, retries on rate limits."""

from __future__ import annotations

import httpx
import pytest

from ingest import rocket_pool
from ingest._http import fetch_json
from tests.conftest import recorded
from tests.transforms import observe
from transforms import rocket_pool as transform
from yieldstream.contracts import RawRecord
from yieldstream.errors import BadResponse, UpstreamRejected, UpstreamUnavailable

BODY = recorded("rocket-pool", "apr-built-from-defillama-reth-row.json")
CFG = rocket_pool.Config(attempts=2, wait_initial_s=0, wait_max_s=0, deadline_s=2.0)
URL = "https://api.rocketpool.net/api/apr"


def script(*answers: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0)

    return httpx.MockTransport(handle), seen


def ok() -> httpx.Response:
    return httpx.Response(200, content=BODY, headers={"Content-Type": "application/json"})


async def collect(transport: httpx.MockTransport) -> list[RawRecord]:
    async with httpx.AsyncClient(transport=transport) as client:
        return [r async for r in rocket_pool.collect(client, CFG, "run-1")]


async def test_collect_requests_the_real_url_and_yields_one_record() -> None:
    transport, seen = script(ok())
    (record,) = await collect(transport)
    assert [str(r.url) for r in seen] == [URL]
    assert seen[0].method == "GET"
    assert (record.source, record.endpoint, record.native_id) == ("rocket-pool", "/api/apr", "#0")
    assert record.kind == "snapshot"
    assert record.problem is None
    obs = observe(transform.transform, record)
    assert obs.product_id == "rocket-pool:ethereum:reth"


async def test_a_rate_limit_answer_then_a_good_one_succeeds() -> None:
    transport, seen = script(httpx.Response(429, headers={"Retry-After": "0"}), ok())
    async with httpx.AsyncClient(transport=transport) as client:
        fetched = await fetch_json(client, URL, CFG, request=rocket_pool.ENDPOINTS[0].request)
    assert fetched.body == {"yearlyAPR": "2.34584"}
    assert len(seen) == 2


async def test_an_outage_is_retriable_and_gives_up_after_the_attempts() -> None:
    transport, seen = script(httpx.Response(503), httpx.Response(502))
    with pytest.raises(UpstreamUnavailable):
        await collect(transport)
    assert len(seen) == 2


async def test_a_client_error_is_fatal_at_once() -> None:
    transport, seen = script(httpx.Response(404, json={"message": "Not Found"}))
    with pytest.raises(UpstreamRejected):
        await collect(transport)
    assert len(seen) == 1


@pytest.mark.parametrize("content", [b'["2.34584"]', b'"2.34584"', b"<html>Cloudflare</html>", b""])
async def test_a_body_that_is_no_object_is_a_bad_response(content: bytes) -> None:
    answer = httpx.Response(200, content=content, headers={"Content-Type": "application/json"})
    transport, _ = script(answer)
    with pytest.raises(BadResponse):
        await collect(transport)
