"""The columnar /pools snapshot path gives exactly the rows and rejections of ``transform``."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import msgspec
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import raw
from tests.transforms import records_of
from tests.transforms.test_defillama_yields import POOL_FILES, categories, real_item
from transforms import Context
from transforms import defillama_yields as yields
from yieldstream.contracts import RawRecord
from yieldstream.registry import Source, source
from yieldstream.transformer import transform_table

SOURCE = "defillama-yields"
MAPLE = "43641cf5-a92e-416b-bce9-27113d3c0db6"


def per_record() -> Source:
    return dataclasses.replace(source(SOURCE), columns=None)


def assert_same(records: list[RawRecord], ctx: Context) -> int:
    """Columnar and per-record outcomes agree; the number of rows stored."""
    table, rejected = transform_table(records, source(SOURCE), ctx)
    expected, expected_rejected = transform_table(records, per_record(), ctx)
    assert table.schema.equals(expected.schema)
    assert table.to_pylist() == expected.to_pylist()
    assert table.equals(expected)
    shown = [(r.native_id, r.stage, r.reason) for r in rejected]
    assert shown == [(r.native_id, r.stage, r.reason) for r in expected_rejected]
    return table.num_rows


def record(item: Any, n: int, **kwargs: Any) -> RawRecord:
    payload = item if isinstance(item, bytes) else json.dumps(item).encode()
    return raw(SOURCE, payload, endpoint="/pools", native_id=f"n{n}", **kwargs)


def test_the_source_transforms_snapshots_as_columns() -> None:
    assert source(SOURCE).columns is yields.columns


def test_every_recorded_pools_response_gives_the_same_rows() -> None:
    for name in POOL_FILES:
        records = records_of(SOURCE, name)
        for ctx in (Context(), categories()):
            assert assert_same(records, ctx) == len(records)
            _, taken = yields.snapshot_columns(records, ctx)
            assert taken == list(range(len(records)))


def edge_items() -> list[Any]:
    item = real_item(MAPLE)
    return [
        item,
        {**item, "apy": None},  # apy from apyBase + apyReward
        {**item, "apy": None, "apyBase": None, "apyReward": None},  # TVL alone
        {**item, "apy": None, "apyBase": None, "apyReward": None, "tvlUsd": None},
        {**item, "apy": 2e6},
        {**item, "apyBase": -100.5},
        {**item, "apy": None, "apyBase": 6e5, "apyReward": 6e5},  # the sum is out of range
        {**item, "tvlUsd": -1},
        {**item, "tvlUsd": 2e15},
        {**item, "tvlUsd": "12"},
        {**item, "pool": ""},
        {**item, "pool": "p" * 513},
        {**item, "chain": ""},
        {**item, "project": None},
        {k: v for k, v in item.items() if k != "symbol"},
        {**item, "ilRisk": "YES", "exposure": "multi"},
        {**item, "ilRisk": None, "exposure": None, "symbol": "USDC-WETH"},
        {**item, "rewardTokens": [None, "", "0xabc"], "underlyingTokens": []},
        {**item, "rewardTokens": None, "underlyingTokens": None},
        {**item, "stablecoin": "yes"},
        {**item, "outlier": None},
        {**item, "poolMeta": "7d lockup"},
        {**item, "il7d": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
        [1, 2],
        b'{"pool": "x", "apy": NaN}',
        b"{not json",
        {**item, "apyBase": 1e400},
        item,  # the same pool again: its key twice in one batch
    ]


def test_edge_cases_give_the_same_rows_and_rejections() -> None:
    deep: dict[str, Any] = {}
    for _ in range(70):
        deep = {"x": deep}
    items = [*edge_items(), {**real_item(MAPLE), "il7d": deep}]
    records = [record(item, n) for n, item in enumerate(items)]
    for ctx in (Context(), categories()):
        stored = assert_same(records, ctx)
        assert 0 < stored < len(records)


def test_fetch_times_in_other_zones_floor_to_the_same_utc_hour() -> None:
    item = real_item(MAPLE)
    east = timezone(timedelta(hours=5, minutes=30))
    times = [
        datetime(2026, 3, 12, 12, 34, tzinfo=UTC),
        datetime(2026, 3, 12, 18, 4, tzinfo=east),
        datetime(2026, 3, 12, 13, 0, tzinfo=UTC),
    ]
    records = [record({**item, "pool": f"p{n}"}, n, fetched_at=t) for n, t in enumerate(times)]
    assert assert_same(records, Context()) == 3


def test_a_record_with_a_problem_and_history_points_go_their_own_ways() -> None:
    item = real_item(MAPLE)
    listing = MappingProxyType({MAPLE: orjson.dumps(item)})
    history = [
        RawRecord(
            source=SOURCE,
            endpoint=f"/chart/{MAPLE}",
            fetched_at=datetime(2026, 3, 12, 12, tzinfo=UTC),
            run_id="test",
            kind="history",
            native_id=f"h{n}",
            payload=orjson.dumps({"timestamp": f"2026-03-0{n + 1}T00:00:00.000Z", "apy": 1.5}),
        )
        for n in range(3)
    ]
    snapshot = [record({**item, "pool": f"p{n}"}, n) for n in range(3)]
    troubled = msgspec.structs.replace(snapshot[1], problem="a repeated id")
    records = [snapshot[0], history[0], troubled, *history[1:], snapshot[2]]
    assert assert_same(records, Context(listing=listing)) == 5


_names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
_figures = st.one_of(
    st.none(),
    st.integers(-200, 10**16),
    st.floats(-200.0, 2e6, allow_nan=False),
    st.sampled_from([0, 0.0, -0.0, 1e6, -100.0, 1e15]),
)
_tokens = st.one_of(st.none(), st.lists(st.one_of(st.none(), st.sampled_from(["", "0xa", "So1"]))))
_items = st.fixed_dictionaries(
    {
        "pool": st.one_of(_names, st.sampled_from(["p1", "p2"])),
        "chain": st.one_of(_names, st.sampled_from(["Ethereum", "Base"])),
        "project": st.sampled_from(["aave-v3", "lido", "uniswap-v3", "maple", "nobody"]),
        "symbol": st.one_of(_names, st.sampled_from(["USDC", "STETH", "USDC-WETH", "WETH"])),
        "tvlUsd": _figures,
        "apy": _figures,
        "apyBase": _figures,
        "apyReward": _figures,
        "rewardTokens": _tokens,
        "underlyingTokens": _tokens,
        "stablecoin": st.one_of(st.none(), st.booleans()),
        "ilRisk": st.sampled_from([None, "yes", "no", "Yes"]),
        "exposure": st.sampled_from([None, "single", "multi", "Multi"]),
        "poolMeta": st.one_of(st.none(), _names, st.just("staked")),
        "outlier": st.one_of(st.none(), st.booleans()),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_items, min_size=1, max_size=12))
def test_any_items_give_the_same_rows_and_rejections(items: list[dict[str, Any]]) -> None:
    records = [record(item, n) for n, item in enumerate(items)]
    for ctx in (Context(), categories()):
        assert_same(records, ctx)
