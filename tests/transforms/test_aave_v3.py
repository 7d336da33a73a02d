"""Aave v3 reserves (AaveKit GraphQL) -> lending observations; its supply-APY history.

The recorded response is BUILT FROM THE DOCUMENTED SHAPE (the schema of
aave/aave-sdk ``packages/graphql``), not captured: no real sample was found. Its
values are illustrative, so the pinned figures below pin the arithmetic (RAY ->
fraction -> percent), not a market's live rate.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest

from ingest import aave_v3 as collector
from ingest._history import Window, fetch_history, history_records
from ingest._http import fetch_json
from tests.conftest import raw, recorded
from tests.transforms import body_of, observe, records_of, rejection
from transforms import Context, aave_v3
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import UnsafeId, UpstreamRejected, UpstreamUnavailable

SOURCE = "aave-v3"
MARKETS = "graphql-markets-documented-shape.json"
CORE = "0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
USDC_RESERVE = f"1-{CORE}-{USDC}-USDC"
HISTORY = f"history-{USDC_RESERVE}.json"
BASE = "https://api.v3.aave.com"
FETCHED = datetime(2026, 12, 1, 12, 34, 56, tzinfo=UTC)


def reserves() -> dict[str, Any]:
    return {r.native_id: observe(aave_v3.transform, r) for r in records_of(SOURCE, MARKETS)}


def test_usdc_supply_apy_pinned() -> None:
    obs = reserves()[USDC_RESERVE]
    # supplyInfo.apy: raw 41234567890123456789012345 / 1e27 = 0.041234567890123456789012345
    # (the fraction, = value), x 100 = 4.1234567890123... % APY (formatted "4.12"). Aave
    # publishes an APY: no compounding is applied. 100x (412 %, 0.0412 %) fails here.
    assert obs.apy_pct == pytest.approx(4.1234567890123457, abs=1e-12)
    assert obs.apy_base_pct == obs.apy_pct
    assert obs.apy_reward_pct == 0.0
    # borrowInfo.apy 0.0555... -> 5.5556 %; utilizationRate 0.8312 -> 83.12 %
    assert obs.apy_borrow_pct == pytest.approx(5.555555555555556, abs=1e-12)
    assert obs.utilization_pct == pytest.approx(83.12, abs=1e-12)
    # size: 3210987654321098 base units / 1e6 = 3,210,987,654.321098 USDC, $3,210,665,555.66
    assert obs.tvl_tokens == 3210987654.321098
    assert (obs.tvl_usd, obs.tvl_token) == (3210665555.66, "USDC")
    assert obs.observed_at == datetime(2026, 3, 12, 12, tzinfo=UTC)  # the fetch hour
    assert (obs.strategy, obs.venue, obs.strategy_guessed) == (Strategy.LENDING, Venue.DEFI, False)
    assert (obs.protocol, obs.chain, obs.symbol, obs.category) == (
        "aave-v3",
        "Ethereum",
        "USDC",
        "Lending",
    )
    assert obs.pool_id == f"1-{CORE.lower()}-{USDC.lower()}"
    assert obs.underlying_tokens == [USDC]


def test_product_ids_are_defillamas() -> None:
    # DefiLlama's adaptor: symbol as the ERC-20 spells it, poolMeta only for the
    # Lido and EtherFi markets (src/adaptors/aave-v3/index.js).
    assert {o.product_id for o in reserves().values()} == {
        "aave-v3:ethereum:usdc",
        "aave-v3:ethereum:weth",
        "aave-v3:ethereum:weth:lido-market",
        "aave-v3:base:usdc",
    }


def test_incentives_are_the_reward_part() -> None:
    (obs,) = [o for o in reserves().values() if o.chain == "Base"]
    # base 0.05 -> 5 %, AaveSupplyIncentive extraSupplyApr 0.005 -> 0.5 %, total 5.5 %
    assert (obs.apy_base_pct, obs.apy_reward_pct) == (5.0, 0.5)
    assert obs.apy_pct == 5.5
    assert obs.reward_tokens == ["0x63706e401c06ac8513145b7687A14804d17f814b"]


def _percents(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node] if node.get("__typename") == "PercentValue" else []
        return found + [p for v in node.values() for p in _percents(v)]
    if isinstance(node, list):
        return [p for v in node for p in _percents(v)]
    return []


def test_the_three_spellings_of_each_percent_agree() -> None:
    percents = _percents(body_of(SOURCE, MARKETS))
    assert len(percents) == 13
    for p in percents:
        value = Decimal(p["value"])
        assert Decimal(p["raw"]).scaleb(-p["decimals"]) == value  # raw / 1e27 == value
        assert Decimal(p["formatted"]) == round(value * 100, 2)  # percent, 2 dp


def test_ray_strings_beyond_2_53_are_read_exactly() -> None:
    percent = aave_v3.Percent(
        raw="41234567890123456789012345", decimals=27, value="0.041234567890123456789012345"
    )
    assert aave_v3.fraction_of(percent, "x") == Decimal("0.041234567890123456789012345")
    assert 41234567890123456789012345 > 2**53


def test_a_record_transformed_twice_is_the_same() -> None:
    (rec,) = [r for r in records_of(SOURCE, MARKETS) if r.native_id == USDC_RESERVE]
    assert observe(aave_v3.transform, rec) == observe(aave_v3.transform, rec)


def test_reserves_are_flattened_and_named() -> None:
    records = records_of(SOURCE, MARKETS)
    assert [r.native_id.split("-")[0] for r in records] == ["1", "1", "1", "8453"]
    assert all(r.problem is None and r.endpoint == "/graphql" for r in records)
    item = json.loads(records[0].payload)
    assert item["market"]["name"] == "AaveV3Ethereum"  # the reserve, verbatim


def test_a_market_without_reserves_is_a_bad_response() -> None:
    from yieldstream.errors import BadResponse

    with pytest.raises(BadResponse, match="reserves list"):
        collector.ENDPOINTS[0].items({"data": {"markets": [{"name": "x"}]}}, BASE)


# --- bad reserves become rejections ------------------------------------------------


def _usdc() -> dict[str, Any]:
    reserve: dict[str, Any] = body_of(SOURCE, MARKETS)["data"]["markets"][0]["reserves"][0]
    return reserve


def _record(item: Any) -> RawRecord:
    return raw(SOURCE, json.dumps(item).encode(), endpoint="/graphql", native_id=USDC_RESERVE)


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    item = _usdc()
    node = item
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return item


APY = ("supplyInfo", "apy")


@pytest.mark.parametrize(
    ("item", "stage", "reason"),
    [
        # value written in percent (4.12) while raw says 0.0412: a unit change upstream
        (_with((*APY, "value"), "4.1234567890123456789012345"), "validate", "is not its value"),
        (_with((*APY, "formatted"), "0.04"), "validate", "formatted 0.04 % is not its value"),
        (_with((*APY, "raw"), "4.12e25"), "validate", "integer amount in base units"),
        (_with((*APY, "raw"), "-41234567890123456789012345"), "validate", "base units"),
        # 20 as a fraction is 2,000 %: absurd
        (
            _with(APY, {"raw": "2" + "0" * 28, "decimals": 27, "value": "20", "formatted": "2000"}),
            "validate",
            "above 1,000 %",
        ),
        (_with((*APY, "raw"), ["1"]), "decode", "at `$.supplyInfo.apy.raw`"),
        (_with(("supplyInfo",), None), "decode", "got `null` - at `$.supplyInfo`"),
        (_with(("size", "usd"), "lots"), "validate", "unusable reserve size"),
        (_with(("size", "usd"), "-5"), "validate", "tvl_usd"),
        ({"market": _usdc()["market"]}, "decode", "missing required field"),
    ],
)
def test_bad_reserves_are_rejected_with_a_reason(item: Any, stage: str, reason: str) -> None:
    rej = rejection(aave_v3.transform, _record(item))
    assert rej.stage == stage
    assert reason in rej.reason


def test_a_reserve_nobody_borrows_has_no_borrow_side() -> None:
    obs = observe(aave_v3.transform, _record(_with(("borrowInfo",), None)))
    assert (obs.apy_borrow_pct, obs.utilization_pct) == (None, None)


# --- GraphQL errors through fetch_json with the endpoint's check --------------------


def _client(*answers: bytes, seen: list[httpx.Request] | None = None) -> httpx.AsyncClient:
    replies = iter(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(
            200, content=next(replies), headers={"content-type": "application/json"}
        )

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


CFG = collector.Config(attempts=2, wait_initial_s=0, wait_max_s=0)
ENDPOINT = collector.ENDPOINTS[0]
LIMITED = b'{"errors":[{"message":"Too many requests, rate limit exceeded"}],"data":null}'


async def _fetch(client: httpx.AsyncClient) -> Any:
    return await fetch_json(client, BASE + ENDPOINT.path, CFG, request=ENDPOINT.request)


async def test_the_markets_query_is_posted() -> None:
    seen: list[httpx.Request] = []
    async with _client(recorded(SOURCE, MARKETS), seen=seen) as client:
        await _fetch(client)
    (request,) = seen
    assert (request.method, request.url.path) == ("POST", "/graphql")
    sent = json.loads(request.content)
    assert sent["variables"] == {"chainIds": list(aave_v3.CHAIN_NAMES)}
    assert "markets(request: { chainIds: $chainIds })" in sent["query"]


async def test_a_rate_limit_answer_is_retried() -> None:
    async with _client(LIMITED, recorded(SOURCE, MARKETS)) as client:
        fetched = await _fetch(client)
    assert len(fetched.body["data"]["markets"]) == 3


async def test_a_rate_limit_answer_every_time_is_retriable() -> None:
    async with _client(LIMITED, LIMITED) as client:
        with pytest.raises(UpstreamUnavailable, match="rate limit"):
            await _fetch(client)


async def test_a_query_error_is_fatal_and_not_retried() -> None:
    seen: list[httpx.Request] = []
    bad = b'{"errors":[{"message":"Unknown field \\"supplyInfo\\"","extensions":{"code":"BAD"}}]}'
    async with _client(bad, bad, seen=seen) as client:
        with pytest.raises(UpstreamRejected, match="Unknown field"):
            await _fetch(client)
    assert len(seen) == 1


# --- history -----------------------------------------------------------------------


def test_history_points_of_the_recorded_response() -> None:
    points = list(collector.HISTORY.points(body_of(SOURCE, HISTORY), USDC_RESERVE, BASE, b""))
    assert [p.moment for p in points] == [
        datetime(2026, 11, 27, tzinfo=UTC),
        datetime(2026, 11, 28, tzinfo=UTC),
        datetime(2026, 11, 29, tzinfo=UTC),
    ]
    assert points[0].native_id == "2026-11-27T00:00:00.000Z"


@pytest.mark.parametrize(
    ("since", "window"),
    [
        (timedelta(days=3), "LAST_WEEK"),
        (timedelta(days=20), "LAST_MONTH"),
        (timedelta(days=100), "LAST_SIX_MONTHS"),
        (timedelta(days=300), "LAST_YEAR"),
        (timedelta(days=3000), "LAST_YEAR"),
    ],
)
def test_the_shortest_window_reaching_back_is_asked_for(since: timedelta, window: str) -> None:
    assert collector.history_window(Window(FETCHED - since), FETCHED) == window
    assert collector.history_window(Window()) == "LAST_YEAR"


async def test_history_is_posted_with_the_reserve_and_window_in_variables() -> None:
    seen: list[httpx.Request] = []
    window = Window(since=datetime.now(UTC) - timedelta(days=20))
    async with _client(recorded(SOURCE, HISTORY), seen=seen) as client:
        records = await fetch_history(
            client,
            CFG,
            collector.HISTORY,
            source=SOURCE,
            entity=USDC_RESERVE,
            run_id="r",
            window=window,
        )
    (request,) = seen
    assert (request.method, request.url.host, request.url.path) == (
        "POST",
        "api.v3.aave.com",
        "/graphql",
    )
    assert request.url.query == b""
    assert request.url.fragment == ""
    sent = json.loads(request.content)
    assert sent["variables"] == {
        "request": {
            "chainId": 1,
            "market": CORE,
            "underlyingToken": USDC,
            "window": "LAST_MONTH",
        }
    }
    assert "supplyAPYHistory(request: $request)" in sent["query"]
    assert "$request: SupplyAPYHistoryRequest!" in sent["query"]
    # Records name their reserve: the backfill checkpoints per entity.
    assert {r.endpoint for r in records} == {f"/graphql#{USDC_RESERVE}"}
    assert collector.HISTORY.entity_of(records[0].endpoint) == USDC_RESERVE
    assert [r.kind for r in records] == ["history"] * 3


def test_the_history_body_of_an_open_window_asks_for_a_year() -> None:
    sent = collector.HISTORY.json
    assert sent is not None
    assert sent(Window(), USDC_RESERVE)["variables"]["request"]["window"] == "LAST_YEAR"
    assert collector.HISTORY.url_path(USDC_RESERVE) == "/graphql"


async def test_history_rate_limit_then_answer() -> None:
    async with _client(LIMITED, recorded(SOURCE, HISTORY)) as client:
        records = await fetch_history(
            client,
            CFG,
            collector.HISTORY,
            source=SOURCE,
            entity=USDC_RESERVE,
            run_id="r",
            window=Window(),
        )
    assert len(records) == 3


@pytest.mark.parametrize("entity", ["1-0xabc-0xdef-USDC", f"1-{CORE}-{USDC}-US/DC", "USDC", ".."])
def test_an_entity_that_names_no_reserve_is_not_requested(entity: str) -> None:
    with pytest.raises(UnsafeId):
        collector.HISTORY.url_path(entity)


def _history(fetched_at: datetime = FETCHED, entity: str = USDC_RESERVE) -> list[RawRecord]:
    points = collector.HISTORY.points(body_of(SOURCE, HISTORY), entity, BASE, b"")
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


def test_history_points_become_the_snapshots_product_at_their_own_time() -> None:
    snapshot = reserves()[USDC_RESERVE]
    obs = [observe(aave_v3.transform, r) for r in _history()]
    # avgRate raw 40100000000000000000000000 / 1e27 = 0.0401 -> 4.01 % APY
    assert obs[0].apy_pct == pytest.approx(4.01, abs=1e-12)
    assert [o.observed_at.day for o in obs] == [27, 28, 29]
    assert {(o.pool_id, o.product_id) for o in obs} == {(snapshot.pool_id, snapshot.product_id)}
    assert obs == [observe(aave_v3.transform, r) for r in _history()]  # idempotent


def test_a_history_of_an_extra_market_keeps_its_variant() -> None:
    lido = "0x4e033931ad43597d96D6bcc25c280717730B58B1"
    weth = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
    entity = f"1-{lido}-{weth}-WETH"
    (first, *_) = _history(entity=entity)
    assert observe(aave_v3.transform, first).product_id == "aave-v3:ethereum:weth:lido-market"
    # A market named only by the listing the backfill passes.
    other = f"1-{'0x' + '1' * 40}-{weth}-WETH"
    (first, *_) = _history(entity=other)
    assert observe(aave_v3.transform, first).product_id == "aave-v3:ethereum:weth"
    item = _usdc()
    item["market"] = {**item["market"], "name": "AaveV3EthereumHorizon"}
    ctx = Context(listing={other: json.dumps(item).encode()})
    listed = observe(aave_v3.transform, first, ctx)
    assert listed.product_id == "aave-v3:ethereum:weth:aavev3ethereumhorizon"


def test_a_history_point_after_its_fetch_is_rejected() -> None:
    (first, *_) = _history(fetched_at=datetime(2026, 11, 26, tzinfo=UTC))
    assert "after its fetch" in rejection(aave_v3.transform, first).reason


def test_a_history_of_no_reserve_is_rejected() -> None:
    (first, *_) = _history()
    bad = msgspec.structs.replace(first, endpoint="/graphql#USDC")
    assert "history of no reserve" in rejection(aave_v3.transform, bad).reason


def test_a_history_point_before_aave_v3_is_rejected() -> None:
    (first, *_) = _history()
    item = json.loads(first.payload)
    item["date"] = "2021-01-01T00:00:00Z"
    early = msgspec.structs.replace(first, payload=json.dumps(item).encode())
    assert "before Aave v3" in rejection(aave_v3.transform, early).reason
