"""Beefy: three keyed responses joined into one record per vault, then observations."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from ingest import beefy as ingest_beefy
from ingest._records import Endpoint
from tests.conftest import FETCHED_AT, FIXTURES, raw
from tests.transforms import body_of, observe, rejection
from transforms import Context, apply, beefy
from transforms.units import apr_to_apy_pct, fraction_to_pct
from yieldstream.contracts import RawRecord, Rejection, Strategy, Venue
from yieldstream.errors import BadResponse, UpstreamRejected

SOURCE = "beefy"
BREAKDOWN = "apy-breakdown-readme-sample.json"
TVL = "tvl-documented-shape.json"
VAULTS = "vaults-documented-shape.json"
SERVED = {"/apy/breakdown": BREAKDOWN, "/tvl": TVL, "/vaults": VAULTS}
FAST = ingest_beefy.Config(attempts=2, wait_initial_s=0, wait_max_s=0)


def joined() -> list[dict[str, Any]]:
    parts = [
        e.items(body_of(SOURCE, name), name)
        for e, name in zip(ingest_beefy.ENDPOINTS, (BREAKDOWN, TVL, VAULTS), strict=True)
    ]
    return ingest_beefy.join(*parts)


def record(item: dict[str, Any] | str) -> RawRecord:
    text = item if isinstance(item, str) else json.dumps(item)
    return raw(SOURCE, text.encode(), endpoint="/apy/breakdown", native_id="v")


def by_id(vault_id: str) -> dict[str, Any]:
    return next(i for i in joined() if i["id"] == vault_id)


def serving(
    overrides: dict[str, list[httpx.Response]] | None = None,
) -> tuple[Callable[[httpx.Request], httpx.Response], list[httpx.Request]]:
    queue = {path: list(replies) for path, replies in (overrides or {}).items()}
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if queue.get(request.url.path):
            return queue[request.url.path].pop(0)
        name = SERVED.get(request.url.path)
        if name is None:
            return httpx.Response(404)
        return httpx.Response(200, content=(FIXTURES / SOURCE / name).read_bytes())

    return handler, seen


async def collected(handler: Callable[[httpx.Request], httpx.Response]) -> list[RawRecord]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        return [r async for r in ingest_beefy.collect(client, FAST, "run")]


# --- the pinned figure ---------------------------------------------------------------


def test_cometh_must_eth_is_288_pct_with_its_tvl_in_one_observation() -> None:
    obs = observe(beefy.transform, record(by_id("cometh-must-eth")))
    # totalApy 2.8825691266420788 is a fraction: 288.2569 % (Beefy's app shows "288%").
    # A 100x error would give 2.88 % or 28,825 %; both fail here.
    assert obs.apy_pct == pytest.approx(288.25691266420788, rel=1e-12)
    assert obs.tvl_usd == 295597.74  # the /tvl figure of the same vault, same poll
    assert obs.apy_base_pct is None
    assert obs.apy_reward_pct is None
    assert obs.product_id == "beefy:polygon:must-eth:cometh"
    assert (obs.chain, obs.symbol, obs.pool_meta) == ("Polygon", "MUST-ETH", "Cometh")
    assert (obs.strategy, obs.venue, obs.strategy_guessed) == (Strategy.FARMING, Venue.DEFI, False)
    assert (obs.protocol, obs.pool_id, obs.observed_at) == ("beefy", "cometh-must-eth", FETCHED_AT)


def test_breakdown_arithmetic_as_beefy_computes_it() -> None:
    b = body_of(SOURCE, BREAKDOWN)["cometh-must-eth"]
    # vaultApy = vaultApr net of the 4.5 % fee, compounded 2190 times a year:
    # 1.186973 x 0.955 = 1.133560 APR -> (1 + 1.133560/2190)^2190 - 1 = 2.105784 (210.58 %).
    net_apr_pct = fraction_to_pct(b["vaultApr"] * (1 - b["beefyPerformanceFee"]))
    assert apr_to_apy_pct(net_apr_pct, b["compoundingsPerYear"]) == pytest.approx(
        fraction_to_pct(b["vaultApy"]), rel=1e-9
    )
    # The docs' totalApy = (1 + vaultApy)(1 + tradingApr) - 1 gives 2.7991, not 2.8826:
    # which is why totalApy is stored as published and no split is derived.
    composed = (1 + b["vaultApy"]) * (1 + b["tradingApr"]) - 1
    assert composed == pytest.approx(2.7991264, abs=1e-6)
    assert composed != pytest.approx(b["totalApy"], rel=1e-3)


def test_a_vault_with_total_apy_only() -> None:
    obs = observe(beefy.transform, record(by_id("bifi-maxi")))
    assert obs.apy_pct == pytest.approx(7.598675804818633, rel=1e-12)
    assert obs.tvl_usd == 37679.65
    assert obs.product_id == "beefy:bsc:bifi:beefy"
    assert obs.chain == "BSC"
    assert obs.underlying_tokens == ["0xCa3F508B8e4Dd382eE878A314789373D80A5190A"]


def test_legacy_apy_sample_is_fractions_too() -> None:
    legacy = body_of(SOURCE, "apy-readme-sample.json")  # README: 21.85 is "2185%"
    assert fraction_to_pct(legacy["cake-swingby-bnb"]) == pytest.approx(2185.102752680053)
    assert fraction_to_pct(legacy["bifi-maxi"]) == pytest.approx(22.448469479728606)


# --- the keyed endpoints and the join ------------------------------------------------


def test_keyed_items_keep_each_value_verbatim_beside_its_key() -> None:
    body = body_of(SOURCE, BREAKDOWN)
    items = ingest_beefy.BREAKDOWN.items(body, "u")
    assert items == [{"id": k, "breakdown": v} for k, v in body.items()]
    tvl = ingest_beefy.TVL.items(body_of(SOURCE, TVL), "u")
    assert tvl == [
        {"chain": "56", "id": "bifi-maxi", "tvl": 37679.65},
        {"chain": "137", "id": "cometh-must-eth", "tvl": 295597.74},
    ]


@pytest.mark.parametrize(
    ("endpoint", "body", "message"),
    [
        (ingest_beefy.BREAKDOWN, [], "expected an object keyed by vault id at $"),
        (ingest_beefy.TVL, "oops", "expected an object keyed by vault id at $"),
        (ingest_beefy.TVL, {"56": [1, 2]}, "at $.56"),
        (ingest_beefy.VAULTS, {"id": "x"}, "expected a list at $"),
    ],
)
def test_bodies_of_another_shape_are_bad_responses(
    endpoint: Endpoint, body: Any, message: str
) -> None:
    with pytest.raises(BadResponse, match=message.replace("$", r"\$")):
        endpoint.items(body, "u")


async def test_collect_yields_one_joined_record_per_vault() -> None:
    handler, seen = serving()
    records = await collected(handler)
    assert [r.url.path for r in seen] == ["/apy/breakdown", "/tvl", "/vaults"]
    assert all(r.url.host == "api.beefy.finance" and r.method == "GET" for r in seen)
    assert [r.native_id for r in records] == ["bifi-maxi", "cometh-must-eth"]
    vaults = {v["id"]: v for v in body_of(SOURCE, VAULTS)}
    for rec in records:
        assert rec.endpoint == "/apy/breakdown"
        assert rec.problem is None
        assert rec.fetched_at == records[0].fetched_at  # one poll, one time
        payload = orjson.loads(rec.payload)
        assert payload["breakdown"] == body_of(SOURCE, BREAKDOWN)[rec.native_id]
        assert payload["vault"] == vaults[rec.native_id]
        assert payload["tvl"] == body_of(SOURCE, TVL)[payload["chain"]][rec.native_id]
        obs = observe(beefy.transform, rec)
        assert obs.apy_pct is not None
        assert obs.tvl_usd is not None


async def test_a_rate_limit_answer_is_retried() -> None:
    handler, seen = serving({"/tvl": [httpx.Response(429, headers={"Retry-After": "0"})]})
    records = await collected(handler)
    assert len(records) == 2
    assert [r.url.path for r in seen].count("/tvl") == 2


async def test_a_failed_response_fails_the_poll() -> None:
    handler, _ = serving({"/vaults": [httpx.Response(404), httpx.Response(404)]})
    with pytest.raises(UpstreamRejected):
        await collected(handler)


def test_vaults_only_in_tvl_or_only_in_breakdown() -> None:
    vault = body_of(SOURCE, VAULTS)[1]
    items = ingest_beefy.join(
        [{"id": "a", "breakdown": {"totalApy": 0.1}}],
        [{"chain": "137", "id": "b", "tvl": 10.0}],
        [{**vault, "id": "a"}, {**vault, "id": "b"}, {**vault, "id": "c"}],
    )
    assert [i["id"] for i in items] == ["a", "b"]  # c has no figure: no record
    only_apy = observe(beefy.transform, record(items[0]))
    assert (only_apy.apy_pct, only_apy.tvl_usd, only_apy.chain) == (10.0, None, "Polygon")
    only_tvl = observe(beefy.transform, record(items[1]))
    assert (only_tvl.apy_pct, only_tvl.tvl_usd) == (None, 10.0)


async def test_one_vault_id_on_two_chains_is_rejected_not_merged() -> None:
    tvl = {"56": {"bifi-maxi": 1.0}, "137": {"bifi-maxi": 2.0, "cometh-must-eth": 3.0}}
    handler, _ = serving({"/tvl": [httpx.Response(200, json=tvl)]})
    records = await collected(handler)
    assert [r.problem is None for r in records] == [True, False, True]
    assert "duplicate id" in (records[1].problem or "")
    assert isinstance(apply(beefy.transform, records[1], Context()), Rejection)


def test_a_big_integer_tvl_is_archived_verbatim() -> None:
    big = 2**53 + 1
    (item,) = ingest_beefy.join([], [{"chain": "1", "id": "x", "tvl": big}], [])
    assert orjson.dumps(item) == b'{"id":"x","chain":"1","tvl":9007199254740993}'


# --- retired vaults, poolMeta ----------------------------------------------------------


def test_a_retired_vault_is_kept_and_says_so() -> None:
    item = by_id("cometh-must-eth")
    item["vault"]["status"] = "eol"
    obs = observe(beefy.transform, record(item))
    assert obs.pool_meta == "Cometh (eol)"
    assert obs.product_id == "beefy:polygon:must-eth:cometh"  # the product is the same


def test_pool_meta_carries_a_date_in_the_name_as_defillama_does() -> None:
    item = by_id("cometh-must-eth")
    item["vault"].update(platformId="pendle", name="PT-sUSDe 27MAR25")
    obs = observe(beefy.transform, record(item))
    assert obs.pool_meta == "Pendle-27MAR25"
    assert obs.product_id == "beefy:polygon:must-eth:pendle-27mar25"


# --- bad items -----------------------------------------------------------------------


def _bad(**changes: Any) -> str:
    item = by_id("cometh-must-eth")
    for key, value in changes.items():
        if key.startswith("vault_"):
            item["vault"][key.removeprefix("vault_")] = value
        elif key.startswith("b_"):
            item["breakdown"][key.removeprefix("b_")] = value
        elif value is None:
            item.pop(key)
        else:
            item[key] = value
    return json.dumps(item)


@pytest.mark.parametrize(
    ("text", "stage", "reason"),
    [
        (_bad(b_totalApy="2.88"), "decode", "Expected `float | null`, got `str`"),
        (_bad(b_totalApy=float("nan")), "decode", "not a finite number: nan"),
        (_bad(b_totalApy=-1.5), "validate", ">= -100.0 - at `$.apy_pct`"),
        (_bad(b_totalApy=1e5), "validate", "<= 1000000.0 - at `$.apy_pct`"),
        (_bad(tvl=-5.0), "validate", ">= 0.0 - at `$.tvl_usd`"),
        (_bad(tvl="295597.74"), "decode", "got `str` - at `$.tvl`"),
        (_bad(vault=None), "validate", "is not in /vaults"),
        (_bad(chain="999999"), "validate", "chain id '999999' of /tvl is not a known chain"),
        (_bad(vault_assets=[]), "validate", "lists no assets"),
        (_bad(vault_assets=None), "decode", "Expected `array`, got `null`"),
        (_bad(breakdown=None, tvl=None), "validate", "neither an APY nor a TVL"),
        ('{"breakdown": {"totalApy": 1}}', "decode", "missing required field `id`"),
        ("[1, 2]", "decode", "Expected `object`, got `array`"),
    ],
)
def test_bad_items_are_rejected_with_a_reason(text: str, stage: str, reason: str) -> None:
    rej = rejection(beefy.transform, record(text))
    assert rej.stage == stage
    assert reason in rej.reason


def test_the_same_record_twice_gives_the_same_observation() -> None:
    rec = record(by_id("cometh-must-eth"))
    assert observe(beefy.transform, rec) == observe(beefy.transform, rec)
