"""Each collector against recorded real responses: one RawRecord per upstream item.

Also what a collector does with a body of the wrong shape (BadResponse, keeping what
came) and with items that are bad on their own (kept as records, for the transform
to reject one by one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import orjson
import pytest

from ingest import defillama_protocols, defillama_yields, lido
from tests.conftest import recorded
from transforms import Context, apply
from yieldstream.contracts import Observation, RawRecord, Rejection
from yieldstream.errors import BadResponse, UpstreamUnavailable
from yieldstream.registry import sources

BASE = "https://upstream.test"
POOLS = recorded("defillama-yields", "pools-stablecoin_quant.json")
POOLS_2 = recorded("defillama-yields", "pools-2records-from-cn-doc.json")
PROTOCOLS = recorded("defillama-protocols", "protocols-rows-onchain-analytics-first6.json")
APR_LAST = recorded("lido", "apr-last-from-mcp-test.json")
APR_SMA = recorded("lido", "apr-sma-from-mcp-test.json")
LAST, SMA = "/v1/protocol/steth/apr/last", "/v1/protocol/steth/apr/sma"
ROUTES = {"/pools": POOLS, "/protocols": PROTOCOLS, LAST: APR_LAST, SMA: APR_SMA}


class Upstream:
    """Serves bodies by path (404 elsewhere) and remembers the paths asked for."""

    def __init__(self, routes: Mapping[str, bytes | int]) -> None:
        self.routes = routes
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        body = self.routes.get(request.url.path, 404)
        if isinstance(body, int):
            return httpx.Response(body, json={"error": "scripted"})
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})


async def collect(
    module: ModuleType, routes: Mapping[str, bytes | int], into: list[RawRecord] | None = None
) -> list[RawRecord]:
    """Run a collector to the end; records reach ``into`` even if it then fails."""
    records = [] if into is None else into
    cfg = module.Config(
        base_url=BASE, attempts=2, wait_initial_s=0.01, wait_max_s=0.02, deadline_s=2.0
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(Upstream(routes))) as client:
        async for record in module.collect(client, cfg, "run-1"):
            records.append(record)
    return records


def test_every_registered_source_has_its_own_tests() -> None:
    """The first three are tested here; every source has tests/transforms/test_<module>.py."""
    tests = Path(__file__).parents[1] / "transforms"
    missing = [
        name for name, src in sources().items() if not (tests / f"test_{src.module}.py").is_file()
    ]
    assert missing == []
    assert {m.SOURCE for m in (defillama_yields, defillama_protocols, lido)} <= set(sources())


# --- one record per upstream item, native ids from the real responses ------------------


@pytest.mark.parametrize("body", [POOLS, POOLS_2], ids=["stablecoin_quant", "cn-doc"])
async def test_defillama_yields_yields_one_record_per_pool(body: bytes) -> None:
    pools = orjson.loads(body)["data"]
    records = await collect(defillama_yields, {"/pools": body})
    assert [r.native_id for r in records] == [p["pool"] for p in pools]
    assert [orjson.loads(r.payload) for r in records] == pools  # unmodified items
    for record in records:
        assert (record.source, record.endpoint, record.kind, record.run_id) == (
            "defillama-yields",
            "/pools",
            "snapshot",
            "run-1",
        )
        assert record.fetched_at.utcoffset() is not None
    assert len({r.raw_id for r in records}) == len(records)


async def test_defillama_protocols_yields_one_record_per_protocol() -> None:
    rows = orjson.loads(PROTOCOLS)
    records = await collect(defillama_protocols, {"/protocols": PROTOCOLS})
    assert [r.native_id for r in records] == [row["slug"] for row in rows]
    assert [r.native_id for r in records][:2] == ["lido", "aave-v3"]
    assert [orjson.loads(r.payload) for r in records] == rows
    assert {r.endpoint for r in records} == {"/protocols"}


async def test_lido_yields_the_last_point_and_each_sma_point() -> None:
    last = orjson.loads(APR_LAST)["data"]
    points = orjson.loads(APR_SMA)["data"]["aprs"]
    records = await collect(lido, {LAST: APR_LAST, SMA: APR_SMA})
    assert [(r.endpoint, r.native_id) for r in records] == [
        (LAST, "1773318119"),
        *[(SMA, str(p["timeUnix"])) for p in points],
    ]
    assert len(records) == 9
    assert orjson.loads(records[0].payload) == last == {"timeUnix": 1773318119, "apr": 2.464}
    assert [orjson.loads(r.payload) for r in records[1:]] == points


async def test_lido_docs_samples_also_collect() -> None:
    routes = {
        LAST: recorded("lido", "apr-last-lidodocs-2023.json"),
        SMA: recorded("lido", "apr-sma-lidodocs-2023-TRUNCATED.json"),
    }
    records = await collect(lido, routes)
    assert [r.native_id for r in records] == ["1682425475", "1681820735"]


async def test_items_without_an_id_are_named_by_position() -> None:
    body = orjson.dumps({"data": [{"pool": "a"}, {"chain": "Ethereum"}, 7, {"pool": ""}]})
    records = await collect(defillama_yields, {"/pools": body})
    assert [r.native_id for r in records] == ["a", "#1", "#2", "#3"]
    assert records[2].payload == b"7"


# --- shape errors: the whole response is unusable ------------------------------------------


@pytest.mark.parametrize(
    ("module", "routes", "message"),
    [
        (
            defillama_yields,
            {"/pools": b'{"data": "oops"}'},
            r"expected a list at \$\.data .*got str",
        ),
        (
            defillama_yields,
            {"/pools": b'{"status": "error", "message": "x"}'},
            r"expected an object with 'data' at \$ of https://upstream\.test/pools",
        ),
        (defillama_yields, {"/pools": b"[]"}, r"expected an object with 'data' at \$"),
        (defillama_yields, {"/pools": b'{"data": null}'}, r"expected a list .*got NoneType"),
        (defillama_protocols, {"/protocols": b'{"data": []}'}, r"expected a list at \$ .*got dict"),
        (lido, {LAST: b'{"data": [2.4]}', SMA: APR_SMA}, r"expected an object at \$\.data of"),
        (lido, {LAST: b'{"data": null}', SMA: APR_SMA}, r"expected an object at \$\.data of"),
    ],
    ids=[
        "pools-data-str",
        "pools-no-data",
        "pools-list",
        "pools-null",
        "protocols-object",
        "lido-last-list",
        "lido-last-null",
    ],
)
async def test_wrong_shape_is_a_bad_response_keeping_the_body(
    module: ModuleType,
    routes: dict[str, bytes],
    message: str,
) -> None:
    with pytest.raises(BadResponse, match=message) as caught:
        await collect(module, routes)
    assert caught.value.body in routes.values()  # what came, for the rejection
    assert caught.value.url.startswith(BASE)


async def test_lido_keeps_the_last_point_when_sma_has_the_wrong_shape() -> None:
    records: list[RawRecord] = []
    with pytest.raises(BadResponse, match=r"expected a list at \$\.data\.aprs"):
        await collect(
            lido, {LAST: APR_LAST, SMA: b'{"data": {"aprs": {}, "smaApr": 2.4}}'}, records
        )
    assert [(r.endpoint, r.native_id) for r in records] == [(LAST, "1773318119")]


async def test_lido_reports_an_outage_of_its_second_endpoint() -> None:
    records: list[RawRecord] = []
    with pytest.raises(UpstreamUnavailable, match="HTTP 503"):
        await collect(lido, {LAST: APR_LAST, SMA: 503}, records)
    assert len(records) == 1


# --- bad items inside a good response: kept, rejected one by one downstream ----------------


def pools_with(index: int, **changes: Any) -> bytes:
    """The recorded /pools body with one item changed (None deletes a field)."""
    body = json.loads(POOLS)
    for key, value in changes.items():
        if value is None:
            del body["data"][index][key]
        else:
            body["data"][index][key] = value
    return json.dumps(body).encode()  # json, not orjson: NaN stays a NaN literal


@pytest.mark.parametrize(
    ("changes", "stage", "reason"),
    [
        ({"apy": float("nan")}, "decode", "undecodable item"),
        ({"tvlUsd": float("inf")}, "decode", "undecodable item"),
        ({"tvlUsd": "5698745714"}, "decode", r"Expected `float \| null`, got `str`"),
        ({"apy": 2e6}, "validate", r"<= 1000000\.0 - at `\$\.apy_pct`"),
        ({"tvlUsd": -1.0}, "validate", r">= 0\.0 - at `\$\.tvl_usd`"),
        ({"chain": None}, "decode", "missing required field `chain`"),
    ],
    ids=["nan", "infinity", "string-number", "apy-2e6", "negative-tvl", "missing-chain"],
)
async def test_one_bad_pool_is_one_rejection_the_others_are_observations(
    changes: dict[str, Any],
    stage: str,
    reason: str,
) -> None:
    records = await collect(defillama_yields, {"/pools": pools_with(2, **changes)})
    assert len(records) == 5
    transform = sources()["defillama-yields"].transform
    results = [apply(transform, record, Context()) for record in records]
    rejected = [r for r in results if isinstance(r, Rejection)]
    assert len(rejected) == 1
    assert (rejected[0].stage, rejected[0].native_id) == (stage, records[2].native_id)
    assert rejected[0].payload == records[2].payload  # the original item, for the DLQ
    assert re.search(reason, rejected[0].reason), rejected[0].reason
    kept = [r for r in results if not isinstance(r, Rejection)]
    assert all(len(r) == 1 and isinstance(r[0], Observation) for r in kept)
    assert len(kept) == 4


async def test_nan_literal_stays_in_the_payload_of_its_item_only() -> None:
    records = await collect(defillama_yields, {"/pools": pools_with(0, apy=float("nan"))})
    assert b'"apy":NaN' in records[0].payload
    assert all(b"NaN" not in r.payload for r in records[1:])
    assert json.loads(records[1].payload) == json.loads(POOLS)["data"][1]
