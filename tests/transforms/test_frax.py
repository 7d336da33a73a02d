"""Frax sfrxETH: percent APR compounded weekly, exact TVL, summary history by range."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ingest import frax as collector
from ingest._history import Window, fetch_history, history_records
from ingest._http import fetch_json, parse_json
from tests.conftest import FETCHED_AT, FIXTURES, raw, recorded
from tests.transforms import observe, records_of, rejection
from transforms import floor_hour, frax
from transforms.units import apr_to_apy_pct, priced
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import BadResponse, UpstreamUnavailable

SOURCE = "frax"
LATEST = "summary-latest-SUBSET-doc.json"
HISTORY_SAMPLE = "history-frxeth-summary-1d-SUBSET-doc.json"
BASE = "https://api.frax.finance"
PATH = "/v2/frxeth/summary/latest"
HISTORY_PATH = "/v2/frxeth/summary/history"
CFG = collector.Config(attempts=2, wait_initial_s=0, wait_max_s=0)
AT = "2025-08-15T12:00:00.000Z"


def summary(**fields: Any) -> RawRecord:
    values = {"sfrxethApr": 2.8547773, "intervalTimestamp": AT, **fields}
    return raw(SOURCE, json.dumps(values).encode(), endpoint=PATH)


def weekly_apy(apr_pct: float) -> float:
    """APR -> APY compounded once a week (52 reward cycles), written out independently."""
    return ((1 + apr_pct / 100 / 52) ** 52 - 1) * 100


def test_recorded_apr_pinned() -> None:
    # The recorded summary: sfrxethApr 2.8547773 is a percent APR (Frax's page shows
    # 2.85 %). One xERC4626 reward cycle a week: 0.028547773 / 52 = 0.000549 a week,
    # APY = (1 + 0.028547773/52)^52 - 1 = 0.028951 = 2.8951 %. Daily compounding would
    # give 2.8958 %; a fraction read as percent (100x) or a per-day rate (365x) is
    # far outside 2.89..2.90.
    (rec,) = records_of(SOURCE, LATEST)
    obs = observe(frax.transform, rec)
    assert obs.apy_pct == pytest.approx(2.89511, abs=1e-5)
    assert obs.apy_pct == pytest.approx(weekly_apy(2.8547773), rel=1e-9)
    assert obs.apy_pct == apr_to_apy_pct(2.8547773, 52)
    assert 2.89 < obs.apy_pct < 2.90
    assert (obs.apy_base_pct, obs.apy_reward_pct) == (obs.apy_pct, 0.0)
    assert obs.product_id == "frax-ether:ethereum:sfrxeth"
    assert (obs.source, obs.pool_id, obs.protocol, obs.chain, obs.symbol) == (
        "frax",
        "sfrxeth",
        "frax",
        "Ethereum",
        "SFRXETH",
    )
    assert (obs.strategy, obs.venue, obs.strategy_guessed) == (Strategy.STAKING, Venue.DEFI, False)
    assert obs.category == "Liquid Staking"
    # The subset has no interval time and no vault assets: the fetch hour, no TVL.
    assert obs.observed_at == floor_hour(FETCHED_AT)
    assert (obs.tvl_usd, obs.tvl_tokens, obs.tvl_token) == (None, None, None)


def test_tvl_is_the_vault_assets_valued_exactly() -> None:
    # 103,456.789012 frxETH x 0.9978599 ETH/frxETH x 2032.63 USD/ETH = $209,839,332.76
    # (the vault figure is illustrative: the recorded subset has none).
    obs = observe(
        frax.transform,
        summary(
            sfrxethTotalAssets=103456.789012, frxethEthCurvePrice=0.9978599, ethPriceUsd=2032.63
        ),
    )
    exact_usd = Decimal("103456.789012") * Decimal("0.9978599") * Decimal("2032.63")
    assert obs.tvl_usd == float(exact_usd)
    assert obs.tvl_usd == pytest.approx(209839332.76, abs=0.01)
    assert obs.tvl_tokens == 103456.789012
    assert obs.tvl_token == "FRXETH"
    assert obs.observed_at == datetime(2025, 8, 15, 12, tzinfo=UTC)


def test_tvl_needs_both_prices() -> None:
    obs = observe(frax.transform, summary(sfrxethTotalAssets=100.0, ethPriceUsd=2032.63))
    assert obs.tvl_usd is None
    assert (obs.tvl_tokens, obs.tvl_token) == (100.0, "FRXETH")


def test_priced_is_exact_and_refuses_negative_factors() -> None:
    assert priced(10**30, "0.5", 2) == Decimal(10**30)
    assert priced("0.1", 0.2) == Decimal("0.02")
    with pytest.raises(ValueError, match=">= 0"):
        priced(1, -2032.63)


@pytest.mark.parametrize(
    ("fields", "stage", "reason"),
    [
        ({"sfrxethApr": "2.85"}, "decode", "Expected `float`, got `str` - at `$.sfrxethApr`"),
        ({"sfrxethApr": None}, "decode", "got `null` - at `$.sfrxethApr`"),
        ({"sfrxethApr": 285.47773}, "validate", "not a staking APR"),
        ({"sfrxethApr": -5200.0}, "validate", "cannot compound 52 times a year"),
        ({"intervalTimestamp": "2025-08-15 12:00"}, "validate", "unreadable intervalTimestamp"),
        ({"intervalTimestamp": 1755259200}, "decode", "got `int` - at `$.intervalTimestamp`"),
        ({"intervalTimestamp": "2021-06-01T00:00:00Z"}, "validate", "sfrxETH's launch"),
        ({"intervalTimestamp": "2027-01-01T00:00:00Z"}, "validate", "sfrxETH's launch"),
        (
            {"sfrxethTotalAssets": 100.0, "frxethEthCurvePrice": 1.0, "ethPriceUsd": -1.0},
            "validate",
            ">= 0",
        ),
        ({"sfrxethTotalAssets": -1.0}, "validate", "at `$.tvl_tokens`"),
    ],
)
def test_bad_summaries_are_rejected_with_a_reason(
    fields: dict[str, Any], stage: str, reason: str
) -> None:
    rej = rejection(frax.transform, summary(**fields))
    assert rej.stage == stage
    assert reason in rej.reason


def test_missing_apr_is_rejected() -> None:
    rec = raw(SOURCE, b'{"ethPriceUsd": 2032.63}', endpoint=PATH)
    assert "missing required field `sfrxethApr`" in rejection(frax.transform, rec).reason


def test_the_same_summary_twice_is_one_observation() -> None:
    a = observe(frax.transform, summary())
    later = raw(SOURCE, summary().payload, endpoint=PATH, fetched_at=FETCHED_AT + timedelta(days=2))
    assert observe(frax.transform, later) == a


# --- requests ---------------------------------------------------------------------


def _client(handler: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def _ok(name: str = LATEST) -> httpx.Response:
    return httpx.Response(
        200, content=recorded(SOURCE, name), headers={"content-type": "application/json"}
    )


async def test_collect_gets_the_latest_summary() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return _ok()

    async with _client(handler) as client:
        records = [r async for r in collector.collect(client, CFG, "run")]
    (request,) = sent
    assert (request.method, str(request.url)) == ("GET", f"{BASE}{PATH}")
    (record,) = records
    assert record.native_id == "#0"  # the subset has no intervalTimestamp to name it
    assert json.loads(record.payload)["sfrxethApr"] == 2.8547773


async def test_a_rate_limit_answer_is_retried() -> None:
    answers = iter([httpx.Response(429), _ok()])
    async with _client(lambda request: next(answers)) as client:
        records = [r async for r in collector.collect(client, CFG, "run")]
    assert len(records) == 1


async def test_server_errors_every_time_give_up_retriably() -> None:
    async with _client(lambda request: httpx.Response(503)) as client:
        with pytest.raises(UpstreamUnavailable):
            await fetch_json(client, f"{BASE}{PATH}", CFG)


async def test_a_list_instead_of_the_summary_is_a_bad_response() -> None:
    async with _client(lambda request: httpx.Response(200, json=[])) as client:
        with pytest.raises(BadResponse, match="expected an object"):
            [r async for r in collector.collect(client, CFG, "run")]


# --- history ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (None, "180d"),
        (timedelta(hours=6), "1d"),
        (timedelta(days=30), "180d"),
        (timedelta(days=900), "180d"),
    ],
)
def test_history_range_is_the_shortest_reaching_the_window(
    since: timedelta | None, expected: str
) -> None:
    now = datetime(2026, 3, 12, tzinfo=UTC)
    window = Window(None if since is None else now - since)
    assert collector.history_range(window, now) == expected


async def test_history_asks_for_a_range_and_keeps_its_items() -> None:
    sent: list[httpx.Request] = []
    body = {
        "items": [
            {"intervalTimestamp": "2026-03-12T00:00:00.000Z", "sfrxethApr": 2.8547773},
            {"intervalTimestamp": "2026-03-11T00:00:00.000Z", "sfrxethApr": 2.91},
            {"intervalTimestamp": "2025-01-01T00:00:00.000Z", "sfrxethApr": 3.2},
        ]
    }

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=body)

    window = Window(datetime(2026, 3, 1, tzinfo=UTC))
    async with _client(handler) as client:
        records = await fetch_history(
            client,
            CFG,
            collector.HISTORY,
            source=SOURCE,
            entity="sfrxeth",
            run_id="r",
            window=window,
        )
    (request,) = sent
    assert (request.method, request.url.path) == ("GET", HISTORY_PATH)
    assert dict(request.url.params) == {"range": "180d"}
    assert [r.native_id for r in records] == [
        "2026-03-12T00:00:00.000Z",
        "2026-03-11T00:00:00.000Z",
    ]
    obs = [observe(frax.transform, r) for r in records]
    assert obs[0].observed_at == datetime(2026, 3, 12, tzinfo=UTC)
    assert obs[1].apy_pct == pytest.approx(weekly_apy(2.91), rel=1e-9)


async def test_a_history_without_items_is_a_bad_response() -> None:
    async with _client(lambda request: httpx.Response(200, json={"error": "bad range"})) as c:
        with pytest.raises(BadResponse, match="'items'"):
            await fetch_history(
                c,
                CFG,
                collector.HISTORY,
                source=SOURCE,
                entity="sfrxeth",
                run_id="r",
                window=Window(),
            )


def test_recorded_history_response_transforms() -> None:
    path = FIXTURES / SOURCE / HISTORY_SAMPLE
    body, lenient = parse_json(path.read_bytes(), "application/json", str(path))
    points = list(collector.HISTORY.points(body, "sfrxeth", str(path), b""))
    assert len(points) == 1
    records = list(
        history_records(
            points,
            source=SOURCE,
            endpoint=collector.HISTORY.endpoint("sfrxeth"),
            fetched_at=FETCHED_AT,
            run_id="test",
            lenient=lenient,
        )
    )
    (obs,) = [observe(frax.transform, r) for r in records]
    assert obs.apy_pct == pytest.approx(2.89511, abs=1e-5)
