"""Real yields, strategies compared, protocol TVL, alerts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from yieldstream.alerts import KINDS
from yieldstream.api.routes.alerts import Kind

Query = Callable[[str], list[tuple[Any, ...]]]


async def test_real_yields_are_each_staking_products_newest(
    client: httpx.AsyncClient, everything: Query
) -> None:
    answer = await client.get("/v1/real-yields", params={"limit": 500})
    items = answer.json()["items"]
    stored = everything("SELECT count(DISTINCT (source, pool_id)) FROM real_yields")[0][0]
    assert len(items) == stored > 0
    sol = (await client.get("/v1/real-yields", params={"token": "sol"})).json()["items"]
    assert sol
    assert {i["token"] for i in sol} == {"SOL"}
    jito = next(i for i in sol if i["symbol"].upper() == "JITOSOL")
    assert jito["inflation_source"] == "solana-inflation"
    assert jito["real_apy_pct"] == pytest.approx(
        ((1 + jito["apy_pct"] / 100) / (1 + jito["inflation_pct"] / 100) - 1) * 100
    )


async def test_compare_puts_the_asset_over_all_chains_first(client: httpx.AsyncClient) -> None:
    items = (await client.get("/v1/compare", params={"asset": "eth"})).json()["items"]
    assert items
    assert {i["asset"] for i in items} == {"ETH"}
    chains = [i["chain"] for i in items]
    assert chains[0] == "(all chains)"
    assert "Ethereum" in chains
    assert chains.index("Ethereum") > max(i for i, c in enumerate(chains) if c == "(all chains)")
    staking = [i for i in items if i["chain"] == "(all chains)" and i["strategy"] == "staking"]
    assert staking
    assert sum(i["products"] for i in staking) >= 3  # stETH, rETH, cbETH...
    one = (await client.get("/v1/compare", params={"asset": "eth", "chain": "ethereum"})).json()
    assert {i["chain"] for i in one["items"]} == {"Ethereum"}
    assert (await client.get("/v1/compare")).status_code == 422
    assert (await client.get("/v1/compare", params={"asset": ""})).status_code == 422


async def test_protocol_tvl(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/protocols/lido/tvl")
    assert answer.status_code == 200
    items = answer.json()["items"]
    assert items
    assert {i["protocol"] for i in items} == {"lido"}
    assert all(i["tvl_usd"] > 0 for i in items)
    totals = (await client.get("/v1/protocols/lido/tvl", params={"scope": "total"})).json()
    assert {i["scope"] for i in totals["items"]} == {"total"}
    assert (await client.get("/v1/protocols/no-such-protocol/tvl")).status_code == 404
    bad = await client.get("/v1/protocols/lido/tvl", params={"scope": "planet"})
    assert bad.status_code == 422


async def test_alerts_newest_first_filtered_and_paged(client: httpx.AsyncClient) -> None:
    items = (await client.get("/v1/alerts")).json()["items"]
    assert [a["alert_id"] for a in items] == ["a3", "a2", "a1"]
    assert items[0]["evidence"] == {"apy_pct": 9.5}
    assert items[0]["cleared_at"] is not None
    opened = (await client.get("/v1/alerts", params={"open": "true"})).json()["items"]
    assert [a["alert_id"] for a in opened] == ["a2", "a1"]
    kind = (await client.get("/v1/alerts", params={"kind": "stale_source"})).json()["items"]
    assert [a["alert_id"] for a in kind] == ["a2"]
    since = await client.get("/v1/alerts", params={"since": "2026-03-01T06:00"})
    assert [a["alert_id"] for a in since.json()["items"]] == ["a3"]
    recent = await client.get("/v1/alerts", params={"since": "1h"})
    assert recent.json()["items"] == []
    pages, cursor = [], ""
    while cursor is not None:
        page = (await client.get("/v1/alerts", params={"limit": 1, "cursor": cursor})).json()
        pages += [a["alert_id"] for a in page["items"]]
        cursor = page["next_cursor"]
    assert pages == ["a3", "a2", "a1"]
    as_csv = await client.get("/v1/alerts", headers={"Accept": "text/csv"})
    assert as_csv.text.splitlines()[1].startswith("a3,tvl_drawdown,warning,curve,p2,")
    for params in ({"since": "soon"}, {"kind": "fire"}, {"since": "99999999999999d"}):
        bad = await client.get("/v1/alerts", params=params)
        assert bad.status_code == 422, params
        assert bad.json()["detail"][0]["loc"][1] in params


def test_alert_kinds_are_the_stores() -> None:
    assert tuple(k.value for k in Kind) == KINDS
