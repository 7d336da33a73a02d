"""History endpoints: recorded responses -> history records -> observations.

The records are made by each source's ``HISTORY`` from the recorded real responses
(``/chart/{pool}``, ``/protocol/{slug}``, Lido ``/apr/sma``), as ``backfill`` makes
them; the listing items come from the recorded ``/pools`` and ``/protocols``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import msgspec
import orjson
import pytest

from ingest import defillama_protocols as protocols_ingest
from ingest._history import History, Window
from ingest._http import dump_item
from sinks.tables import observations_table
from tests.conftest import FETCHED_AT, recorded
from tests.transforms import body_of
from transforms import Context, apply
from transforms import defillama_protocols as protocols
from transforms import defillama_yields as pools
from yieldstream.contracts import Observation, RawRecord, Rejection, Strategy
from yieldstream.errors import BadResponse
from yieldstream.registry import source
from yieldstream.transformer import transform_table

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
POOL = "747c1d2a-c668-4682-b9f9-296708a3dd90"  # a pool of the recorded /pools sample
CHART = recorded("defillama-yields", "chart-d829b642-from-cn-doc.json")
ALL_TIME = Window()


def history_records(
    name: str, body: Any, entity: str, window: Window = ALL_TIME, fetched_at: datetime = NOW
) -> list[RawRecord]:
    """What ``backfill`` makes of one entity's history response."""
    history = source(name).history
    assert isinstance(history, History)
    endpoint = history.endpoint(entity)
    return [
        RawRecord(
            source=name,
            endpoint=endpoint,
            fetched_at=fetched_at,
            run_id="test",
            kind="history",
            native_id=point.native_id,
            payload=dump_item(point.item, False),
        )
        for point in history.points(body, entity, endpoint, b"")
        if window.holds(point.moment)
    ]


def listing(name: str, file: str, key: str) -> dict[str, bytes]:
    return {str(item[key]): orjson.dumps(item) for item in items_of(name, file)}


def items_of(name: str, file: str) -> list[dict[str, Any]]:
    body = body_of(name, file)
    return list(body["data"] if isinstance(body, dict) else body)


POOL_LISTING = listing("defillama-yields", "pools-2records-from-cn-doc.json", "pool")
PROTOCOL_LISTING = listing(
    "defillama-protocols", "protocols-rows-onchain-analytics-first6.json", "slug"
)
CATEGORIES = {"lido": "Liquid Staking", "aave-v3": "Lending"}


def run(records: list[RawRecord], ctx: Context) -> tuple[list[Observation], list[Rejection]]:
    transform = source(records[0].source).transform
    observations: list[Observation] = []
    rejections: list[Rejection] = []
    for record in records:
        result = apply(transform, record, ctx)
        if isinstance(result, Rejection):
            rejections.append(result)
        else:
            observations.extend(result)
    return observations, rejections


def test_a_recorded_chart_becomes_the_pools_daily_history() -> None:
    records = history_records("defillama-yields", orjson.loads(CHART), POOL)
    points = orjson.loads(CHART)["data"]
    assert [r.native_id for r in records] == [p["timestamp"] for p in points]
    observations, rejections = run(records, Context(listing=POOL_LISTING))
    assert not rejections
    item = orjson.loads(POOL_LISTING[POOL])
    for obs, point in zip(observations, points, strict=True):
        stamp = datetime.fromisoformat(point["timestamp"])
        assert obs.pool_id == POOL
        assert obs.observed_at == stamp.replace(minute=0, second=0, microsecond=0)
        assert (obs.apy_pct, obs.apy_base_pct, obs.apy_reward_pct, obs.tvl_usd) == (
            point["apy"],
            point["apyBase"],
            point["apyReward"],
            point["tvlUsd"],
        )
        # What a point does not say comes from the pool's /pools item.
        assert (obs.protocol, obs.chain, obs.symbol) == (
            item["project"],
            item["chain"],
            item["symbol"],
        )
    # The recorded pool earned 2,624 % on its first day: kept, it is in the data.
    assert observations[0].apy_pct == pytest.approx(2624.11364)


