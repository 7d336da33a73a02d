"""Curve: TVL from getPools, CRV + extra rewards (percent), base APYs joined per pool."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest import curve as collector
from ingest._http import dump_item, fetch_json
from tests.conftest import FETCHED_AT, FIXTURES
from tests.transforms import observe, records_of, rejection
from transforms import curve
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse, UpstreamRejected
from yieldstream.loopback import Reply, recorded_routes, recorded_settings

SOURCE = "curve"
MAIN_2022 = "getPools-all-ethereum-main-registry-20220730.json"
POLYGON_2022 = "getPools-all-polygon-crypto-registry-20220730.json"
CURRENT = "getPools-all-ethereum-current-schema-BUILT.json"
BASE_APYS = FIXTURES / SOURCE / "getBaseApys-ethereum-current-schema-BUILT.json"
NO_POLYGON_BASE = FIXTURES / SOURCE / "getBaseApys-polygon-none-recorded-EMPTY-BUILT.json"
THREE_POOL = "0xbEbc44782C7dB0a1A60Cb6fe97d0b483032FF1C7"
STETH_POOL = "0xDC24316b9AE028F1497c275EB9192a3Ea0f67022"
CRV = "0xD533a949740bb3306d119CC777fa900bA034cd52"
LDO = "0x5A98FcBEA516Cf06857215779Fd812CA3beF1B32"
ENDPOINT = collector.ENDPOINTS[0]


def by_address(records: list[RawRecord]) -> dict[str, RawRecord]:
    return {r.native_id: r for r in records}


def pool_record(pool: dict[str, Any], chain: str = "ethereum") -> RawRecord:
    [rec] = ENDPOINT.records(
        {"data": {"poolData": [pool]}},
        source=SOURCE,
        fetched_at=FETCHED_AT,
        run_id="t",
        path=ENDPOINT.concrete(chain),
    )
    return rec


def current_pool(address: str = THREE_POOL) -> dict[str, Any]:
    pools = json.loads((FIXTURES / SOURCE / CURRENT).read_bytes())["data"]["poolData"]
    found: dict[str, Any] = next(p for p in pools if p["address"] == address)
    return found


def test_3pool_tvl_2022_pinned() -> None:
    # The recorded 2022-07-30 getPools/ethereum/main answer: 3pool usdTotal
    # 958080626.9754276 USD (curve.fi showed 3pool at ~$958 M then). No APY fields in
    # 2022: the total is unknown, the TVL is a valid observation.
    obs = observe(curve.transform, by_address(records_of(SOURCE, MAIN_2022))[THREE_POOL])
    assert obs.tvl_usd == pytest.approx(958080626.9754276)
    assert obs.apy_pct is obs.apy_base_pct is obs.apy_reward_pct is None
    assert (obs.strategy, obs.venue, obs.strategy_guessed) == (Strategy.FARMING, Venue.DEFI, False)
    # DefiLlama's curve-dex row: symbol = coins joined by '-', no poolMeta.
    assert (obs.protocol, obs.chain, obs.symbol) == ("curve-dex", "Ethereum", "DAI-USDC-USDT")
    assert obs.product_id == "curve-dex:ethereum:dai-usdc-usdt"
    assert obs.pool_id == f"{THREE_POOL}-ethereum"
    assert obs.observed_at == FETCHED_AT
    assert obs.underlying_tokens == [
        "0x6B175474E89094C44Da98b954EedeAC495271d0F",
        "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
        "0xdAC17F958D2ee523a2206206994597C13D831ec7",
    ]


def test_polygon_crypto_pool_2022() -> None:
    [first, *_] = records_of(SOURCE, POLYGON_2022)
    obs = observe(curve.transform, first)
    assert obs.product_id == "curve-dex:polygon:am3crv-amwbtc-amweth"
    assert obs.chain == "Polygon"
    assert obs.tvl_usd == pytest.approx(39723201.55545319)


def test_current_schema_rewards_are_percent_unboosted() -> None:
    # Built from the documented shape: gaugeCrvApy [0.9532, 2.383] is [min, max] CRV
    # APR in PERCENT; an LP without veCRV gets the min, 0.9532 % (not 95.32 %, not
    # 2.383 %). stETH: 0.6127 % CRV + 0.4215 % LDO = 1.0342 %.
    records = by_address(records_of(SOURCE, CURRENT))
    three = observe(curve.transform, records[THREE_POOL])
    assert three.apy_reward_pct == pytest.approx(0.9532)
    assert three.reward_tokens == [CRV]
    assert three.apy_pct is None  # no base APY in getPools: the total is unknown
    assert three.tvl_usd == pytest.approx(163781734.23451887)
    steth = observe(curve.transform, records[STETH_POOL])
    assert steth.apy_reward_pct == pytest.approx(1.0342)
    assert steth.reward_tokens == [CRV, LDO]
    assert steth.product_id == "curve-dex:ethereum:eth-steth"


def test_numbers_as_strings_are_read_exactly() -> None:
    pool = current_pool() | {
        "usdTotal": "958080626.97542760000000000001",
        "gaugeCrvApy": ["0.9532", "2.383"],
        "gaugeRewards": [{"apy": "0.1", "tokenAddress": LDO}],
    }
    obs = observe(curve.transform, pool_record(pool))
    assert obs.tvl_usd == 958080626.9754276
    assert obs.apy_reward_pct == 1.0532  # exact 0.9532 + 0.1, one rounding to float
    # An integer beyond 2**53 keeps every digit (a float would say ...992): it is
    # an absurd TVL, rejected with the exact figure.
    big = rejection(curve.transform, pool_record(current_pool() | {"usdTotal": 2**53 + 1}))
    assert "9007199254740993 is outside" in big.reason
    long = {
        "address": THREE_POOL,
        "latestDailyApyPcent": "1.2300000000000000000000000000000000000001",
    }
    assert observe(curve.transform, joined(current_pool(), long)).apy_base_pct == 1.23


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"usdTotal": "lots"}, "usdTotal"),
        ({"usdTotal": -1}, "outside"),
        ({"usdTotal": True}, "undecodable"),
        ({"gaugeCrvApy": [1e7, 2e7]}, "outside"),
        ({"gaugeCrvApy": [-0.5, 1]}, "outside"),
        ({"gaugeRewards": [{"apy": "NaN"}]}, "gaugeRewards[0].apy"),
        ({"coins": []}, "lists no coins"),
        ({"coins": [{"address": "0x1", "symbol": None}]}, "undecodable"),
        ({"address": None}, "undecodable"),
        ({"usdTotal": None, "gaugeCrvApy": None}, "neither an APY nor a TVL"),
    ],
)
def test_bad_pools_are_rejected(change: dict[str, Any], reason: str) -> None:
    found = rejection(curve.transform, pool_record(current_pool() | change))
    assert reason in found.reason


def test_a_missing_field_is_rejected() -> None:
    pool = current_pool()
    del pool["coins"]
    assert "coins" in rejection(curve.transform, pool_record(pool)).reason


# --- the joined envelope ----------------------------------------------------------


def joined(pool: dict[str, Any], base: dict[str, Any] | None) -> RawRecord:
    rec = pool_record(pool)
    payload = json.dumps({"pool": pool, "baseApy": base}).encode()
    return RawRecord(
        source=SOURCE,
        endpoint=rec.endpoint,
        fetched_at=FETCHED_AT,
        run_id="t",
        kind="snapshot",
        native_id=rec.native_id,
        payload=payload,
    )


def test_base_apy_joins_to_its_pool() -> None:
    # 3pool latestDailyApyPcent 1.23 is the trading-fee APY in PERCENT, already
    # compounded by Curve ((1 + r)^365 - 1); plus the 0.9532 % CRV APR (paid out, not
    # compounded): 1.23 + 0.9532 = 2.1832 %.
    base = {"address": THREE_POOL.lower(), "latestDailyApyPcent": 1.23}
    obs = observe(curve.transform, joined(current_pool(), base))
    assert obs.apy_base_pct == pytest.approx(1.23)
    assert obs.apy_reward_pct == pytest.approx(0.9532)
    assert obs.apy_pct == pytest.approx(2.1832)
    again = observe(curve.transform, joined(current_pool(), base))
    assert again == obs  # idempotent: same key, same row


def test_an_envelope_without_a_base_apy_keeps_tvl_and_rewards() -> None:
    obs = observe(curve.transform, joined(current_pool(), None))
    assert obs.apy_pct is None
    assert obs.apy_reward_pct == pytest.approx(0.9532)


@pytest.mark.parametrize(
    ("base", "reason"),
    [
        ({"address": STETH_POOL, "latestDailyApyPcent": 1.0}, "joined to"),
        ({"address": THREE_POOL, "latestDailyApyPcent": "1.2%"}, "latestDailyApyPcent"),
        ({"address": THREE_POOL, "latestDailyApyPcent": 1e9}, "outside"),
        ({"latestDailyApyPcent": 1.0}, "undecodable"),
    ],
)
def test_bad_base_apys_are_rejected(base: dict[str, Any], reason: str) -> None:
    assert reason in rejection(curve.transform, joined(current_pool(), base)).reason


def cfg(**kw: Any) -> collector.Config:
    return collector.Config(attempts=2, wait_initial_s=0, wait_max_s=0, **kw)


def serving(answers: dict[str, list[httpx.Response]], seen: list[str]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        queue = answers.get(request.url.path)
        return queue.pop(0) if queue else httpx.Response(404, json={"success": False})

    return httpx.MockTransport(handler)


POOLS_BODY = (FIXTURES / SOURCE / CURRENT).read_bytes()


async def drain(client: httpx.AsyncClient, config: collector.Config, into: list[RawRecord]) -> None:
    """Collect into ``into``, so that the records before a failure are kept."""
    async for r in collector.collect(client, config, "run"):
        into.append(r)


async def test_collect_joins_both_endpoints_into_one_record_per_pool() -> None:
    seen: list[str] = []
    answers = {
        "/v1/getPools/all/ethereum": [httpx.Response(200, content=POOLS_BODY)],
        "/v1/getBaseApys/ethereum": [httpx.Response(200, content=BASE_APYS.read_bytes())],
    }
    config = cfg(chains=("ethereum",))  # joined by default
    async with httpx.AsyncClient(transport=serving(answers, seen)) as client:
        records = [r async for r in collector.collect(client, config, "run")]
    assert seen == ["/v1/getPools/all/ethereum", "/v1/getBaseApys/ethereum"]
    assert [r.native_id for r in records] == [THREE_POOL, STETH_POOL]
    assert {r.endpoint for r in records} == {"/v1/getPools/all/ethereum"}
    plain = by_address(records_of(SOURCE, CURRENT))
    for rec in records:  # the pool item verbatim inside the envelope
        assert rec.payload.startswith(b'{"pool":' + plain[rec.native_id].payload + b',"baseApy":{')
    steth = observe(curve.transform, by_address(records)[STETH_POOL])
    # 2.87 % fees (LST yield included by Curve) + 0.6127 % CRV + 0.4215 % LDO.
    assert steth.apy_pct == pytest.approx(2.87 + 1.0342)
    # The same envelopes, byte for byte, as join_bodies makes from the two bodies
    # (what the contract suite checks the recorded responses with).
    bodies = [json.loads(POOLS_BODY), json.loads(BASE_APYS.read_bytes())]
    items = collector.join_bodies(bodies)
    assert [collector.joined_id(i) for i in items] == [r.native_id for r in records]
    assert [dump_item(i, False) for i in items] == [r.payload for r in records]


async def test_a_failing_base_apy_fetch_keeps_the_pools_then_fails() -> None:
    seen: list[str] = []
    answers = {
        "/v1/getPools/all/ethereum": [httpx.Response(200, content=POOLS_BODY)],
        "/v1/getBaseApys/ethereum": [httpx.Response(503), httpx.Response(503)],
        "/v1/getPools/all/base": [httpx.Response(500), httpx.Response(500)],
    }
    config = cfg(chains=("base", "ethereum"), join_base_apys=True)
    records: list[RawRecord] = []

    async def drain(client: httpx.AsyncClient) -> None:
        async for r in collector.collect(client, config, "run"):
            records.append(r)

    async with httpx.AsyncClient(transport=serving(answers, seen)) as client:
        with pytest.raises(UpstreamRejected, match="2 of the requests failed"):
            await drain(client)
    assert len(records) == 2
    assert all(r.payload.endswith(b',"baseApy":null}') for r in records)
    assert observe(curve.transform, records[0]).apy_pct is None


async def test_default_collect_asks_both_endpoints_of_each_chain() -> None:
    seen: list[str] = []
    answers = {"/v1/getPools/all/ethereum": [httpx.Response(200, content=POOLS_BODY)]}
    records: list[RawRecord] = []
    async with httpx.AsyncClient(transport=serving(answers, seen)) as client:
        with pytest.raises(UpstreamRejected):  # the others answer 404 here
            await drain(client, cfg(), records)
    chains = collector.Config().chains
    assert collector.Config().join_base_apys
    # Ethereum's pools, then its base APYs (404: the pools are kept), then each
    # other chain's pools (404: no base APY request for a chain without pools).
    assert seen[:2] == ["/v1/getPools/all/ethereum", "/v1/getBaseApys/ethereum"]
    assert seen[2:] == [f"/v1/getPools/all/{c}" for c in chains if c != "ethereum"]
    assert [r.native_id for r in records] == [THREE_POOL, STETH_POOL]
    assert all(r.payload.endswith(b',"baseApy":null}') for r in records)


async def test_join_off_yields_the_bare_pools_and_never_asks_base_apys() -> None:
    seen: list[str] = []
    answers = {"/v1/getPools/all/ethereum": [httpx.Response(200, content=POOLS_BODY)]}
    config = cfg(chains=("ethereum",), join_base_apys=False)
    async with httpx.AsyncClient(transport=serving(answers, seen)) as client:
        records = [r async for r in collector.collect(client, config, "run")]
    assert seen == ["/v1/getPools/all/ethereum"]
    assert [r.payload for r in records] == [r.payload for r in records_of(SOURCE, CURRENT)]
    assert observe(curve.transform, records[0]).apy_pct is None


async def test_a_chain_listed_twice_is_polled_once() -> None:
    # The recorded settings name a chain once per endpoint; a user may repeat one.
    assert cfg(chains=("ethereum", "polygon", "ethereum")).chains == ("ethereum", "polygon")
    seen: list[str] = []
    answers = {
        "/v1/getPools/all/ethereum": [httpx.Response(200, content=POOLS_BODY)],
        "/v1/getBaseApys/ethereum": [httpx.Response(200, content=BASE_APYS.read_bytes())],
    }
    config = cfg(chains=("ethereum", "ethereum"))
    async with httpx.AsyncClient(transport=serving(answers, seen)) as client:
        records = [r async for r in collector.collect(client, config, "run")]
    assert seen == ["/v1/getPools/all/ethereum", "/v1/getBaseApys/ethereum"]
    assert len(records) == 2


async def test_a_bad_pools_body_fails_its_chain_only() -> None:
    seen: list[str] = []
    answers = {
        "/v1/getPools/all/base": [httpx.Response(200, json={"success": True, "data": {}})],
        "/v1/getPools/all/ethereum": [httpx.Response(200, content=POOLS_BODY)],
        "/v1/getBaseApys/ethereum": [httpx.Response(200, content=BASE_APYS.read_bytes())],
    }
    records: list[RawRecord] = []
    async with httpx.AsyncClient(transport=serving(answers, seen)) as client:
        with pytest.raises(UpstreamRejected, match=r"1 of the requests failed.*poolData"):
            await drain(client, cfg(chains=("base", "ethereum")), records)
    assert "/v1/getBaseApys/base" not in seen
    assert [r.native_id for r in records] == [THREE_POOL, STETH_POOL]


# --- the recorded responses, joined per chain as collect joins them ---------------


def joined_records(pools: str, base: Path, chain: str = "ethereum") -> dict[str, RawRecord]:
    path = FIXTURES / SOURCE / pools
    items = collector.join_bodies([json.loads(path.read_bytes()), json.loads(base.read_bytes())])
    return {
        collector.joined_id(item): RawRecord(
            source=SOURCE,
            endpoint=ENDPOINT.concrete(chain),
            fetched_at=FETCHED_AT,
            run_id="t",
            kind="snapshot",
            native_id=collector.joined_id(item),
            payload=dump_item(item, False),
        )
        for item in items
    }


def test_recorded_base_apys_give_the_3pool_total() -> None:
    # Recorded (BUILT) getBaseApys/ethereum: 3pool latestDailyApyPcent 1.23 (percent
    # APY) joined to the recorded getPools/all/ethereum 3pool, gaugeCrvApy[0] 0.9532
    # (percent APR): 1.23 + 0.9532 = 2.1832 % (a x100 error would say 218.32).
    records = joined_records(CURRENT, BASE_APYS)
    three = observe(curve.transform, records[THREE_POOL])
    assert three.apy_base_pct == pytest.approx(1.23)
    assert three.apy_pct == pytest.approx(2.1832)
    assert three.tvl_usd == pytest.approx(163781734.23451887)


def test_2022_pools_without_a_base_apy_keep_their_tvl() -> None:
    # The 2022 main registry joined with the base APYs: the two pools they list get
    # a base (no 2022 rewards: total = base); the other 43 keep apy None and TVL.
    records = joined_records(MAIN_2022, BASE_APYS)
    assert len(records) == 45
    rows = {a: observe(curve.transform, r) for a, r in records.items()}
    assert rows[THREE_POOL].apy_pct == pytest.approx(1.23)
    assert rows[THREE_POOL].tvl_usd == pytest.approx(958080626.9754276)
    rest = [o for a, o in rows.items() if a not in (THREE_POOL, STETH_POOL)]
    assert len(rest) == 43
    assert all(o.apy_pct is None and o.apy_base_pct is None for o in rest)
    assert all(o.tvl_usd is not None for o in rest)
    # Polygon: no base APY recorded (an empty list): TVL only.
    polygon = joined_records(POLYGON_2022, NO_POLYGON_BASE, "polygon")
    first = observe(curve.transform, next(iter(polygon.values())))
    assert first.chain == "Polygon"
    assert first.apy_pct is None
    assert first.tvl_usd == pytest.approx(39723201.55545319)


async def test_error_envelope_is_fatal_and_rate_limit_retried() -> None:
    url = "https://api.curve.finance/v1/getPools/all/ethereum"
    failing = httpx.MockTransport(
        lambda r: httpx.Response(200, json={"success": False, "err": "unknown blockchainId"})
    )
    async with httpx.AsyncClient(transport=failing) as client:
        with pytest.raises(BadResponse, match="unknown blockchainId"):
            await fetch_json(client, url, cfg(), request=ENDPOINT.request)
    answers = [
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.Response(200, content=POOLS_BODY),
    ]
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: answers.pop(0))) as client:
        fetched = await fetch_json(client, url, cfg(), request=ENDPOINT.request)
    assert len(ENDPOINT.items(fetched.body, url)) == 2


def test_observed_at_is_the_fetch() -> None:
    later = datetime(2026, 12, 4, 5, tzinfo=UTC)
    [rec, *_] = records_of(SOURCE, CURRENT, fetched_at=later)
    assert observe(curve.transform, rec).observed_at == later


async def test_the_demo_routes_give_ethereum_totals_and_polygon_tvl() -> None:
    # What `yieldstream demo` serves Curve (recorded_routes) and asks for
    # (recorded_settings: each chain once per endpoint, polled once).
    routes = recorded_routes()
    settings = recorded_settings()[SOURCE]
    assert sorted(set(settings["chains"])) == ["ethereum", "polygon"]

    def handler(request: httpx.Request) -> httpx.Response:
        reply = routes.get(f"/{SOURCE}{request.url.path}")
        assert isinstance(reply, Reply), f"not served: {request.url.path}"
        return httpx.Response(reply.status, content=reply.body)

    config = cfg(**settings)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        records = [r async for r in collector.collect(client, config, "run")]
    rows = {o.pool_id: o for r in records for o in [observe(curve.transform, r)]}
    assert len(rows) == len(records) == 45 + 4  # the two Ethereum files merged, Polygon
    assert rows[f"{THREE_POOL}-ethereum"].apy_pct == pytest.approx(2.1832)
    assert rows[f"{STETH_POOL}-ethereum"].apy_pct == pytest.approx(2.87 + 1.0342)
    assert {o.chain for o in rows.values()} == {"Ethereum", "Polygon"}
    assert sum(o.apy_pct is not None for o in rows.values()) == 2
    assert all(o.tvl_usd is not None for o in rows.values())
