"""Solana getInflationRate and getInflationGovernor (joined per poll) -> a network row."""

from __future__ import annotations

import json
from typing import Any

import httpx
import orjson
import pytest

from ingest import solana_inflation as collector
from ingest._http import fetch_json
from ingest.solana_inflation import ENDPOINTS, Config
from tests.conftest import FETCHED_AT
from tests.transforms import body_of, observe, rejection
from transforms.solana_inflation import transform
from yieldstream.contracts import Level, RawRecord
from yieldstream.errors import UpstreamRejected

SOURCE = "solana-inflation"
FIXTURE = "-getInflationRate-metamaskdocs-epoch862.json"
GOVERNOR = "getInflationGovernor-solanadocs-example.json"
RATE = {"total": 0.04, "validator": 0.04, "foundation": 0.0, "epoch": 1}
SCHEDULE = {
    "foundation": 0.05,
    "foundationTerm": 7,
    "initial": 0.08,
    "taper": 0.15,
    "terminal": 0.015,
}


def joined_record(item: Any) -> RawRecord:
    return RawRecord(
        source=SOURCE,
        endpoint=collector.RATE.path,
        fetched_at=FETCHED_AT,
        run_id="test",
        kind="snapshot",
        native_id=str(collector.joined_id(item)) if isinstance(item, dict) else "#0",
        payload=orjson.dumps(item),
    )


def recorded(*, governor: bool = True) -> RawRecord:
    schedule = body_of(SOURCE, GOVERNOR) if governor else None
    (item,) = collector.join_bodies([body_of(SOURCE, FIXTURE)], schedule)
    return joined_record(item)


def test_pins_epoch_862_total() -> None:
    record = recorded()
    assert record.native_id == "862"
    obs = observe(transform, record)
    # total 0.0385971617307845 (fraction) x 100 = 3.85972 % (not 0.0386, not 386)
    assert obs.apy_pct == pytest.approx(3.85972, abs=1e-5)
    assert obs.level is Level.NETWORK
    assert obs.product_id is None
    assert obs.pool_id == "solana:inflation"
    # The docs' governor example (initial 0.15, as the docs show; mainnet's is 0.08),
    # its fractions in percent as published.
    assert obs.pool_meta == (
        "epoch 862, foundation 0%, schedule initial 15%, taper 15%/yr, terminal 1.5%, "
        "foundation 5% for 7 yr"
    )


def test_without_a_governor_the_rate_still_yields() -> None:
    obs = observe(transform, recorded(governor=False))
    assert obs.apy_pct == pytest.approx(3.85972, abs=1e-5)
    assert obs.pool_meta == "epoch 862, foundation 0%, schedule not fetched"


def test_mainnet_schedule_is_written_as_fetched() -> None:
    obs = observe(transform, joined_record({"rate": RATE, "governor": SCHEDULE}))
    assert obs.apy_pct == 4.0
    assert obs.pool_meta == (
        "epoch 1, foundation 0%, schedule initial 8%, taper 15%/yr, terminal 1.5%, "
        "foundation 5% for 7 yr"
    )


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"rate": {**RATE, "total": 3.86}}, "not a fraction"),
        ({"rate": {**RATE, "foundation": -0.1}}, "not a fraction"),
        ({"rate": {**RATE, "total": "0.04"}}, "Expected `float`, got `str`"),
        ({"rate": {k: v for k, v in RATE.items() if k != "epoch"}}, "missing required field"),
        ({"governor": SCHEDULE}, "missing required field `rate`"),
        ("rate", "Expected `object`, got `str`"),
    ],
)
def test_bad_rates_are_rejections(item: Any, reason: str) -> None:
    assert reason in rejection(transform, joined_record(item)).reason


@pytest.mark.parametrize(
    ("governor", "said"),
    [
        (RATE, "schedule unreadable (Object missing required field `initial`)"),
        ({**SCHEDULE, "taper": None}, "schedule unreadable (Expected `float`, got `null`"),
        ({**SCHEDULE, "taper": "0.15"}, "schedule unreadable (Expected `float`, got `str`"),
        ([SCHEDULE], "schedule unreadable (Expected `object | null`, got `array`)"),
        ({**SCHEDULE, "initial": 8}, "schedule unusable (fractions outside [0, 1])"),
        ({**SCHEDULE, "terminal": 0.2}, "schedule unusable (terminal above initial"),
    ],
)
def test_a_bad_schedule_is_said_and_the_rate_kept(governor: Any, said: str) -> None:
    obs = observe(transform, joined_record({"rate": RATE, "governor": governor}))
    assert obs.apy_pct == 4.0
    assert said in (obs.pool_meta or "")