def test_a_chart_point_without_its_pool_listing_is_rejected_with_the_reason() -> None:
    records = history_records("defillama-yields", orjson.loads(CHART), POOL)
    observations, rejections = run(records, Context())
    assert not observations
    assert len(rejections) == len(records)
    assert "is in no /pools listing" in rejections[0].reason
    assert rejections[0].stage == "validate"


@pytest.mark.parametrize(
    ("categories", "guessed", "category"),
    [({"lido": "Liquid Staking"}, False, "Liquid Staking"), ({}, True, None)],
    ids=["with-categories", "without"],
)
def test_chart_points_are_classified_as_the_pools_snapshot_is(
    categories: dict[str, str], guessed: bool, category: str | None
) -> None:
    # The listing's lido stETH item: staking, from its category or guessed from its
    # fields (a single stETH), on every point alike.
    ctx = Context(MappingProxyType({pools.PROTOCOLS: categories}), POOL_LISTING)
    observations, rejections = run(
        history_records("defillama-yields", orjson.loads(CHART), POOL), ctx
    )
    assert not rejections
    got = {(o.strategy, o.strategy_guessed, o.category) for o in observations}
    assert got == {(Strategy.STAKING, guessed, category)}


@pytest.mark.parametrize(
    ("point", "reason"),
    [
        ({"timestamp": "yesterday", "apy": 1.0}, "unreadable point time 'yesterday'"),
        ({"timestamp": "2025-05-14T23:01:10", "apy": 1.0}, "unreadable point time"),
        ({"timestamp": "2031-01-01T00:00:00.000Z", "apy": 1.0}, "is after its fetch"),
        ({"timestamp": "2025-05-14T23:01:10.331Z"}, "neither an APY nor a TVL"),
        ({"timestamp": "2025-05-14T23:01:10.331Z", "apy": "9"}, "undecodable item"),
        ({"timestamp": "2025-05-14T23:01:10.331Z", "apy": 2e7}, "<= 1000000.0"),
    ],
)
def test_absurd_chart_points_are_rejected_one_by_one(point: dict[str, Any], reason: str) -> None:
    body = {"status": "success", "data": [point, orjson.loads(CHART)["data"][0]]}
    observations, rejections = run(
        history_records("defillama-yields", body, POOL), Context(listing=POOL_LISTING)
    )
    assert len(observations) == 1  # the good point next to it is stored
    assert len(rejections) == 1
    assert reason in rejections[0].reason


def test_a_window_keeps_the_points_in_it_and_those_whose_time_is_unreadable() -> None:
    body = orjson.loads(CHART)
    body["data"].append({"timestamp": None, "apy": 1.0})
    window = Window(datetime(2025, 5, 16, tzinfo=UTC), datetime(2025, 5, 18, tzinfo=UTC))
    records = history_records("defillama-yields", body, POOL, window)
    assert [r.native_id[:10] for r in records] == ["2025-05-16", "2025-05-17", "#8"]


def test_a_chart_response_of_the_wrong_shape_is_a_bad_response() -> None:
    with pytest.raises(BadResponse, match="expected a list at"):
        history_records("defillama-yields", {"status": "error", "data": "busy"}, POOL)


UNISWAP = orjson.loads(recorded("defillama-tvl", "protocol-uniswap.onchain-analytics.json"))
RAYDIUM = orjson.loads(recorded("defillama-tvl", "protocol-raydium.onchain-analytics.json"))


@pytest.mark.parametrize(
    ("key", "counted"),
    [
        ("Ethereum", True),
        ("Polygon zkEVM", True),
        ("OP Mainnet", True),
        ("Ethereum-borrowed", False),
        ("Solana-staking", False),
        ("BSC-pool2", False),
        ("borrowed", False),
        ("staking", False),
        ("pool2", False),
        ("doublecounted", False),
        ("Ethereum-Vesting", False),
    ],
)
def test_only_plain_chain_series_count_towards_the_total(key: str, counted: bool) -> None:
    assert protocols_ingest.is_chain(key) is counted


