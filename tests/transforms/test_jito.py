"""Jito JitoSOL: parallel daily series joined by date, exact lamports, APY fractions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest

from ingest import jito as collector
from ingest._history import Window, fetch_history, history_records
from ingest._http import fetch_json, parse_json
from tests.conftest import FETCHED_AT, FIXTURES, raw, recorded
from tests.transforms import body_of, observe, records_of, rejection
from transforms import Context, apply, jito
from transforms.units import LAMPORTS_PER_SOL, base_units, fraction_to_pct
from yieldstream.contracts import RawRecord, Rejection, Strategy, Venue
from yieldstream.errors import BadResponse, UpstreamUnavailable

SOURCE = "jito"
SAMPLE = "stake_pool_stats-docs-sample.json"
HISTORY_SAMPLE = "history-stake_pool_stats-docs-sample.json"
BASE = "https://kobe.mainnet.jito.network"
PATH = "/api/v1/stake_pool_stats"
DAY1 = datetime(2025, 8, 15, 22, 55, 6, tzinfo=UTC)
TVL1 = 15209213875510266  # lamports, above 2**53
CFG = collector.Config(attempts=2, wait_initial_s=0, wait_max_s=0)


def day(**fields: Any) -> RawRecord:
    values = {"date": "2025-08-15T22:55:06Z", "apy": 0.07184861225308525, **fields}
    return raw(SOURCE, json.dumps(values).encode(), endpoint=PATH)


# --- the recorded sample, pinned --------------------------------------------------


def test_first_day_pinned_to_the_published_figures() -> None:
    # Jito's docs sample, 2025-08-15: apy 0.07184861225308525 is an APY fraction:
    # x 100 = 7.1849 % (Jito's page shows ~7.18 %). No compounding on top: a 365x
    # error (a daily reading) or a 100x one (percent as fraction) fails below.
    # tvl 15,209,213,875,510,266 lamports / 1e9 = 15,209,213.875510266 SOL, and over
    # the supply 12,420,237.336776868 JitoSOL that is 1.22455 SOL per JitoSOL.
    first, second = records_of(SOURCE, SAMPLE)
    assert (first.native_id, second.native_id) == ("2025-08-15T22:55:06Z", "2025-08-16T23:20:47Z")
    obs = observe(jito.transform, first)
    assert obs.apy_pct == pytest.approx(7.1849, abs=1e-4)
    assert obs.apy_pct == fraction_to_pct(0.07184861225308525)
    assert 7.0 < obs.apy_pct < 7.3
    assert (obs.apy_base_pct, obs.apy_reward_pct) == (obs.apy_pct, 0.0)
    assert obs.observed_at == DAY1  # the day's own time, not the fetch
    assert obs.tvl_tokens == pytest.approx(15209213.875510266, rel=1e-15)
    assert obs.tvl_token == "SOL"
    assert obs.tvl_usd is None
    assert obs.product_id == "jito-liquid-staking:solana:jitosol"
    assert (obs.source, obs.pool_id, obs.protocol, obs.chain, obs.symbol) == (
        "jito",
        "jitosol",
        "jito",
        "Solana",
        "JITOSOL",
    )
    assert (obs.strategy, obs.venue, obs.strategy_guessed) == (Strategy.STAKING, Venue.DEFI, False)
    assert obs.category == "Liquid Staking"
    assert observe(jito.transform, second).apy_pct == pytest.approx(7.184861239211937, rel=1e-12)


def test_lamports_stay_exact_and_give_the_jitosol_rate() -> None:
    body = body_of(SOURCE, SAMPLE)
    tvl = body["tvl"][0]["data"]
    assert isinstance(tvl, int)
    assert tvl == TVL1 > 2**53
    odd = body["tvl"][1]["data"]  # 15211604884230567: odd, above 2**53
    assert isinstance(odd, int)
    assert int(float(odd)) != odd  # a float loses its last digit
    assert base_units(odd, LAMPORTS_PER_SOL) == Decimal("15211604.884230567")
    sol = base_units(tvl, LAMPORTS_PER_SOL)
    assert sol == Decimal("15209213.875510266")
    rate = sol / Decimal(repr(body["supply"][0]["data"]))
    assert round(rate, 5) == Decimal("1.22455")
    # The archived payload keeps the integer digit for digit.
    (first, _) = records_of(SOURCE, SAMPLE)
    assert b'"tvl":15209213875510266,' in first.payload
    assert orjson.loads(first.payload)["tvl"] == TVL1


def test_days_join_every_series_by_date_verbatim() -> None:
    body = body_of(SOURCE, SAMPLE)
    items = collector.days(body, PATH)
    assert items == [
        {
            "date": "2025-08-15T22:55:06Z",
            "mev_rewards": 841552703382,
            "tvl": 15209213875510266,
            "apy": 0.07184861225308525,
            "num_validators": 1040,
            "supply": 12420237.336776868,
            "aggregated_mev_rewards": 17917503591959,
        },
        {
            "date": "2025-08-16T23:20:47Z",
            "mev_rewards": 5244986563088,
            "tvl": 15211604884230567,
            "apy": 0.07184861239211937,
            "num_validators": 1040,
            "supply": 12422189.896316852,
            "aggregated_mev_rewards": 17917503591959,
        },
    ]
    # Nothing upstream said is lost: every series point is in exactly one day.
    for name in ("tvl", "apy", "supply", "mev_rewards", "num_validators"):
        assert [{"data": d[name], "date": d["date"]} for d in items] == body[name]


def test_a_date_missing_from_one_series_leaves_it_out_of_that_day() -> None:
    body = {
        "apy": [{"data": 0.07, "date": "2025-08-15T00:00:00Z"}],
        "tvl": [{"data": 1, "date": "2025-08-14T00:00:00Z"}],
    }
    assert collector.days(body, PATH) == [
        {"date": "2025-08-15T00:00:00Z", "apy": 0.07},
        {"date": "2025-08-14T00:00:00Z", "tvl": 1},
    ]


def test_a_date_repeated_in_one_series_is_a_duplicate_record() -> None:
    body = {
        "apy": [
            {"data": 0.07, "date": "2025-08-15T00:00:00Z"},
            {"data": 0.08, "date": "2025-08-15T00:00:00Z"},
        ],
        "tvl": [],
    }
    records = list(
        collector.ENDPOINTS[0].records(body, source=SOURCE, fetched_at=FETCHED_AT, run_id="t")
    )
    assert [r.problem is None for r in records] == [True, False]
    assert "duplicate id" in (records[1].problem or "")


@pytest.mark.parametrize(
    "body",
    [
        {"error": "internal"},
        {"apy": [], "tvl": {"data": 1}},
        [{"data": 0.07, "date": "2025-08-15T00:00:00Z"}],
        None,
    ],
)
def test_a_body_without_the_series_is_a_bad_response(body: Any) -> None:
    with pytest.raises(BadResponse, match="expected an object with the series"):
        collector.days(body, PATH)


def test_a_point_without_a_date_is_rejected_on_its_own() -> None:
    body = {"apy": [{"data": 0.07}, {"data": 0.07, "date": "2025-08-15T00:00:00Z"}], "tvl": []}
    records = list(
        collector.ENDPOINTS[0].records(body, source=SOURCE, fetched_at=FETCHED_AT, run_id="t")
    )
    results = [apply(jito.transform, r, Context()) for r in records]
    assert not isinstance(results[0], Rejection)
    assert isinstance(results[1], Rejection)
    assert results[1].stage == "decode"
    assert "got `null` - at `$.date`" in results[1].reason


# --- bad days become rejections ---------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "stage", "reason"),
    [
        ({"apy": "0.0718"}, "decode", "Expected `float`, got `str` - at `$.apy`"),
        ({"apy": None}, "decode", "got `null` - at `$.apy`"),
        ({"tvl": 1.5209213875510266e16}, "decode", "got `float` - at `$.tvl`"),
        ({"tvl": "15209213875510266.5"}, "validate", "integer amount in base units"),
        ({"tvl": -5}, "validate", "outside 1..3: a unit error"),
        # The TVL in SOL, not lamports: 1e9 off the supply.
        ({"tvl": 15209213, "supply": 12420237.336776868}, "validate", "a unit error"),
        ({"apy": 7.18}, "validate", "a percent, not a fraction?"),
        ({"apy": -2.0}, "validate", "at `$.apy_pct`"),
        ({"date": "2025-08-15T22:55:06"}, "validate", "unreadable date"),
        ({"date": 1755298506}, "decode", "got `int` - at `$.date`"),
        ({"date": "2021-01-01T00:00:00Z"}, "validate", "is not between JitoSOL's launch"),
    ],
)
def test_bad_days_are_rejected_with_a_reason(
    fields: dict[str, Any], stage: str, reason: str
) -> None:
    rej = rejection(jito.transform, day(**{"supply": 12420237.336776868, "tvl": TVL1, **fields}))
    assert rej.stage == stage
    assert reason in rej.reason


def test_missing_apy_is_rejected() -> None:
    rec = raw(SOURCE, b'{"date": "2025-08-15T22:55:06Z", "tvl": 1}', endpoint=PATH)
    assert "missing required field `apy`" in rejection(jito.transform, rec).reason


def test_a_day_without_tvl_or_supply_still_gives_its_apy() -> None:
    obs = observe(jito.transform, day())
    assert (obs.tvl_tokens, obs.tvl_token) == (None, None)
    obs = observe(jito.transform, day(tvl=TVL1, supply=0))  # no supply: no rate to check
    assert obs.tvl_tokens == pytest.approx(15209213.875510266)


def test_a_day_after_the_fetch_is_rejected_beyond_clock_skew() -> None:
    at = DAY1 - jito.CLOCK_SKEW
    ok = raw(SOURCE, day().payload, endpoint=PATH, fetched_at=at)
    assert observe(jito.transform, ok).observed_at == DAY1
    late = raw(SOURCE, day().payload, endpoint=PATH, fetched_at=at - timedelta(seconds=1))
    assert "is not between JitoSOL's launch" in rejection(jito.transform, late).reason


def test_the_same_day_transformed_twice_is_the_same_observation() -> None:
    (first, _) = records_of(SOURCE, SAMPLE)
    again = records_of(SOURCE, SAMPLE, fetched_at=FETCHED_AT + timedelta(days=3))[0]
    a, b = observe(jito.transform, first), observe(jito.transform, again)
    assert a == b
    assert (a.source, a.pool_id, a.observed_at) == (b.source, b.pool_id, b.observed_at)


# --- requests through httpx.MockTransport -----------------------------------------


def _client(handler: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def _ok() -> httpx.Response:
    return httpx.Response(
        200, content=recorded(SOURCE, SAMPLE), headers={"content-type": "application/json"}
    )


async def test_collect_posts_the_last_two_days_of_daily_buckets() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return _ok()

    before = datetime.now(UTC).replace(microsecond=0)
    async with _client(handler) as client:
        records = [r async for r in collector.collect(client, CFG, "run")]
    after = datetime.now(UTC)
    (request,) = sent
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}{PATH}"
    body = json.loads(request.content)
    assert body["bucket_type"] == "Daily"
    assert body["sort_by"] == {"field": "BlockTime", "order": "Asc"}
    start = datetime.fromisoformat(body["range_filter"]["start"])
    end = datetime.fromisoformat(body["range_filter"]["end"])
    assert before <= end <= after
    assert end - start == timedelta(days=2)
    assert [r.native_id for r in records] == ["2025-08-15T22:55:06Z", "2025-08-16T23:20:47Z"]
    assert all(r.endpoint == PATH and r.kind == "snapshot" for r in records)


async def test_a_rate_limit_answer_is_retried() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "0"}), _ok()])
    async with _client(lambda request: next(answers)) as client:
        records = [r async for r in collector.collect(client, CFG, "run")]
    assert len(records) == 2


async def test_rate_limits_every_time_give_up_retriably() -> None:
    async with _client(lambda request: httpx.Response(429)) as client:
        with pytest.raises(UpstreamUnavailable):
            await fetch_json(client, f"{BASE}{PATH}", CFG, request=collector.ENDPOINTS[0].request)


async def test_an_error_body_with_status_200_is_a_bad_response() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"error": "invalid range_filter"})

    async with _client(handler) as client:
        with pytest.raises(BadResponse, match="expected an object with the series"):
            [r async for r in collector.collect(client, CFG, "run")]


# --- history ----------------------------------------------------------------------


async def test_history_posts_the_window_and_keeps_its_days() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(
            200,
            content=recorded(SOURCE, HISTORY_SAMPLE),
            headers={"content-type": "application/json"},
        )

    window = Window(datetime(2025, 8, 16, tzinfo=UTC), datetime(2025, 9, 1, tzinfo=UTC))
    async with _client(handler) as client:
        records = await fetch_history(
            client,
            CFG,
            collector.HISTORY,
            source=SOURCE,
            entity="jitosol",
            run_id="r",
            window=window,
        )
    (request,) = sent
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}{PATH}"  # no query, no entity in the path
    assert json.loads(request.content) == {
        "bucket_type": "Daily",
        "range_filter": {"start": "2025-08-16T00:00:00Z", "end": "2025-09-01T00:00:00Z"},
        "sort_by": {"field": "BlockTime", "order": "Asc"},
    }
    # The window keeps the second day only; its transform is the snapshot's.
    assert [r.native_id for r in records] == ["2025-08-16T23:20:47Z"]
    (record,) = records
    assert (record.kind, record.endpoint) == ("history", PATH)
    obs = observe(jito.transform, record)
    assert obs.observed_at == datetime(2025, 8, 16, 23, 20, 47, tzinfo=UTC)
    assert obs.tvl_tokens == pytest.approx(15211604.884230567)


def test_an_open_window_asks_from_before_jitosol_until_now() -> None:
    body = collector._window_request(Window(), "jitosol")
    assert body["range_filter"]["start"] == "2022-09-01T00:00:00Z"
    end = datetime.fromisoformat(body["range_filter"]["end"])
    assert abs(datetime.now(UTC) - end) < timedelta(minutes=1)


def test_recorded_history_response_transforms() -> None:
    path = FIXTURES / SOURCE / HISTORY_SAMPLE
    body, lenient = parse_json(path.read_bytes(), "application/json", str(path))
    points = list(collector.HISTORY.points(body, "jitosol", str(path), b""))
    assert [p.moment for p in points] == [DAY1, datetime(2025, 8, 16, 23, 20, 47, tzinfo=UTC)]
    records = list(
        history_records(
            points,
            source=SOURCE,
            endpoint=collector.HISTORY.endpoint("jitosol"),
            fetched_at=FETCHED_AT,
            run_id="test",
            lenient=lenient,
        )
    )
    observations = [observe(jito.transform, r) for r in records]
    assert [o.observed_at for o in observations] == [p.moment for p in points]
    # A backfilled day and the snapshot of that day are one observation.
    assert observations[0] == observe(jito.transform, records_of(SOURCE, SAMPLE)[0])
