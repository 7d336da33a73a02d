"""Endpoints requested once per entity (chain, market): paths, names, and failures."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ingest._http import SourceConfig
from ingest._records import Endpoint, collect_endpoints, recorded_path
from yieldstream.errors import UpstreamRejected


class Config(SourceConfig):
    base_url: str = "https://api.example.org"
    chains: tuple[str, ...] = ("1", "56", "8453")


MARKETS = Endpoint("/core/v1/{entity}/markets/active", items_at=("markets",), entities="chains")
CFG = Config(attempts=1, wait_initial_s=0, wait_max_s=0, deadline_s=2.0)


def test_one_path_per_entity_and_back() -> None:
    assert MARKETS.paths(CFG) == [
        "/core/v1/1/markets/active",
        "/core/v1/56/markets/active",
        "/core/v1/8453/markets/active",
    ]
    assert MARKETS.concrete("a b/c") == "/core/v1/a%20b%2Fc/markets/active"
    assert MARKETS.entity_of("/core/v1/a%20b%2Fc/markets/active") == "a b/c"
    assert MARKETS.entity_of("/elsewhere") is None
    with pytest.raises(ValueError, match="cannot be a path segment"):
        MARKETS.concrete("..")


def test_a_recorded_response_names_its_entity_in_path_order() -> None:
    named = recorded_path([MARKETS], Path("56-markets-active-1market.json"))
    assert named == (MARKETS, "/core/v1/56/markets/active")
    # A name that stops before the entity names the template, not an entity.
    assert recorded_path([MARKETS], Path("markets-active-56.json")) == (MARKETS, MARKETS.path)
    # An entity alone names nothing: a path ending in one matches no file by itself.
    tail = Endpoint("/v1/getPools/all/{entity}", entities="chains")
    assert recorded_path([tail], Path("history-x.json")) is None
    assert recorded_path([tail], Path("all-ethereum-x.json")) == (tail, "/v1/getPools/all/ethereum")


async def test_an_entity_that_fails_does_not_stop_the_others() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if "/56/" in request.url.path:
            return httpx.Response(404, json={"error": "no such chain"})
        chain = request.url.path.split("/")[3]
        return httpx.Response(200, json={"markets": [{"id": f"{chain}-a"}, {"id": f"{chain}-b"}]})

    got: list[tuple[str, str]] = []

    async def drain() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            async for r in collect_endpoints(client, CFG, "r", source="s", endpoints=[MARKETS]):
                got.append((r.endpoint, r.native_id))

    with pytest.raises(UpstreamRejected, match=r"1 of the requests failed: /core/v1/56/markets"):
        await drain()
    assert got == [
        ("/core/v1/1/markets/active", "1-a"),
        ("/core/v1/1/markets/active", "1-b"),
        ("/core/v1/8453/markets/active", "8453-a"),
        ("/core/v1/8453/markets/active", "8453-b"),
    ]