def protocol_listing(slug: str, category: str = "Dexs") -> dict[str, bytes]:
    return {slug: orjson.dumps({"slug": slug, "name": slug.title(), "category": category})}


def test_protocol_history_counts_each_chain_once() -> None:
    body = RAYDIUM["raw"]  # the real response, unwrapped from its recording envelope
    records = history_records("defillama-protocols", body, "raydium")
    observations, rejections = run(records, Context(listing=protocol_listing("raydium")))
    assert not rejections
    series = {o.pool_id for o in observations}
    # Solana-staking and staking are outside the default TVL; Orderly has no points.
    assert series == {"raydium", "raydium:Solana"}
    total = {o.observed_at: o.tvl_usd for o in observations if o.pool_id == "raydium"}
    solana = {o.observed_at: o.tvl_usd for o in observations if o.pool_id == "raydium:Solana"}
    assert total == solana  # a one-chain protocol: its total is its chain
    assert [p["totalLiquidityUSD"] for p in body["tvl"]] == list(total.values())
    assert all(o.strategy is Strategy.FARMING for o in observations)  # Dexs


def test_a_many_chain_protocols_chains_add_up_to_its_total() -> None:
    body = UNISWAP["raw"]
    observations, rejections = run(
        history_records("defillama-protocols", body, "uniswap"),
        Context(listing=protocol_listing("uniswap")),
    )
    assert not rejections
    chains = {o.chain for o in observations if o.pool_id != "uniswap"}
    assert len(chains) == 48  # every chainTvls key is a plain chain here
    for moment in {o.observed_at for o in observations}:
        at = [o for o in observations if o.observed_at == moment]
        total = next(o.tvl_usd for o in at if o.pool_id == "uniswap")
        parts = sum(o.tvl_usd or 0.0 for o in at if o.pool_id != "uniswap")
        assert parts == pytest.approx(total, rel=1e-6)  # DefiLlama rounds each part


def test_a_long_recorded_tvl_series_has_one_row_a_day() -> None:
    body = orjson.loads(recorded("defillama-tvl", "protocol-marinade-liquid-staking.bma-d.json"))
    records = history_records("defillama-protocols", body, "marinade-liquid-staking")
    assert len(records) == len(body["tvl"]) == 1571
    observations, rejections = run(
        records, Context(listing=protocol_listing("marinade-liquid-staking", "Liquid Staking"))
    )
    assert not rejections
    assert len({o.observed_at for o in observations}) == 1571
    assert all(o.pool_id == "marinade-liquid-staking" for o in observations)
    assert all(o.strategy is Strategy.STAKING for o in observations)


def test_protocol_history_uses_the_protocols_listing_row() -> None:
    row = orjson.loads(PROTOCOL_LISTING["lido"])
    body = {"tvl": [{"date": 1700000000, "totalLiquidityUSD": 1.5e10}], "chainTvls": {}}
    observations, _ = run(
        history_records("defillama-protocols", body, "lido"), Context(listing=PROTOCOL_LISTING)
    )
    (obs,) = observations
    snapshot = protocols.transform(
        RawRecord(
            source="defillama-protocols",
            endpoint="/protocols",
            fetched_at=FETCHED_AT,
            run_id="t",
            kind="snapshot",
            native_id="lido",
            payload=PROTOCOL_LISTING["lido"],
        ),
        Context(),
    )
    assert isinstance(snapshot, list)
    # The same pool, chain and classification as the snapshot rows it continues.
    same = ("pool_id", "protocol", "chain", "symbol", "strategy", "category", "pool_meta")
    assert [getattr(obs, f) for f in same] == [getattr(snapshot[0], f) for f in same]
    assert obs.category == row["category"]
    assert obs.tvl_usd == 1.5e10


def test_lido_sma_points_are_history_records_of_the_same_transform() -> None:
    body = body_of("lido", "apr-sma-from-mcp-test.json")
    records = history_records("lido", body, "steth")
    assert len(records) == 8
    observations, rejections = run(records, Context())
    assert not rejections
    first = body["data"]["aprs"][0]
    assert observations[0].observed_at == datetime.fromtimestamp(first["timeUnix"], UTC)


