"""Splitting a response into items: one bad item is one problem record, never more."""

from __future__ import annotations

import json

import orjson
import pytest

from ingest._http import parse_json
from ingest._items import dump_deep
from ingest._records import Endpoint
from tests.conftest import FETCHED_AT
from yieldstream.contracts import RawRecord
from yieldstream.items import MAX_DEPTH, MAX_ID_CHARS

POOLS = Endpoint("/pools", items_at=("data",), id_key="pool")


def pool(pool_id: object, **extra: object) -> dict[str, object]:
    return {"pool": pool_id, "chain": "Ethereum", "project": "aave-v3", "symbol": "USDC", **extra}


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def split(body: bytes) -> list[RawRecord]:
    parsed, lenient = parse_json(body, "application/json", "http://x/pools")
    return list(
        POOLS.records(
            parsed, source="defillama-yields", fetched_at=FETCHED_AT, run_id="r", lenient=lenient
        )
    )


def body_of(*items: bytes) -> bytes:
    return b'{"status":"success","data":[' + b",".join(items) + b"]}"


def item(pool_id: str, extra: bytes = b"") -> bytes:
    text = orjson.dumps(pool(pool_id))
    return text[:-1] + (b"," + extra if extra else b"") + b"}"


@pytest.mark.parametrize("lenient", [False, True])
def test_an_item_nested_1000_levels_is_one_problem_and_the_rest_go_on(lenient: bool) -> None:
    nan = b'"apy":NaN' if lenient else b'"apy":1.0'
    body = body_of(item("p0", b'"x":' + deep(1000)), *(item(f"p{n}", nan) for n in range(1, 8)))

    records = split(body)

    assert len(records) == 8
    first, *rest = records
    assert first.problem == f"item nested deeper than {MAX_DEPTH} levels"
    assert first.native_id == "#0"
    assert first.payload == item("p0", b'"x":' + deep(1000))  # kept whole
    assert [(r.native_id, r.problem) for r in rest] == [(f"p{n}", None) for n in range(1, 8)]


def test_depth_is_limited_at_max_depth() -> None:
    at_limit, over = item("a", b'"x":' + deep(MAX_DEPTH - 1)), item("b", b'"x":' + deep(MAX_DEPTH))
    assert [r.problem for r in split(body_of(at_limit, over))] == [
        None,
        f"item nested deeper than {MAX_DEPTH} levels",
    ]


def test_brackets_inside_strings_are_not_depth() -> None:
    text = json.dumps(pool("a", symbol="[" * 500 + "{" * 500)).encode()
    assert split(body_of(text))[0].problem is None


@pytest.mark.parametrize(
    ("id_text", "why"),
    [
        (rb'"\udfff"', "lone surrogate"),
        (rb'"a\u0000b"', "NUL"),
        (b'"' + b"x" * (MAX_ID_CHARS + 1) + b'"', "longer than"),
        (b'{"a":1}', "an object"),
        (b"[1]", "a list"),
    ],
)
def test_an_id_no_stage_can_store_is_a_problem_with_its_payload(id_text: bytes, why: str) -> None:
    bad = b'{"pool":' + id_text + b',"chain":"Ethereum","project":"x","symbol":"y"}'
    records = split(body_of(item("ok1"), bad, item("ok2")))

    assert [r.native_id for r in records] == ["ok1", "#1", "ok2"]
    assert why in (records[1].problem or "")
    assert [r.problem for r in (records[0], records[2])] == [None, None]
    records[1].payload.decode("utf-8")  # storable bytes; the bad id kept as an escape
    assert json.loads(records[1].payload)["pool"] == json.loads(id_text)


def test_a_repeated_id_keeps_the_first_and_says_so_for_each_later_one() -> None:
    first, same, other = (
        item("dup", b'"apy":1.5'),
        item("dup", b'"apy":1.5'),
        item("dup", b'"apy":9'),
    )
    records = split(body_of(first, item("solo"), same, other))

    assert [(r.native_id, r.problem is None) for r in records] == [
        ("dup", True),
        ("solo", True),
        ("#2", False),
        ("#3", False),
    ]
    assert records[2].problem == (
        "duplicate id in one response: 'dup' is item #0's, with the same values"
    )
    assert "duplicate id in one response: 'dup' is item #0's, with other values" in (
        records[3].problem or ""
    )
    assert first.decode() in (records[3].problem or "")  # the value kept, in the reason
    assert orjson.loads(records[3].payload)["apy"] == 9  # the value refused, as payload


def test_problem_names_never_clash_with_upstream_ids() -> None:
    records = split(body_of(item("#1"), item("#1"), item("#2")))
    names = [r.native_id for r in records]
    assert len(set(names)) == 3
    assert records[1].problem is not None
    assert records[2].problem is None


def test_items_without_ids_are_numbered_and_not_duplicates() -> None:
    records = split(b'{"data":[{"apy":1},{"apy":1},7,null]}')
    assert [(r.native_id, r.problem) for r in records] == [
        ("#0", None),
        ("#1", None),
        ("#2", None),
        ("#3", None),
    ]


def test_dump_deep_writes_the_json_a_recursive_encoder_cannot() -> None:
    value = {"a": [1, "x", None, True, {"b": float("nan")}], "c": orjson.loads(deep(1000))}
    text = dump_deep(value)
    assert text.startswith(b'{"a":[1,"x",null,true,{"b":NaN}],"c":[[[')
    assert text.endswith(b',"c":' + deep(1000) + b"}")
