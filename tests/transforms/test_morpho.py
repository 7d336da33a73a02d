"""Morpho Blue markets -> lending observations (APY fractions, exact BigInt amounts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ingest import morpho as collector
from ingest._history import Window, fetch_history, history_records
from ingest._http import fetch_json
from tests.conftest import raw, recorded
from tests.transforms import body_of, observe, records_of, rejection
from transforms import morpho
from transforms.units import base_units
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse, UnsafeId, UpstreamRejected

SOURCE = "morpho"
PAGE = "graphql-markets-page-first3-20260814.json"
LATER = datetime(2026, 12, 1, tzinfo=UTC)  # a fetch after the 2026-08-14 capture
BASE_CBBTC = "0x9103c3b4e834476c9a62ea009ba2c884ee42e94e6e314a26f04d312434191836"
BASE_USDE = "0x54cf9be57fdfa6457a660991907434ff9d295c465a603a50126ff647d50b7354"
ETH_CBBTC = "0x64d65c9a2d91c36d56fbc42d69e979335320169b3df63bf92789e2c8883fcc64"


def _records() -> list[RawRecord]:
    return records_of(SOURCE, PAGE, fetched_at=LATER)


def test_recorded_markets_pinned() -> None:
    records = _records()
    # Records are named for their history: <chainId>-<marketId>-<collateral symbol>.
    assert [r.native_id for r in records] == [
        f"8453-{BASE_CBBTC}-cbBTC",
        f"8453-{BASE_USDE}-USDe",
        f"1-{ETH_CBBTC}-cbBTC",
    ]
    by_id = {o.pool_id: o for o in (observe(morpho.transform, r) for r in records)}
    assert list(by_id) == [BASE_CBBTC, BASE_USDE, ETH_CBBTC]
    # Base USDC/cbBTC (LLTV 86 %): supplyApy 0.04120798 is an APY fraction already:
    # x 100 = 4.12 % (app.morpho.org shows 4.12 %); borrowApy 0.04775 = 4.77 %,
    # utilization 0.8657 = 86.6 %. A 100x (0.0412 % or 412 %) error fails here.
    obs = by_id[BASE_CBBTC]
    assert round(obs.apy_pct or 0, 2) == 4.12
    assert obs.apy_pct == pytest.approx(4.120798108290647, rel=1e-12)
    assert obs.apy_base_pct == obs.apy_pct
    assert obs.apy_reward_pct == 0.0
    assert round(obs.apy_borrow_pct or 0, 2) == 4.77
    assert round(obs.utilization_pct or 0, 1) == 86.6
    assert obs.tvl_usd == pytest.approx(1482528603.5232184)
    # supplyAssets 1483209486620379 base units of USDC (6 decimals) = 1,483,209,486.62 USDC.
    assert obs.tvl_tokens == pytest.approx(1483209486.620379)
    assert obs.tvl_token == "USDC"
    assert obs.observed_at == datetime.fromtimestamp(1786701181, UTC)  # the state's own time
    # DefiLlama's morpho-blue row for a market: symbol = collateral symbol, no poolMeta.
    assert obs.product_id == "morpho-blue:base:cbbtc"
    assert (obs.protocol, obs.chain, obs.symbol) == ("morpho-blue", "Base", "cbBTC")
    assert obs.pool_meta == "USDC lent against cbBTC, LLTV 86%"
    assert obs.strategy is Strategy.LENDING
    assert obs.venue is Venue.DEFI
    assert obs.strategy_guessed is False
    # Base USDC/USDe (LLTV 91.5 %): 0.03386 = 3.39 %; Ethereum USDC/cbBTC: 0.04194 = 4.19 %.
    assert round(by_id[BASE_USDE].apy_pct or 0, 2) == 3.39
    assert by_id[BASE_USDE].pool_meta == "USDC lent against USDe, LLTV 91.5%"
    assert round(by_id[ETH_CBBTC].apy_pct or 0, 2) == 4.19
    assert by_id[ETH_CBBTC].product_id == "morpho-blue:ethereum:cbbtc"


def test_bigints_as_numbers_or_strings_are_exact() -> None:
    items = body_of(SOURCE, PAGE)["data"]["markets"]["items"]
    # The same response gives collateralAssets as a number and as a digit string.
    assert isinstance(items[0]["state"]["collateralAssets"], int)
    text = items[1]["state"]["collateralAssets"]
    assert text == "355405952890211270375830324"
    assert base_units(text, 18) == Decimal("355405952.890211270375830324")
    # supplyAssets beyond 2**53 given as a string reads the same as the number.
    market = dict(items[0])
    big = 2**53 + 1
    for value in (big, str(big)):
        market["state"] = {**items[0]["state"], "supplyAssets": value}
        obs = observe(morpho.transform, _market(market))
        assert obs.tvl_tokens == float(Decimal(big) / 10**6)


def _market(item: dict[str, Any]) -> RawRecord:
    return raw(SOURCE, json.dumps(item).encode(), endpoint="/graphql", fetched_at=LATER)


def _changed(**state: Any) -> RawRecord:
    item = body_of(SOURCE, PAGE)["data"]["markets"]["items"][0]
    return _market({**item, "state": {**item["state"], **state}})


def test_rewards_split_from_the_net_apy() -> None:
    rewards = [{"asset": {"address": "0xReward"}, "supplyApr": 0.01, "borrowApr": 0}]
    obs = observe(morpho.transform, _changed(netSupplyApy=0.05120798108290647, rewards=rewards))
    assert obs.apy_base_pct == pytest.approx(4.120798108290647)
    assert obs.apy_reward_pct == pytest.approx(1.0)
    assert obs.apy_pct == pytest.approx(5.120798108290647)
    assert obs.reward_tokens == ["0xReward"]


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ({"supplyApy": "0.04"}, "Expected `float`, got `str`"),
        ({"supplyApy": None}, "Expected `float`, got `null`"),
        ({"supplyApy": -0.01}, "negative supply APY"),
        ({"supplyApy": 20000.0, "netSupplyApy": 20000.0}, "<= 1000000.0"),
        ({"supplyAssets": 1.5}, "Expected `int | str`"),
        ({"supplyAssets": "12abc"}, "base units"),
        ({"supplyAssets": "-5"}, "base units"),
        ({"timestamp": 1786701181000}, "not between"),  # milliseconds as seconds
        ({"timestamp": 0}, "not between"),
        ({"timestamp": 1796701181}, "not between"),  # after the fetch
        ({"utilization": 1.7}, "not a share"),
    ],
)
def test_bad_states_are_rejected(state: dict[str, Any], reason: str) -> None:
    assert reason in rejection(morpho.transform, _changed(**state)).reason


def test_markets_without_state_or_collateral_are_rejected() -> None:
    item = body_of(SOURCE, PAGE)["data"]["markets"]["items"][0]
    assert "no state" in rejection(morpho.transform, _market({**item, "state": None})).reason
    idle = {**item, "collateralAsset": None}
    assert "idle market" in rejection(morpho.transform, _market(idle)).reason
    missing = {k: v for k, v in item.items() if k != "marketId"}
    assert "marketId" in rejection(morpho.transform, _market(missing)).reason


def test_the_same_record_gives_the_same_observations() -> None:
    records = _records()
    assert [observe(morpho.transform, r) for r in records] == [
        observe(morpho.transform, r) for r in records
    ]


# --- the request, paging and errors through fetch_json ----------------------------

ENDPOINT = collector.ENDPOINTS[0]
CFG = collector.Config(attempts=2, wait_initial_s=0, wait_max_s=0)
URL = "https://api.morpho.org/graphql"


def _client(*answers: httpx.Response, seen: list[httpx.Request]) -> httpx.AsyncClient:
    replies = iter(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(replies)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def _ok(content: bytes) -> httpx.Response:
    return httpx.Response(200, content=content, headers={"content-type": "application/json"})


def test_the_query_asks_for_what_the_recorded_answer_holds() -> None:
    assert ENDPOINT.method == "POST"
    assert ENDPOINT.json["variables"] == {
        "first": 100,
        "skip": 0,
        "chainIds": [1, 8453, 10, 999, 747474, 42161, 130, 137, 143],
    }
    item = body_of(SOURCE, PAGE)["data"]["markets"]["items"][0]
    for field in ("marketId", "lltv", "supplyApy", "netSupplyApy", "supplyAssetsUsd"):
        assert field in collector.SNAPSHOT_QUERY
    assert set(item) - {
        "irmAddress",
        "creationTimestamp",
        "reallocatableLiquidityAssets",
        "oracle",
        "warnings",
    } <= set(collector.SNAPSHOT_QUERY.replace("{", " ").replace("}", " ").split())
    assert collector.MAX_PAGES * collector.PAGE == 5000


async def test_graphql_errors_fail_the_fetch() -> None:
    bad = json.dumps(
        {
            "errors": [
                {
                    "message": 'Cannot query field "x" on type "Market"',
                    "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
                }
            ]
        }
    ).encode()
    seen: list[httpx.Request] = []
    async with _client(_ok(bad), seen=seen) as client:
        with pytest.raises(UpstreamRejected, match="GRAPHQL_VALIDATION_FAILED"):
            await fetch_json(client, URL, CFG, request=ENDPOINT.request)
    assert len(seen) == 1  # a bad query is not retried


async def test_rate_limits_are_retried() -> None:
    limited = json.dumps(
        {"errors": [{"message": "Too many requests, rate limit exceeded"}]}
    ).encode()
    for first in (httpx.Response(429, headers={"retry-after": "0"}), _ok(limited)):
        seen: list[httpx.Request] = []
        async with _client(first, _ok(recorded(SOURCE, PAGE)), seen=seen) as client:
            fetched = await fetch_json(client, URL, CFG, request=ENDPOINT.request)
        assert len(fetched.body["data"]["markets"]["items"]) == 3
        assert [r.url.path for r in seen] == ["/graphql", "/graphql"]
        assert json.loads(seen[0].content)["variables"]["skip"] == 0


async def test_full_pages_ask_for_the_next_skip() -> None:
    page = body_of(SOURCE, PAGE)
    items = page["data"]["markets"]["items"]
    full = {
        "data": {
            "markets": {"items": [{**items[i % 3], "marketId": f"0x{i:064x}"} for i in range(100)]}
        }
    }
    seen: list[httpx.Request] = []
    async with _client(
        _ok(json.dumps(full).encode()), _ok(recorded(SOURCE, PAGE)), seen=seen
    ) as client:
        records = [r async for r in collector.collect(client, CFG, "run")]
    assert [json.loads(r.content)["variables"]["skip"] for r in seen] == [0, 100]
    assert all(r.method == "POST" and str(r.url) == URL for r in seen)
    assert len(records) == 103


# --- MetaMorpho vaults (a built documented-shape response) -------------------------

VAULTS = "graphql-vaults-documented-shape.json"
STEAK = "0xBEEF01735c132Ada46AA9aA4c54623cAA92A64CB"
MOONWELL = "0xc1256Ae5FF1cf2719D4937adb3bbCCab2E00A2Ca"


def _vaults() -> dict[str, Any]:
    records = records_of(SOURCE, VAULTS, fetched_at=LATER)
    return {r.native_id: observe(morpho.transform, r) for r in records}


def test_vaults_pinned_and_named_as_defillama_does() -> None:
    by_id = _vaults()
    assert list(by_id) == [f"vault-1-{STEAK}-steakUSDC", f"vault-8453-{MOONWELL}-mwUSDC"]
    steak = by_id[f"vault-1-{STEAK}-steakUSDC"]
    # netApy 0.0462 (a fraction, after the 10 % fee, with rewards) x 100 = 4.62 % APY,
    # what the saver keeps; apy 0.05 = 5.00 % before the fee; base = 5.00 x (1 - 0.1)
    # = 4.50 % (<= 4.62), rewards the rest, 0.12 %. A 100x error (0.0462 % or 462 %) fails.
    assert steak.apy_pct == pytest.approx(4.62, rel=1e-12)
    assert steak.apy_gross_pct == pytest.approx(5.0)
    assert steak.apy_base_pct == pytest.approx(4.5)
    assert steak.apy_reward_pct == pytest.approx(0.12)
    assert steak.reward_tokens == ["0x58D97B57BB95320F9a05dC918Aef65434969c2B2"]
    # totalAssets 1234567890123456 USDC base units (6 decimals) = 1,234,567,890.123456 USDC.
    assert steak.tvl_tokens == pytest.approx(1234567890.123456)
    assert (steak.tvl_usd, steak.tvl_token) == (1234000000.25, "USDC")
    # DefiLlama's earnV1Pools row: symbol = vault.symbol, no poolMeta.
    assert steak.product_id == "morpho-blue:ethereum:steakusdc"
    assert (steak.protocol, steak.chain, steak.symbol) == ("morpho-blue", "Ethereum", "steakUSDC")
    assert steak.pool_meta == "Steakhouse USDC"
    assert steak.pool_id == f"vault-1-{STEAK.lower()}"
    assert steak.observed_at == datetime.fromtimestamp(1786701181, UTC)
    assert (steak.strategy, steak.venue, steak.strategy_guessed) == (
        Strategy.LENDING,
        Venue.DEFI,
        False,
    )
    moonwell = by_id[f"vault-8453-{MOONWELL}-mwUSDC"]
    # netApy 0.05202 = 6.12 % x (1 - 0.15): all of it base, no reward.
    assert moonwell.apy_pct == pytest.approx(5.202)
    assert moonwell.apy_base_pct == pytest.approx(5.202)
    assert moonwell.apy_reward_pct == pytest.approx(0.0, abs=1e-9)
    assert moonwell.product_id == "morpho-blue:base:mwusdc"
    # totalAssets as a digit string, read exactly.
    assert moonwell.tvl_tokens == float(Decimal("512345678901234") / 10**6)


def _vault(**state: Any) -> RawRecord:
    item = body_of(SOURCE, VAULTS)["data"]["vaults"]["items"][0]
    changed = {**item, "state": {**item["state"], **state}}
    return raw(SOURCE, json.dumps(changed).encode(), endpoint="/graphql", fetched_at=LATER)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ({"netApy": "0.04"}, "Expected `float`, got `str`"),
        ({"netApy": None}, "Expected `float`, got `null`"),
        ({"apy": -0.01}, "negative vault APY"),
        ({"fee": 1.0}, "fee share"),
        ({"totalAssets": "-5"}, "base units"),
        ({"timestamp": 1786701181000}, "not between"),  # milliseconds as seconds
        ({"timestamp": 1796701181}, "not between"),  # after the fetch
        ({"netApy": 20000.0}, "<= 1000000.0"),
    ],
)
def test_bad_vault_states_are_rejected(state: dict[str, Any], reason: str) -> None:
    assert reason in rejection(morpho.transform, _vault(**state)).reason


def test_a_vault_without_state_is_rejected() -> None:
    item = body_of(SOURCE, VAULTS)["data"]["vaults"]["items"][0]
    record = raw(SOURCE, json.dumps({**item, "state": None}).encode(), fetched_at=LATER)
    assert "no state" in rejection(morpho.transform, record).reason


def test_one_request_asks_for_markets_and_vaults_with_the_same_paging() -> None:
    query = ENDPOINT.json["query"]
    assert "markets(" in query
    assert "vaults(" in query
    assert query.count("first: $first") == query.count("skip: $skip") == 2
    for field in ("netApy", "totalAssetsUsd", "fee", "symbol", "name"):
        assert field in query
    markets, vaults = body_of(SOURCE, PAGE)["data"], body_of(SOURCE, VAULTS)["data"]
    body = {"data": {"markets": markets["markets"], "vaults": vaults["vaults"]}}
    items = ENDPOINT.items(body, URL)
    names = [ENDPOINT.native_id(item, i) for i, item in enumerate(items)]
    assert names[:3] == [
        f"8453-{BASE_CBBTC}-cbBTC",
        f"8453-{BASE_USDE}-USDe",
        f"1-{ETH_CBBTC}-cbBTC",
    ]
    assert names[3:] == [f"vault-1-{STEAK}-steakUSDC", f"vault-8453-{MOONWELL}-mwUSDC"]
    bad = {"data": {**body_of(SOURCE, PAGE)["data"], "vaults": {"items": {}}}}
    with pytest.raises(BadResponse, match="expected a list at"):
        ENDPOINT.items(bad, URL)


async def test_a_full_vault_page_asks_for_the_next_skip() -> None:
    vaults = body_of(SOURCE, VAULTS)["data"]["vaults"]["items"]
    full = {
        "data": {
            "markets": {"items": []},
            "vaults": {"items": [{**vaults[i % 2], "address": f"0x{i:040x}"} for i in range(100)]},
        }
    }
    seen: list[httpx.Request] = []
    async with _client(
        _ok(json.dumps(full).encode()), _ok(recorded(SOURCE, VAULTS)), seen=seen
    ) as client:
        records = [r async for r in collector.collect(client, CFG, "run")]
    assert [json.loads(r.content)["variables"]["skip"] for r in seen] == [0, 100]
    assert len(records) == 102


# --- history (built documented-shape responses) ------------------------------------

MARKET_ENTITY = f"8453-{BASE_CBBTC}-cbBTC"
VAULT_ENTITY = f"vault-1-{STEAK}-steakUSDC"
MARKET_HISTORY = f"history-{MARKET_ENTITY}.json"
VAULT_HISTORY = f"history-{VAULT_ENTITY}.json"


async def _fetch_history(entity: str, answer: bytes, window: Window) -> tuple[Any, list[Any]]:
    seen: list[httpx.Request] = []
    async with _client(_ok(answer), seen=seen) as client:
        records = await fetch_history(
            client, CFG, collector.HISTORY, source=SOURCE, entity=entity, run_id="r", window=window
        )
    (request,) = seen
    return request, records


async def test_market_history_is_posted_with_the_market_and_window() -> None:
    window = Window(datetime(2026, 8, 1, tzinfo=UTC), datetime(2026, 8, 15, tzinfo=UTC))
    request, records = await _fetch_history(MARKET_ENTITY, recorded(SOURCE, MARKET_HISTORY), window)
    assert (request.method, str(request.url)) == ("POST", URL)
    sent = json.loads(request.content)
    assert sent["variables"] == {
        "marketId": BASE_CBBTC,
        "chainId": 8453,
        "options": {"startTimestamp": 1785542400, "endTimestamp": 1786752000, "interval": "DAY"},
    }
    assert "marketById(marketId: $marketId, chainId: $chainId)" in sent["query"]
    assert "supplyApy(options: $options)" in sent["query"]
    assert {r.endpoint for r in records} == {f"/graphql#{MARKET_ENTITY}"}
    assert collector.HISTORY.entity_of(records[0].endpoint) == MARKET_ENTITY
    assert [r.native_id for r in records] == ["1786492800", "1786579200", "1786665600"]


async def test_vault_history_is_posted_with_the_vault() -> None:
    request, records = await _fetch_history(VAULT_ENTITY, recorded(SOURCE, VAULT_HISTORY), Window())
    sent = json.loads(request.content)
    assert sent["variables"]["address"] == STEAK
    assert sent["variables"]["chainId"] == 1
    # An open window: from Morpho Blue's launch to now.
    assert sent["variables"]["options"]["startTimestamp"] == int(morpho.LAUNCHED.timestamp())
    assert "vaultByAddress(address: $address, chainId: $chainId)" in sent["query"]
    assert "netApy(options: $options)" in sent["query"]
    assert len(records) == 2


async def test_an_unknown_market_is_a_bad_response() -> None:
    with pytest.raises(BadResponse, match="knows no"):
        await _fetch_history(MARKET_ENTITY, b'{"data":{"value":null}}', Window())


@pytest.mark.parametrize(
    "entity", [BASE_CBBTC, f"8453-{BASE_CBBTC}-a/b", "vault-1-0xabc-steakUSDC", ".."]
)
def test_an_entity_that_names_no_market_or_vault_is_not_requested(entity: str) -> None:
    with pytest.raises(UnsafeId):
        collector.HISTORY.url_path(entity)


def _history(name: str, entity: str, fetched_at: datetime = LATER) -> list[RawRecord]:
    points = collector.HISTORY.points(body_of(SOURCE, name), entity, URL, b"")
    return list(
        history_records(
            points,
            source=SOURCE,
            endpoint=collector.HISTORY.endpoint(entity),
            fetched_at=fetched_at,
            run_id="r",
            lenient=False,
        )
    )


def test_history_points_are_the_snapshots_products_at_their_own_time() -> None:
    snapshot = {o.pool_id: o for o in (observe(morpho.transform, r) for r in _records())}
    market = snapshot[BASE_CBBTC]
    obs = [observe(morpho.transform, r) for r in _history(MARKET_HISTORY, MARKET_ENTITY)]
    # y 0.04120798108290647 (a fraction) x 100 = 4.12 % supply APY, as the snapshot's.
    assert obs[-1].apy_pct == pytest.approx(4.120798108290647)
    assert obs[0].apy_pct == pytest.approx(3.982)
    assert [o.observed_at for o in obs] == [
        datetime(2026, 8, 12, tzinfo=UTC),
        datetime(2026, 8, 13, tzinfo=UTC),
        datetime(2026, 8, 14, tzinfo=UTC),
    ]
    for o in obs:
        assert (o.product_id, o.pool_id, o.chain, o.symbol) == (
            market.product_id,
            market.pool_id,
            market.chain,
            market.symbol,
        )
    steak = _vaults()[VAULT_ENTITY]
    (_, last) = [observe(morpho.transform, r) for r in _history(VAULT_HISTORY, VAULT_ENTITY)]
    assert last.apy_pct == pytest.approx(4.62)
    assert (last.product_id, last.pool_id) == (steak.product_id, steak.pool_id)
    # The same records transformed twice give the same observations (same keys).
    records = _history(MARKET_HISTORY, MARKET_ENTITY)
    assert [observe(morpho.transform, r) for r in records] == [
        observe(morpho.transform, r) for r in records
    ]


def _point(x: Any, y: Any, entity: str = MARKET_ENTITY) -> RawRecord:
    return RawRecord(
        source=SOURCE,
        endpoint=collector.HISTORY.endpoint(entity),
        fetched_at=LATER,
        run_id="r",
        kind="history",
        native_id=str(x),
        payload=json.dumps({"x": x, "y": y}).encode(),
    )


@pytest.mark.parametrize(
    ("x", "y", "reason"),
    [
        (1796701181, 0.04, "after its fetch"),
        (1600000000, 0.04, "before Morpho Blue"),
        (1786665600, None, "no APY"),
        (1786665600, -0.01, "negative APY"),
        (1786665600, "0.04", "Expected `float | null`, got `str`"),
        (1786665600000, 0.04, "unreadable point time"),  # milliseconds
    ],
)
def test_bad_history_points_are_rejected(x: Any, y: Any, reason: str) -> None:
    assert reason in rejection(morpho.transform, _point(x, y)).reason


def test_a_history_of_no_market_is_rejected() -> None:
    assert (
        "history of no market" in rejection(morpho.transform, _point(1786665600, 0.04, "x")).reason
    )
