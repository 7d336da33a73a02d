"""``GET /v1/products/{id}/history``: the last observation of each hour or day."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.api.conftest import HOURS, PRODUCT, START


def url(product: str = PRODUCT) -> str:
    return f"/v1/products/{quote(product, safe='')}/history"


async def test_hourly_points_are_each_hours_last_observation(client: httpx.AsyncClient) -> None:
    answer = await client.get(url(), params={"limit": 1000})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["id"], body["source"], body["pool_id"]) == (PRODUCT, "lido", "vault/a:b c")
    assert body["product_id"] == "lido:ethereum:steth:test-vault"
    points = body["items"]
    assert len(points) == HOURS
    for hour, point in enumerate(points):
        assert datetime.fromisoformat(point["at"]) == START + timedelta(hours=hour)
        assert datetime.fromisoformat(point["observed_at"]) == START + timedelta(
            hours=hour, minutes=40
        )
        assert point["apy_pct"] == hour + 0.5
        assert point["tvl_usd"] == 1e6 + hour


async def test_daily_points_and_a_time_window(client: httpx.AsyncClient) -> None:
    days = (await client.get(url(), params={"interval": "day"})).json()["items"]
    assert [datetime.fromisoformat(p["at"]) for p in days] == [
        START + timedelta(days=d) for d in range(3)
    ]
    assert [p["apy_pct"] for p in days] == [24 * d + 23.5 for d in range(3)]
    since, until = START + timedelta(hours=10), START + timedelta(hours=20)
    window = await client.get(
        url(), params={"since": since.isoformat(), "until": until.isoformat()}
    )
    assert [p["apy_pct"] for p in window.json()["items"]] == [h + 0.5 for h in range(10, 20)]
    naive = await client.get(url(), params={"since": "2026-03-03T00:00:00"})  # read as UTC
    assert len(naive.json()["items"]) == 24


async def test_pages_of_history_walk_every_point_once(client: httpx.AsyncClient) -> None:
    seen: list[str] = []
    cursor = ""
    while True:
        page = (await client.get(url(), params={"limit": 10, "cursor": cursor})).json()
        seen.extend(p["at"] for p in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == HOURS
    assert seen == sorted(seen)


async def test_real_apy_is_in_the_history_of_staking(client: httpx.AsyncClient) -> None:
    points = (await client.get(url("coinbase:cbeth"))).json()["items"]
    assert points
    assert all(p["real_apy_pct"] is not None and p["inflation_pct"] is not None for p in points)
    assert points[-1]["real_apy_pct"] < points[-1]["apy_pct"]


async def test_history_as_csv(client: httpx.AsyncClient) -> None:
    answer = await client.get(url(), params={"interval": "day", "format": "csv"})
    lines = answer.text.splitlines()
    assert lines[0].startswith("at,observed_at,apy_pct,")
    assert len(lines) == 4


@pytest.mark.parametrize("product", ["lido:nothing", "nocolon", "nosuch:steth", ":steth"])
async def test_unknown_product_is_404(client: httpx.AsyncClient, product: str) -> None:
    answer = await client.get(url(product))
    assert answer.status_code == 404
    assert "<source>:<pool_id>" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"interval": "week"}, "interval"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-03-02", "until": "2026-03-01"}, "until"),
        ({"limit": -5}, "limit"),
    ],
)
async def test_bad_parameters_are_422(
    client: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    answer = await client.get(url(), params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["query", field]
