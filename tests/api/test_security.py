"""API keys, rate limits and CORS."""

from __future__ import annotations

from typing import Any

import httpx
from structlog.testing import capture_logs

KEYS = ["first-key-0123456789", "second-key-0123456789"]


async def test_keys_when_configured(make_client: Any) -> None:
    async with make_client(api_keys=KEYS) as client:
        with capture_logs() as logs:
            missing = await client.get("/v1/products")
            wrong = await client.get("/v1/products", headers={"X-API-Key": KEYS[0][:-1]})
            right = [await client.get("/v1/sources", headers={"X-API-Key": k}) for k in KEYS]
            health = await client.get("/healthz")
    assert missing.status_code == wrong.status_code == 401
    assert "X-API-Key" in missing.json()["detail"]
    assert [r.status_code for r in right] == [200, 200]
    assert health.status_code == 200  # operators' endpoints need no key
    assert not any(key in str(logs) for key in KEYS)


async def test_no_key_needed_by_default(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/sources")).status_code == 200


async def test_rate_limit_per_client(make_client: Any) -> None:
    async with make_client(rate_limit="3/minute", api_keys=KEYS) as client:
        first = [await client.get("/v1/sources", headers={"X-API-Key": KEYS[0]}) for _ in range(4)]
        other = await client.get("/v1/sources", headers={"X-API-Key": KEYS[1]})
        health = await client.get("/healthz")
    assert [r.status_code for r in first] == [200, 200, 200, 429]
    assert 1 <= int(first[-1].headers["Retry-After"]) <= 60
    assert "3 per 1 minute" in first[-1].json()["detail"]
    assert other.status_code == 200  # a budget per key
    assert health.status_code == 200  # not counted


async def test_rate_limit_by_address_without_keys(make_client: Any) -> None:
    async with make_client(rate_limit="2/minute") as client:
        codes = [(await client.get("/v1/sources")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    origin = {"Origin": "https://dashboard.example"}
    answer = await client.get("/v1/sources", headers=origin)
    preflight = await client.options(
        "/v1/sources", headers={**origin, "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in answer.headers
    assert "access-control-allow-origin" not in preflight.headers


async def test_cors_for_the_configured_origins(make_client: Any) -> None:
    async with make_client(cors_origins=["https://dashboard.example"]) as client:
        allowed = await client.get("/v1/sources", headers={"Origin": "https://dashboard.example"})
        preflight = await client.options(
            "/v1/products",
            headers={
                "Origin": "https://dashboard.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "X-API-Key",
            },
        )
        other = await client.get("/v1/sources", headers={"Origin": "https://elsewhere.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://dashboard.example"
    assert preflight.status_code == 200
    assert "GET" in preflight.headers["access-control-allow-methods"]
    assert "access-control-allow-origin" not in other.headers
