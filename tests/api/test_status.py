"""``/v1/sources``, ``/healthz``, ``/readyz``, ``/metrics`` and the OpenAPI docs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from yieldstream.registry import sources as registered

Query = Callable[[str], list[tuple[Any, ...]]]


async def test_sources_say_what_the_store_saw(client: httpx.AsyncClient, everything: Query) -> None:
    items = (await client.get("/v1/sources")).json()["items"]
    assert [i["source"] for i in items] == list(registered())
    stored = dict(everything("SELECT source, count(*) FROM observations GROUP BY source"))
    okx = next(i for i in items if i["source"] == "okx")
    assert okx["rows_stored"] == stored["okx"]
    assert okx["last_ok"] is True
    assert okx["last_success"] == okx["last_fetch"]
    assert okx["consecutive_failures"] == 0
    assert all(i["fresh"] for i in items)
    as_csv = await client.get("/v1/sources", params={"format": "csv"})
    assert as_csv.text.splitlines()[0].startswith("source,enabled,interval_s,last_fetch")
    assert len(as_csv.text.splitlines()) == len(items) + 1


async def test_ready_when_sources_are_fresh(client: httpx.AsyncClient) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_not_ready_when_sources_are_stale(make_client: Any) -> None:
    async with make_client(alerts={"stale_after_h": 1e-9}) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["store"] == "readable"
    assert set(body["stale_sources"]) == set(registered())


async def test_metrics_count_requests_by_route(client: httpx.AsyncClient) -> None:
    await client.get("/v1/products/lido:steth/history")
    await client.get("/v1/products/no:such/history")
    text = (await client.get("/metrics")).text
    route = 'route="/v1/products/{product:path}/history"'
    assert f'yieldstream_api_requests_total{{method="GET",{route},status="200"}}' in text
    assert f'yieldstream_api_requests_total{{method="GET",{route},status="404"}}' in text
    assert "yieldstream_api_request_seconds_bucket" in text
    assert "no:such" not in text  # the template, never the path asked for


async def test_openapi_docs_describe_every_endpoint(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert set(schema["paths"]) >= {
        "/v1/products",
        "/v1/products/{product}/history",
        "/v1/real-yields",
        "/v1/compare",
        "/v1/alerts",
        "/v1/protocols/{slug}/tvl",
        "/v1/sources",
        "/healthz",
        "/readyz",
    }
    product = schema["components"]["schemas"]["Product"]["properties"]
    assert {"apy_pct", "tvl_usd", "apy_base_pct"} <= set(product)
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
