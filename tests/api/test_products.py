"""``GET /v1/products``: filters, sorts, keyset pages, CSV, bad parameters."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import httpx
import pytest

Query = Callable[[str], list[tuple[Any, ...]]]


async def walk(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every page of ``/v1/products`` with ``params``, in order."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        answer = await client.get("/v1/products", params={**params, "cursor": cursor})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert len(page["items"]) == params.get("limit", 100)


@pytest.mark.parametrize(
    "sort", ["tvl_usd_desc", "tvl_usd_asc", "apy_pct_desc", "apy_pct_asc", "product_id"]
)
async def test_pages_walk_every_product_once_in_order(
    client: httpx.AsyncClient, everything: Query, sort: str
) -> None:
    items = await walk(client, limit=7, sort=sort)
    ids = [item["id"] for item in items]
    stored = {f"{s}:{p}" for s, p in everything("SELECT source, pool_id FROM latest_yields")}
    assert len(ids) == len(set(ids)) == len(stored)
    assert set(ids) == stored
    field, _, direction = sort.rpartition("_")
    if sort == "product_id":
        keys = [(i["product_id"], i["source"], i["pool_id"]) for i in items]
        assert keys == sorted(keys)
        return
    known = [i[field] for i in items if i[field] is not None]
    assert known == sorted(known, reverse=direction == "desc")
    nulls = [i[field] is None for i in items]
    assert nulls == sorted(nulls)  # NULL figures last


async def test_filters_narrow_the_list(client: httpx.AsyncClient, everything: Query) -> None:
    items = await walk(client, strategy="lending", venue="cefi", limit=500)
    expected = everything(
        "SELECT count(*) FROM latest_yields WHERE strategy = 'lending' AND venue = 'cefi'"
    )
    assert len(items) == expected[0][0] > 0
    assert {(i["strategy"], i["venue"]) for i in items} == {("lending", "cefi")}

    rich = await walk(client, min_tvl_usd=1e9, chain="ethereum", limit=500)
    assert rich
    assert all(i["tvl_usd"] >= 1e9 and i["chain"] == "Ethereum" for i in rich)

    okx = await walk(client, source="okx")
    assert okx
    assert {i["source"] for i in okx} == {"okx"}
    stable = await walk(client, stablecoin=True)
    assert stable
    assert all(i["stablecoin"] for i in stable)


async def test_asset_takes_the_forms_of_an_asset(client: httpx.AsyncClient) -> None:
    eth = await walk(client, asset="eth")
    symbols = {i["symbol"].upper() for i in eth}
    assert {"STETH", "RETH", "CBETH"} <= symbols
    assert {i["asset"] for i in eth} == {"ETH"}
    assert "USDC" not in symbols


async def test_csv_by_format_or_accept(client: httpx.AsyncClient) -> None:
    by_param = await client.get("/v1/products", params={"format": "csv", "limit": 5})
    by_accept = await client.get(
        "/v1/products", params={"limit": 5}, headers={"Accept": "text/csv"}
    )
    as_json = await client.get("/v1/products", params={"limit": 5})
    assert by_param.headers["content-type"].startswith("text/csv")
    assert by_param.text == by_accept.text
    rows = list(csv.DictReader(io.StringIO(by_param.text)))
    assert [r["id"] for r in rows] == [i["id"] for i in as_json.json()["items"]]
    assert rows[0]["tvl_usd"] == str(as_json.json()["items"][0]["tvl_usd"])
    assert by_param.headers["x-next-cursor"] == as_json.json()["next_cursor"]
    # ?format=json wins over Accept
    forced = await client.get(
        "/v1/products", params={"format": "json"}, headers={"Accept": "text/csv"}
    )
    assert forced.headers["content-type"] == "application/json"


async def test_limit_is_capped_by_the_settings(make_client: Any) -> None:
    async with make_client(max_limit=3) as client:
        answer = await client.get("/v1/products", params={"limit": 1000})
    assert answer.status_code == 200
    assert len(answer.json()["items"]) == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"sort": "tvl"}, "sort"),
        ({"strategy": "gambling"}, "strategy"),
        ({"venue": "moon"}, "venue"),
        ({"min_tvl_usd": -1}, "min_tvl_usd"),
        ({"min_tvl_usd": "nan"}, "min_tvl_usd"),
        ({"stablecoin": "perhaps"}, "stablecoin"),
        ({"format": "xml"}, "format"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "WyJ4Il0"}, "cursor"),  # ["x"]: base64 JSON, not ours
    ],
)
async def test_bad_parameters_are_422_naming_the_field(
    client: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    answer = await client.get("/v1/products", params=params)
    assert answer.status_code == 422, answer.text
    assert [e["loc"] for e in answer.json()["detail"]] == [["query", field]]


async def test_a_cursor_of_another_sort_is_refused(client: httpx.AsyncClient) -> None:
    first = await client.get("/v1/products", params={"limit": 2, "sort": "apy_pct_desc"})
    cursor = first.json()["next_cursor"]
    answer = await client.get("/v1/products", params={"cursor": cursor, "sort": "tvl_usd_desc"})
    assert answer.status_code == 422
    assert "another order" in answer.json()["detail"][0]["msg"]


async def test_request_text_is_never_sql(client: httpx.AsyncClient, everything: Query) -> None:
    hostile = "x' OR '1'='1"
    for field in ("chain", "asset", "source", "protocol"):
        answer = await client.get("/v1/products", params={field: hostile})
        assert answer.status_code == 200
        assert answer.json()["items"] == []
    assert everything("SELECT count(*) FROM latest_yields")[0][0] > 0