def test_history_flooring_matches_the_snapshot_of_the_same_hour() -> None:
    """A chart point and the daemon's snapshot fetched in that hour share one key."""
    point = orjson.loads(CHART)["data"][0]
    fetched = datetime.fromisoformat(point["timestamp"]) + timedelta(minutes=5)
    (chart_record,) = history_records(
        "defillama-yields", {"data": [point]}, POOL, fetched_at=fetched
    )
    snapshot = msgspec.structs.replace(
        chart_record, kind="snapshot", endpoint="/pools", payload=POOL_LISTING[POOL]
    )
    from_history = pools.transform(chart_record, Context(listing=POOL_LISTING))
    from_snapshot = pools.transform(snapshot, Context())
    assert isinstance(from_history, list)
    assert isinstance(from_snapshot, list)
    assert from_history[0].observed_at == from_snapshot[0].observed_at


MIXED_POINTS: list[Any] = [
    {"timestamp": "yesterday", "apy": 1.0},
    {"timestamp": "2025-05-14T23:01:10", "apy": 1.0},  # no zone
    {"timestamp": "2025-05-14T23:01:10+00:00", "apy": 1.5},  # an offset, not Z
    {"timestamp": "2025-05-14T22:01:10.123456789Z", "apy": 1.5},  # nanoseconds
    {"timestamp": "2031-01-01T00:00:00.000Z", "apy": 1.0},
    {"timestamp": "2025-05-13T23:01:10.331Z"},
    {"timestamp": "2025-05-12T23:01:10.331Z", "apy": "9"},
    {"timestamp": "2025-05-11T23:01:10.331Z", "apy": 2e7},
    {"timestamp": "2025-05-10T23:01:10.331Z", "apyBase": -101.0, "tvlUsd": 5},
    {"timestamp": "2025-05-09T23:01:10.331Z", "tvlUsd": -1},
    {"timestamp": "2025-05-08T23:01:10.331Z", "apyBase": 1.5, "apyReward": 2},
    {"timestamp": "2025-05-07T23:01:10.1Z", "tvlUsd": 7, "il7d": [[[[[[1]]]]]]},
    {"timestamp": None, "apy": 1.0},
    {"apy": 1.0},
    [1, 2],
]


def test_the_columnar_chart_transform_stores_and_rejects_what_transform_does() -> None:
    body = orjson.loads(CHART)
    body["data"] = [*body["data"][:3], *MIXED_POINTS, *body["data"][3:]]
    records = history_records("defillama-yields", body, POOL)
    records += history_records("defillama-yields", orjson.loads(CHART), "not-listed")
    src = source("defillama-yields")
    ctx = Context(
        MappingProxyType({"defillama-protocols": MappingProxyType(CATEGORIES)}),
        MappingProxyType(POOL_LISTING),
    )
    table, rejections = transform_table(records, src, ctx)
    observations, expected = run(records, ctx)
    assert table.equals(observations_table(observations))
    assert len(observations) == len(orjson.loads(CHART)["data"]) + 4
    shown = [(r.native_id, r.stage, r.reason) for r in rejections]
    assert sorted(shown) == sorted((r.native_id, r.stage, r.reason) for r in expected)
    _, taken = pools.history_columns(records, ctx)
    assert len(taken) == len(orjson.loads(CHART)["data"]) + 2  # the rest one by one


def test_a_listing_item_that_is_no_pool_rejects_its_points_as_transform_does() -> None:
    records = history_records("defillama-yields", orjson.loads(CHART), POOL)
    ctx = Context(listing={POOL: orjson.dumps({"pool": POOL, "chain": "", "project": "x"})})
    table, rejections = transform_table(records, source("defillama-yields"), ctx)
    assert table.num_rows == 0
    assert [r.reason for r in rejections] == [r.reason for r in run(records, ctx)[1]]
