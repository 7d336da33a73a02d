"""The store's door: read-only, deadlines per query, 503 when the store cannot answer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import anyio
import duckdb
import httpx
import pytest
from fastapi import Depends

from sinks.lake import Store
from yieldstream.api import create_app
from yieldstream.api.deps import get_readers
from yieldstream.api.store import Readers, StoreUnavailable
from yieldstream.settings import ApiSettings, Settings

SLOW = "SELECT count(*) FROM range(1000000000) AS a, range(1000) AS b"


async def test_a_slow_query_is_cut_off_and_the_others_answered(store_dir: Path) -> None:
    readers = Readers.over(Store(store_dir), size=2, timeout_s=1.0)
    app = create_app(Settings(data_dir=store_dir, api=ApiSettings()), readers)

    @app.get("/slow")
    async def slow(store: Annotated[Readers, Depends(get_readers)]) -> list[Any]:
        return (await store.fetch(SLOW)).rows

    answers: dict[str, tuple[int, float]] = {}
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            started = time.monotonic()

            async def get(name: str, path: str) -> None:
                answer = await client.get(path)
                answers[name] = (answer.status_code, time.monotonic() - started)
                if name == "slow":
                    assert "longer than 1 s" in answer.json()["detail"]

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(get, "slow", "/slow")
                await anyio.sleep(0.2)
                tasks.start_soon(get, "products", "/v1/products")
            again = await client.get("/v1/products")  # the interrupted connection serves on
    finally:
        readers.close()
    assert answers["slow"][0] == 503
    assert 1.0 <= answers["slow"][1] < 5.0
    assert answers["products"][0] == 200
    assert answers["products"][1] < answers["slow"][1]  # not queued behind it
    assert again.status_code == 200


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO alerts SELECT * FROM alerts",
        "DELETE FROM observations",
        "CREATE TABLE x (a INT)",
        "COPY (SELECT 1) TO '/tmp/yieldstream-api-test.csv'",
        "SET enable_external_access = true",
    ],
)
async def test_the_api_cannot_write(store_dir: Path, statement: str) -> None:
    readers = Readers.over(Store(store_dir), size=1, timeout_s=10)
    try:
        before = (await readers.fetch("SELECT count(*) FROM observations")).rows
        with pytest.raises(duckdb.Error):
            await readers.fetch(statement)
        after = (await readers.fetch("SELECT count(*) FROM observations")).rows
    finally:
        readers.close()
    assert before == after
    assert not await anyio.Path("/tmp/yieldstream-api-test.csv").exists()


async def test_no_endpoint_takes_a_write(client: httpx.AsyncClient) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        answer = await client.request(method, "/v1/products")
        assert answer.status_code == 405


async def test_no_store_is_503_and_the_process_stays_up(make_client: Any, tmp_path: Path) -> None:
    async with make_client(data_dir=tmp_path / "nothing-here") as client:
        products = await client.get("/v1/products")
        ready = await client.get("/readyz")
        health = await client.get("/healthz")
    assert products.status_code == 503
    assert products.json()["detail"].startswith("no store in ")
    assert products.headers["Retry-After"]
    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready"
    assert health.json() == {"status": "ok"}


async def test_store_unavailable_names_why(tmp_path: Path) -> None:
    readers = Readers.over(Store(tmp_path), size=1, timeout_s=1)
    with pytest.raises(StoreUnavailable, match="no store in"):
        await readers.fetch("SELECT 1")
