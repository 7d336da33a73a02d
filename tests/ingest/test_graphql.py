"""GraphQL over the common fetch path: errors answered with 200, and bounded paging."""

from __future__ import annotations

import json

import httpx
import pytest

from ingest._graphql import body, check, skip_paging
from ingest._http import Request, SourceConfig, fetch_json
from ingest._records import Endpoint, collect_endpoints
from yieldstream.errors import BadResponse, UpstreamRejected, UpstreamUnavailable

QUERY = "query Q($first: Int, $skip: Int) { items(first: $first, skip: $skip) { items { id } } }"


class Config(SourceConfig):
    base_url: str = "https://api.example.org"


CFG = Config(attempts=2, wait_initial_s=0, wait_max_s=0, deadline_s=2.0)


def listing(page_size: int, max_pages: int) -> Endpoint:
    return Endpoint(
        "/graphql",
        items_at=("data", "items", "items"),
        method="POST",
        json=body(QUERY, {"first": page_size, "skip": 0}),
        check=check,
        next_page=skip_paging(page_size),
        max_pages=max_pages,
    )


def serving(total: int, seen: list[dict[str, object]]) -> httpx.MockTransport:
    """A GraphQL listing of ``total`` items, answering each page by its variables."""

    def handle(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        seen.append(sent["variables"])
        first, skip = sent["variables"]["first"], sent["variables"]["skip"]
        items = [{"id": f"m{i}"} for i in range(skip, min(total, skip + first))]
        return httpx.Response(200, json={"data": {"items": {"items": items}}})

    return httpx.MockTransport(handle)


async def collect(endpoint: Endpoint, transport: httpx.MockTransport) -> list[str]:
    out: list[str] = []
    async with httpx.AsyncClient(transport=transport) as client:
        async for record in collect_endpoints(client, CFG, "r", source="s", endpoints=[endpoint]):
            out.append(record.native_id)
    return out


async def test_pages_by_skip_until_a_page_is_short() -> None:
    seen: list[dict[str, object]] = []
    ids = await collect(listing(10, 5), serving(25, seen))
    assert ids == [f"m{i}" for i in range(25)]
    assert [v["skip"] for v in seen] == [0, 10, 20]
    assert all(v["first"] == 10 for v in seen)


async def test_a_listing_longer_than_max_pages_fails_and_keeps_what_it_read() -> None:
    seen: list[dict[str, object]] = []
    ids: list[str] = []

    async def drain() -> None:
        async with httpx.AsyncClient(transport=serving(100, seen)) as client:
            endpoints = [listing(10, 2)]
            async for record in collect_endpoints(
                client, CFG, "r", source="s", endpoints=endpoints
            ):
                ids.append(record.native_id)

    with pytest.raises(BadResponse, match=r"more pages after 2 \(max_pages\)"):
        await drain()
    assert len(seen) == 2
    assert len(ids) == 20  # the pages read are yielded before the fetch fails


def answer(*bodies: dict[str, object]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(bodies)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=queue.pop(0))

    return httpx.MockTransport(handle), seen


REQUEST = Request(method="POST", json=body(QUERY), check=check)
URL = "https://api.example.org/graphql"


async def test_errors_with_status_200_fail_the_fetch_with_the_message() -> None:
    errors = {
        "errors": [{"message": "Cannot query field 'nope'", "extensions": {"code": "BAD"}}],
        "data": None,
    }
    transport, seen = answer(errors)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(UpstreamRejected, match=r"Cannot query field 'nope' \(BAD\)"):
            await fetch_json(client, URL, CFG, request=REQUEST)
    assert len(seen) == 1  # a wrong query is not retried
    assert seen[0].method == "POST"


async def test_a_rate_limit_error_is_retried() -> None:
    limited = {"errors": [{"message": "Rate limit exceeded, try again later"}]}
    good = {"data": {"items": {"items": []}}}
    transport, seen = answer(limited, good)
    async with httpx.AsyncClient(transport=transport) as client:
        fetched = await fetch_json(client, URL, CFG, request=REQUEST)
    assert fetched.body == good
    assert len(seen) == 2


async def test_a_rate_limit_that_lasts_fails_as_unavailable() -> None:
    limited = {"errors": [{"message": "Too Many Requests"}]}
    transport, _ = answer(limited, limited)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(UpstreamUnavailable, match="Too Many Requests"):
            await fetch_json(client, URL, CFG, request=REQUEST)


@pytest.mark.parametrize("bad", [{"data": None}, {}, {"data": []}])
def test_a_response_without_data_is_a_bad_response(bad: dict[str, object]) -> None:
    with pytest.raises(BadResponse, match="holds no data"):
        check(bad, URL, b"")


def test_many_errors_are_summarised() -> None:
    many = {"errors": [{"message": f"e{i}"} for i in range(7)]}
    with pytest.raises(UpstreamRejected, match="e0; e1; e2; and 4 more"):
        check(many, URL, b"")
