"""OKX Simple Earn lending rates -> lending observations, APR compounded hourly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ingest import okx as ingest
from ingest._http import fetch_json
from tests.conftest import raw
from tests.transforms import body_of, observe, records_of, rejection
from transforms import CLOCK_SKEW, okx
from transforms.units import HOURLY
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse, UpstreamRejected, UpstreamUnavailable

SOURCE = "okx"
RATES = "lending-rate-history-AVAX-1row-20260826-enveloped.json"
PATH = "/api/v5/finance/savings/lending-rate-history"
TS_AT = datetime(2026, 8, 26, 15, tzinfo=UTC)  # ts "1787756400000"
AFTER = datetime(2026, 11, 25, 12, tzinfo=UTC)  # a fetch after every recorded point


def hourly_apy(apr_pct: float) -> float:
    """APR -> APY compounded every hour, written out independently of transforms.units."""
    return ((1 + apr_pct / 100 / 8760) ** 8760 - 1) * 100


def item(*, fetched_at: datetime = AFTER, **fields: Any) -> RawRecord:
    body: dict[str, Any] = {
        "ccy": "AVAX",
        "lendingRate": "0.0206",
        "rate": "0.127",
        "ts": "1787756400000",
    }
    body.update(fields)
    text = json.dumps({k: v for k, v in body.items() if v is not ...})
    return raw(SOURCE, text.encode(), endpoint=PATH, native_id="AVAX", fetched_at=fetched_at)


def test_recorded_avax_rate_pins_the_savers_apy() -> None:
    (rec,) = records_of(SOURCE, RATES, fetched_at=AFTER)
    assert rec.native_id == "AVAX"
    obs = observe(okx.transform, rec)
    # lendingRate "0.0206" is an annual fraction: 2.06 % APR; compounded hourly,
    # (1 + 0.0206 / 8760) ** 8760 - 1 = 2.0814 % APY (daily would give 2.0812 %).
    assert obs.apy_pct == pytest.approx(2.0814, abs=1e-4)
    assert obs.apy_pct == pytest.approx(hourly_apy(2.06), rel=1e-9)
    assert obs.apy_base_pct == obs.apy_pct
    assert obs.apy_reward_pct == 0.0
    # "rate" 0.127 is what borrowers pay (12.7 % APR, 13.5416 % APY): not the saver's.
    assert obs.apy_borrow_pct == pytest.approx(13.5416, abs=1e-4)
    assert obs.apy_pct is not None
    assert obs.apy_borrow_pct is not None
    assert obs.apy_pct < 3 < obs.apy_borrow_pct
    assert obs.apy_gross_pct is None
    assert obs.observed_at == TS_AT
    assert (obs.source, obs.pool_id, obs.protocol, obs.chain, obs.symbol) == (
        "okx",
        "AVAX",
        "okx",
        "Off-chain",
        "AVAX",
    )
    assert obs.product_id == "okx:off-chain:avax:savings"
    assert (obs.strategy, obs.venue, obs.strategy_guessed) == (Strategy.LENDING, Venue.CEFI, False)
    assert obs.stablecoin is False
    assert obs.tvl_usd is None


def test_the_fixture_is_the_recorded_row_in_its_envelope() -> None:
    body = body_of(SOURCE, RATES)
    assert (body["code"], body["msg"]) == ("0", "")
    assert body["data"] == [
        {"ccy": "AVAX", "lendingRate": "0.0206", "rate": "0.127", "ts": "1787756400000", "amt": ""}
    ]


def test_compounding_is_hourly() -> None:
    assert HOURLY == 8760
    obs = observe(okx.transform, item(lendingRate="0.0876"))
    assert obs.apy_pct == pytest.approx(hourly_apy(8.76), rel=1e-9)


def test_a_stablecoin_and_no_borrow_rate() -> None:
    obs = observe(okx.transform, item(ccy="USDT", rate=...))
    assert (obs.stablecoin, obs.apy_borrow_pct, obs.product_id) == (
        True,
        None,
        "okx:off-chain:usdt:savings",
    )
    assert observe(okx.transform, item(rate="")).apy_borrow_pct is None


def test_decimal_strings_are_read_exactly() -> None:
    obs = observe(okx.transform, item(lendingRate="0.02060000000000000000000000001"))
    assert obs.apy_pct == pytest.approx(hourly_apy(2.06), rel=1e-9)


def test_the_same_record_twice_is_the_same_observation() -> None:
    (rec,) = records_of(SOURCE, RATES, fetched_at=AFTER)
    later = records_of(SOURCE, RATES, fetched_at=AFTER + timedelta(days=3))[0]
    assert observe(okx.transform, rec) == observe(okx.transform, rec)
    assert observe(okx.transform, later) == observe(okx.transform, rec)  # keyed by ts


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"lendingRate": 0.0206}, "Expected `str`, got `float` - at `$.lendingRate`"),
        ({"lendingRate": "2.06%"}, "lendingRate: expected a number, got '2.06%'"),
        ({"lendingRate": ""}, "lendingRate: expected a number"),
        ({"lendingRate": "NaN"}, "expected a finite number"),
        ({"lendingRate": "-0.01"}, "lendingRate '-0.01' is not an annual fraction"),
        ({"lendingRate": "20.6"}, "lendingRate '20.6' is not an annual fraction"),
        ({"rate": "-0.127"}, "rate '-0.127' is not an annual fraction"),
        ({"lendingRate": ...}, "missing required field `lendingRate`"),
        ({"ts": ...}, "missing required field `ts`"),
        ({"ccy": ""}, "empty ccy"),
        ({"ts": 1787756400000}, "Expected `str`, got `int` - at `$.ts`"),
        ({"ts": "1787756400"}, "ts '1787756400' is no time in ms"),  # seconds
        ({"ts": "2026-08-26T15:00:00Z"}, "is no time in ms"),
        ({"ts": "1600000000000"}, "between 2021-12-14 and the fetch"),
        ({"ts": str(int((AFTER + timedelta(hours=2)).timestamp() * 1000))}, "and the fetch"),
    ],
)
def test_bad_items_are_rejected(fields: dict[str, Any], reason: str) -> None:
    rej = rejection(okx.transform, item(**fields))
    assert reason in rej.reason


def test_a_point_within_clock_skew_of_the_fetch_is_accepted() -> None:
    skewed = TS_AT - CLOCK_SKEW
    assert observe(okx.transform, item(fetched_at=skewed)).observed_at == TS_AT
    rejection(okx.transform, item(fetched_at=skewed - timedelta(seconds=1)))


# --- the envelope's errors, through fetch_json ----------------------------------------

CFG = ingest.Config(attempts=2, wait_initial_s=0, wait_max_s=0)
URL = f"{CFG.base_url}{PATH}"


def _client(*responses: httpx.Response, seen: list[httpx.Request]) -> httpx.AsyncClient:
    replies = iter(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(replies)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


GOOD = httpx.Response(200, json=body_of(SOURCE, RATES))
LIMITED = {"code": "50011", "msg": "Too Many Requests", "data": []}


@pytest.mark.parametrize("status", [200, 429])
async def test_rate_limit_then_an_answer_succeeds(status: int) -> None:
    seen: list[httpx.Request] = []
    async with _client(httpx.Response(status, json=LIMITED), GOOD, seen=seen) as client:
        fetched = await fetch_json(client, URL, CFG, request=ingest.ENDPOINTS[0].request)
    assert fetched.body == body_of(SOURCE, RATES)
    assert [dict(r.url.params) for r in seen] == [{"limit": "100"}] * 2
    assert {r.url.path for r in seen} == {PATH}


async def test_rate_limit_every_time_is_a_retriable_error() -> None:
    seen: list[httpx.Request] = []
    limited = httpx.Response(200, json=LIMITED)
    async with _client(limited, limited, seen=seen) as client:
        with pytest.raises(UpstreamUnavailable, match=r"OKX error 50011 .*Too Many Requests"):
            await fetch_json(client, URL, CFG, request=ingest.ENDPOINTS[0].request)


async def test_other_codes_are_fatal_with_the_message() -> None:
    seen: list[httpx.Request] = []
    bad = httpx.Response(200, json={"code": "51000", "msg": "Parameter ccy error", "data": []})
    async with _client(bad, GOOD, seen=seen) as client:
        with pytest.raises(UpstreamRejected, match=r"OKX error 51000 .*Parameter ccy error"):
            await fetch_json(client, URL, CFG, request=ingest.ENDPOINTS[0].request)
    assert len(seen) == 1


def test_a_body_without_the_envelope_is_a_bad_response() -> None:
    with pytest.raises(BadResponse, match="envelope"):
        ingest.check([{"ccy": "AVAX"}], URL, b"")
    with pytest.raises(BadResponse, match="envelope"):
        ingest.check({"data": []}, URL, b"")