# --- fetching -----------------------------------------------------------------------

CFG = Config(attempts=2, wait_initial_s=0, wait_max_s=0)


def rpc(result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "result": result, "id": 1}


def method_of(request: httpx.Request) -> str:
    method: str = json.loads(request.content)["method"]
    return method


async def test_rate_limit_then_success() -> None:
    answers = iter(
        [{"jsonrpc": "2.0", "error": {"code": -32005, "message": "busy"}, "id": 1}, rpc(RATE)]
    )
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json=next(answers)))
    async with httpx.AsyncClient(transport=transport) as client:
        fetched = await fetch_json(client, CFG.base_url + "/", CFG, request=ENDPOINTS[0].request)
    assert fetched.body["result"]["epoch"] == 1


async def test_fatal_error() -> None:
    body = {"jsonrpc": "2.0", "error": {"code": -32601, "message": "no method"}, "id": 1}
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json=body))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(UpstreamRejected):
            await fetch_json(client, CFG.base_url + "/", CFG, request=ENDPOINTS[0].request)


async def collected(answers: dict[str, dict[str, Any]], records: list[RawRecord]) -> list[str]:
    """Run collect against ``answers`` by JSON-RPC method; the methods asked, in order.

    ``records`` gets each record as it is yielded, so those before a failure are kept.
    """
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("POST", "/")
        seen.append(method_of(request))
        return httpx.Response(200, json=answers[seen[-1]])

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        async for record in collector.collect(client, CFG, "run"):
            records.append(record)
    return seen


async def test_collect_joins_the_rate_and_the_schedule() -> None:
    records: list[RawRecord] = []
    answers = {"getInflationRate": rpc(RATE), "getInflationGovernor": rpc(SCHEDULE)}
    assert await collected(answers, records) == ["getInflationRate", "getInflationGovernor"]
    (record,) = records
    assert (record.endpoint, record.native_id) == ("/", "1")
    assert orjson.loads(record.payload) == {"rate": RATE, "governor": SCHEDULE}
    assert "initial 8%" in (observe(transform, record).pool_meta or "")


NO_METHOD = {"jsonrpc": "2.0", "error": {"code": -32601, "message": "no method"}, "id": 1}


@pytest.mark.parametrize(
    ("governor", "reason"),
    [
        (NO_METHOD, "getInflationGovernor failed: JSON-RPC error -32601"),
        ({"jsonrpc": "2.0", "result": 0.08, "id": 1}, "holds no result"),
    ],
    ids=["rpc-error", "no-result-object"],
)
async def test_a_failed_governor_keeps_the_rate_and_fails_the_fetch(
    governor: dict[str, Any], reason: str
) -> None:
    records: list[RawRecord] = []
    answers = {"getInflationRate": rpc(RATE), "getInflationGovernor": governor}
    with pytest.raises(UpstreamRejected, match=reason):
        await collected(answers, records)
    (record,) = records
    assert orjson.loads(record.payload) == {"rate": RATE, "governor": None}
    obs = observe(transform, record)
    assert (obs.apy_pct, obs.pool_meta) == (4.0, "epoch 1, foundation 0%, schedule not fetched")


async def test_a_governor_answer_without_a_schedule_is_kept_as_it_came() -> None:
    # What a server answering every POST / with one recording gives (the loopback).
    records: list[RawRecord] = []
    await collected({"getInflationRate": rpc(RATE), "getInflationGovernor": rpc(RATE)}, records)
    (record,) = records
    assert orjson.loads(record.payload) == {"rate": RATE, "governor": RATE}
    assert "schedule unreadable" in (observe(transform, record).pool_meta or "")


async def test_a_failed_rate_makes_no_record() -> None:
    records: list[RawRecord] = []
    with pytest.raises(UpstreamRejected, match="no method"):
        await collected({"getInflationRate": NO_METHOD}, records)
    assert records == []
