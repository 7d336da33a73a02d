"""Yearn (yDaemon): vaults per chain -> farming observations."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from ingest import yearn as ingest_yearn
from tests.conftest import FETCHED_AT, FIXTURES, raw
from tests.transforms import body_of, observe, records_of, rejection
from transforms import yearn
from transforms.units import fraction_to_pct
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import UpstreamRejected

SOURCE = "yearn"
LIVE = "8453-vaults-all-from-ydaemon-store.json"
STORE = "ydaemon-store-apy-8453.json"  # yDaemon's internal store: no endpoint's name
CBBTC = "0x03c5AfF0cd5e40889d689fD9D9Caff286b1BD7Fb"  # Moonwell cbBTC Lender WETH Borrower
FAST = ingest_yearn.Config(chains=("8453", "1"), attempts=2, wait_initial_s=0, wait_max_s=0)


def vault(address: str = CBBTC) -> dict[str, Any]:
    return next(v for v in body_of(SOURCE, LIVE) if v["address"] == address)


def record(item: dict[str, Any] | str, chain: str = "8453") -> RawRecord:
    text = item if isinstance(item, str) else json.dumps(item)
    return raw(SOURCE, text.encode(), endpoint=f"/{chain}/vaults/all", native_id="v")


# --- the pinned figure ---------------------------------------------------------------


def test_moonwell_cbbtc_vault_is_its_forward_apr_in_percent() -> None:
    (rec,) = [r for r in records_of(SOURCE, LIVE) if r.native_id == CBBTC]
    assert rec.endpoint == "/8453/vaults/all"
    obs = observe(yearn.transform, rec)
    # forwardAPR.netAPR 0.03912007650530569 (the APR oracle's) x 100 = 3.912 %, the
    # "Est. APY" yearn.fi shows and DefiLlama's apyBase; a 100x error fails here.
    assert obs.apy_base_pct == pytest.approx(3.912007650530569, rel=1e-12)
    assert obs.apy_reward_pct == 0.0  # stakingRewardsAPR null
    assert obs.apy_pct == obs.apy_base_pct
    assert obs.tvl_usd == 480000.0
    assert obs.product_id == "yearn-finance:base:cbbtc"
    assert (obs.chain, obs.symbol, obs.pool_id) == ("Base", "cbBTC", f"8453-{CBBTC}")
    assert (obs.strategy, obs.venue, obs.strategy_guessed) == (Strategy.FARMING, Venue.DEFI, False)
    assert obs.underlying_tokens == ["0xcbB7C0000aB88B473b1f5aFd9ef808440eed33Bf"]
    assert (obs.observed_at, obs.pool_meta) == (FETCHED_AT, None)


def test_every_recorded_vault_becomes_one_product() -> None:
    products = [observe(yearn.transform, r).product_id for r in records_of(SOURCE, LIVE)]
    assert products == [
        "yearn-finance:base:usdc",
        "yearn-finance:base:cbbtc",
        "yearn-finance:base:cbeth",
    ]


def test_historical_net_apr_is_the_simple_30_day_share_price_growth() -> None:
    """The store's netAPY is yDaemon's GetEvolution: ((today - month) / month) / 30 * 365."""
    store = body_of(SOURCE, STORE)["apy"]
    assert len(store) == 104
    cbbtc = store[CBBTC.lower()]
    pps = cbbtc["pricePerShare"]
    # (1.03223528 - 1.0302133) / 1.0302133 = 0.0019627 in 30 days, x 365/30 = 0.023879:
    # 2.388 % simple (compounded monthly it would be 2.414 %).
    growth = (pps["today"] - pps["monthAgo"]) / pps["monthAgo"]
    assert growth / 30 * 365 == pytest.approx(cbbtc["netAPY"], rel=1e-12)
    assert fraction_to_pct(cbbtc["netAPY"]) == pytest.approx(2.3879284674996684)
    matching = [
        k
        for k, v in store.items()
        if v["pricePerShare"]["monthAgo"]
        and (v["pricePerShare"]["today"] / v["pricePerShare"]["monthAgo"] - 1) / 30 * 365
        == pytest.approx(v["netAPY"], rel=1e-9, abs=1e-15)
    ]
    # All but three young vaults, annualised over their shorter life (7, 12, 3 days).
    assert len(matching) == 100


def test_the_live_fixture_carries_the_store_values_under_the_live_names() -> None:
    store = body_of(SOURCE, STORE)["apy"]
    for item in body_of(SOURCE, LIVE):
        stored = store[item["address"].lower()]
        assert item["apr"]["netAPR"] == stored["netAPY"]
        assert item["apr"]["forwardAPR"]["netAPR"] == stored["forwardAPY"]["netAPY"]


# --- which figure ----------------------------------------------------------------------


def test_without_a_forward_figure_the_historical_one_is_used() -> None:
    item = vault()
    item["apr"]["forwardAPR"] = {"type": "", "netAPR": None}
    assert observe(yearn.transform, record(item)).apy_base_pct == pytest.approx(2.3879284674996)
    del item["apr"]["forwardAPR"]
    assert observe(yearn.transform, record(item)).apy_base_pct == pytest.approx(2.3879284674996)


def test_a_forward_figure_of_zero_is_kept_as_defillama_keeps_it() -> None:
    item = vault()
    item["apr"]["forwardAPR"]["netAPR"] = 0
    assert observe(yearn.transform, record(item)).apy_pct == 0.0


def test_a_huge_historical_figure_yields_to_the_forward_one() -> None:
    item = vault()  # vault 0xbdd79a7d... of the store: netAPY 106.09 (10,609 %)
    item["apr"].update(netAPR=106.09675024187982)
    item["apr"]["forwardAPR"]["netAPR"] = 0.0236609535019916
    assert observe(yearn.transform, record(item)).apy_pct == pytest.approx(2.36609535019916)


def test_staking_rewards_add_to_the_apy() -> None:
    item = vault()
    item["apr"]["extra"]["stakingRewardsAPR"] = 0.05
    obs = observe(yearn.transform, record(item, chain="8453"))
    assert obs.apy_reward_pct == pytest.approx(5.0)
    assert obs.apy_pct == pytest.approx(3.912007650530569 + 5.0)


@pytest.mark.parametrize(
    ("where", "meta"), [("details", "retired"), ("info", "retired"), ("hidden", "hidden")]
)
def test_retired_and_hidden_vaults_are_kept_and_say_so(where: str, meta: str) -> None:
    item = vault()
    if where == "hidden":
        item["details"]["isHidden"] = True
    else:
        item[where]["isRetired"] = True
    obs = observe(yearn.transform, record(item))
    assert obs.pool_meta == meta
    assert obs.product_id == "yearn-finance:base:cbbtc"


def test_the_same_address_on_two_chains_is_two_pools() -> None:
    item = vault()
    del item["chainID"]
    base = observe(yearn.transform, record(item, "8453"))
    arbitrum = observe(yearn.transform, record(item, "42161"))
    assert base.pool_id != arbitrum.pool_id
    assert arbitrum.product_id == "yearn-finance:arbitrum:cbbtc"


# --- bad items -----------------------------------------------------------------------


def _bad(**changes: Any) -> str:
    item = vault()
    for key, value in changes.items():
        if key.startswith("apr_"):
            item["apr"][key.removeprefix("apr_")] = value
        elif value is None:
            item.pop(key)
        else:
            item[key] = value
    return json.dumps(item)


@pytest.mark.parametrize(
    ("text", "stage", "reason"),
    [
        (
            _bad(apr_forwardAPR={"netAPR": "0.039"}),
            "decode",
            "got `str` - at `$.apr.forwardAPR.netAPR`",
        ),
        (_bad(apr_forwardAPR={"netAPR": float("inf")}), "decode", "not a finite number: inf"),
        (_bad(apr_forwardAPR={"netAPR": -2.0}), "validate", ">= -100.0 - at `$.apy_pct`"),
        (_bad(apr_forwardAPR={"netAPR": 1e5}), "validate", "<= 1000000.0 - at `$.apy_pct`"),
        (_bad(tvl={"tvl": -1.0}), "validate", ">= 0.0 - at `$.tvl_usd`"),
        (_bad(tvl={"tvl": 1e16}), "validate", "<= 1000000000000000.0 - at `$.tvl_usd`"),
        (_bad(token=None), "decode", "missing required field `token`"),
        (_bad(address=None), "decode", "missing required field `address`"),
        (_bad(chainID=1), "validate", "vault of chain 1 in the response of chain 8453"),
        (_bad(apr_forwardAPR=None, apr_netAPR=None, tvl={"tvl": None}), "validate", "neither"),
        ("[]", "decode", "Expected `object`, got `array`"),
    ],
)
def test_bad_items_are_rejected_with_a_reason(text: str, stage: str, reason: str) -> None:
    rej = rejection(yearn.transform, record(text))
    assert rej.stage == stage
    assert reason in rej.reason


def test_an_unknown_chain_is_rejected() -> None:
    item = vault()
    del item["chainID"]
    rej = rejection(yearn.transform, record(item, chain="999"))
    assert "chain '999' of /999/vaults/all is not a known chain" in rej.reason


def test_the_same_record_twice_gives_the_same_observation() -> None:
    rec = record(vault())
    assert observe(yearn.transform, rec) == observe(yearn.transform, rec)


# --- collect ---------------------------------------------------------------------------


async def test_collect_asks_each_chain_and_retries_a_rate_limit() -> None:
    seen: list[httpx.Request] = []
    replies = {"/1/vaults/all": [httpx.Response(429, headers={"Retry-After": "0"})]}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if replies.get(request.url.path):
            return replies[request.url.path].pop(0)
        if request.url.path == "/8453/vaults/all":
            return httpx.Response(200, content=(FIXTURES / SOURCE / LIVE).read_bytes())
        return httpx.Response(200, json=[])

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        records = [r async for r in ingest_yearn.collect(client, FAST, "run")]
    assert [r.url.path for r in seen] == ["/8453/vaults/all", "/1/vaults/all", "/1/vaults/all"]
    assert all(r.url.host == "ydaemon.yearn.fi" for r in seen)
    assert len(records) == 3
    assert {r.endpoint for r in records} == {"/8453/vaults/all"}


async def test_a_failing_chain_does_not_stop_the_others() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/8453/vaults/all":
            return httpx.Response(200, content=(FIXTURES / SOURCE / LIVE).read_bytes())
        return httpx.Response(404, json={"error": "chain not supported"})

    records: list[RawRecord] = []

    async def drain(client: httpx.AsyncClient) -> None:
        async for r in ingest_yearn.collect(client, FAST, "run"):
            records.append(r)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(UpstreamRejected, match="1 of the requests failed: /1/vaults/all"):
            await drain(client)
    assert len(records) == 3


def test_big_integers_and_decimal_strings_are_archived_without_loss() -> None:
    item = vault()
    item["tvl"]["totalAssets"] = "123456789012345678901234567890"
    text = json.dumps([{**item, "pricePerShare": 1000000000000000000000000001}])
    (rec,) = ingest_yearn.ENDPOINTS[0].records(
        json.loads(text), source=SOURCE, fetched_at=FETCHED_AT, run_id="t", path="/8453/vaults/all"
    )
    assert b'"totalAssets":"123456789012345678901234567890"' in rec.payload
    assert b'"pricePerShare":1000000000000000000000000001' in rec.payload
    assert observe(yearn.transform, rec).apy_pct == pytest.approx(3.912007650530569)
