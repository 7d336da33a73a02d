"""The item limits, and every stage that decodes an item holding to them."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import orjson
import pytest

import transforms.defillama_yields as yields
from tests.conftest import raw
from tests.yieldstream.test_wire import steth
from transforms import Context, _non_finite, apply
from yieldstream import wire
from yieldstream.contracts import FetchReport, Rejection, make_observation
from yieldstream.items import MAX_DEPTH, MAX_ID_CHARS, id_problem, too_deep, too_deep_each
from yieldstream.kafka import Placement


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


@pytest.mark.parametrize(
    ("text", "over"),
    [
        (deep(MAX_DEPTH), False),
        (deep(MAX_DEPTH + 1), True),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, True),
        (b'{"s":"' + b"[{" * 500 + b'"}', False),  # brackets in a string
        (b'{"s":"\\"' + b"[" * 500 + b'"}', False),  # ... after an escaped quote
        (b"[" + b'{"a":[]},' * 100 + b"0]", False),  # many brackets, shallow
        (b"[" + b"[]," * 1000 + deep(MAX_DEPTH) + b"]", True),  # ... but one branch deep
        (b"]" * 100 + b"[" * 100, False),  # not JSON: left for the decoder to say so
    ],
)
def test_too_deep_counts_levels_not_brackets(text: bytes, over: bool) -> None:
    assert too_deep(text) is over


def test_too_deep_each_answers_as_too_deep_for_each_text() -> None:
    texts = [
        deep(MAX_DEPTH),
        deep(MAX_DEPTH + 1),
        b'{"s":"' + b"[{" * 500 + b'"}',
        b"[" + b'{"a":[]},' * 100 + b"0]",
        b'{"a":1}',
        b"",
    ]
    assert too_deep_each(texts) == [False, True, False, False, False, False]
    assert too_deep_each([]) == []


@pytest.mark.parametrize(
    ("native_id", "problem"),
    [
        ("0x1234-ethereum", None),
        ("café", None),
        ("x" * MAX_ID_CHARS, None),
        ("x" * (MAX_ID_CHARS + 1), "longer than"),
        ("a\x00", "NUL"),
        ("\udfff", "lone surrogate"),
    ],
)
def test_id_problem_says_what_no_stage_could_store(native_id: str, problem: str | None) -> None:
    found = id_problem(native_id)
    assert found is None if problem is None else problem in (found or "")


def test_apply_rejects_a_problem_record_without_transforming_it() -> None:
    record = msgspec.structs.replace(
        raw("defillama-yields", b"{}", native_id="#3"), problem="id is a list"
    )
    result = apply(yields.transform, record, Context())
    assert isinstance(result, Rejection)
    assert (result.stage, result.reason, result.native_id) == ("decode", "id is a list", "#3")


def test_apply_rejects_a_payload_nested_too_deep_as_decode() -> None:
    # A record read back from the archive or the bus, never split by this code.
    payload = b'{"pool":"p","chain":"c","project":"x","symbol":"s","z":' + deep(990) + b"}"
    result = apply(yields.transform, raw("defillama-yields", payload), Context())
    assert isinstance(result, Rejection)
    assert (result.stage, result.reason) == (
        "decode",
        f"item nested deeper than {MAX_DEPTH} levels",
    )


def test_non_finite_does_not_read_a_payload_nested_too_deep() -> None:
    assert _non_finite(b'{"a":NaN,"b":' + deep(5000) + b"}") is None
    assert _non_finite(b'{"a":NaN}') == "not a finite number: nan at `$.a`"


def test_a_message_nested_too_deep_is_a_wire_error() -> None:
    fetch = wire.encode_fetch(
        FetchReport("lido", "run-1", datetime(2026, 3, 1, tzinfo=UTC), True, 1, None)
    )
    columns = wire.encode_observations([make_observation(steth())], Placement(1), 1 << 20)[0][2]
    messages = [
        (wire.decode_raw, wire.encode_raw(raw("lido", b"{}"))),
        (wire.decode_downstream, fetch),
        (wire.decode_downstream, columns),
        (wire.decode_reference, wire.encode_reference("lido", "k", "v")),
    ]
    for decode, value in messages:
        decode(value)  # as sent: read
        # A field the message type does not know, nested beyond Python's recursion limit.
        with pytest.raises(wire.WireError, match="nested too deep to read"):
            decode(value[:-1] + b',"extra":' + deep(5000) + b"}")
    # Where a field expects text, a nested value fails at its first level.
    hostile = columns.replace(b'"pool_id":[', b'"pool_id":[' + deep(5000) + b",", 1)
    with pytest.raises(wire.WireError, match=r"Expected `str`, got `array` - at `\$.pool_id\[0\]`"):
        wire.decode_downstream(hostile)
    assert wire.observation_rows(hostile) is None  # not read row by row either


def test_a_raw_message_whose_native_id_no_stage_can_store_is_a_wire_error() -> None:
    message = orjson.loads(wire.encode_raw(raw("lido", b"{}")))
    with pytest.raises(wire.WireError, match="NUL"):
        wire.decode_raw(orjson.dumps({**message, "native_id": "a\x00b"}))
    surrogate = orjson.dumps(message).replace(b'"n1"', b'"\\udfff"')
    with pytest.raises(wire.WireError, match="not a raw record message"):
        wire.decode_raw(surrogate)


def test_a_raw_record_whose_payload_is_deep_but_quoted_still_travels() -> None:
    # The payload is a string on the wire: its brackets are not the message's depth.
    record = raw("lido", b'{"x":' + deep(200) + b"}")
    assert wire.decode_raw(wire.encode_raw(record)) == record
