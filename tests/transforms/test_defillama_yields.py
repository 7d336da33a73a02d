"""DefiLlama /pools items -> observations, against every recorded real response."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import pytest

from tests.conftest import FETCHED_AT, raw
from tests.transforms import body_of, fixture_files, observe, records_of, rejection
from transforms import Context, apply, floor_hour
from transforms import defillama_yields as yields
from transforms.defillama_yields import PROTOCOLS
from yieldstream.contracts import RawRecord, Rejection, Strategy, Venue

SOURCE = "defillama-yields"
POOL_FILES = [f.name for f in fixture_files(SOURCE) if f.name.startswith("pools-")]
FETCH_HOUR = datetime(2026, 3, 12, 12, tzinfo=UTC)  # FETCHED_AT floored


def categories() -> Context:
    """Protocol categories as the runner builds them from the recorded /protocols rows."""
    rows = body_of("defillama-protocols", "protocols-rows-onchain-analytics-first6.json")
    return Context(MappingProxyType({PROTOCOLS: {r["slug"]: r["category"] for r in rows}}))


def real_item(pool: str) -> dict[str, Any]:
    """A copy of one real /pools item, by pool id."""
    for name in POOL_FILES:
        for item in body_of(SOURCE, name)["data"]:
            if item["pool"] == pool:
                return dict(item)
    raise LookupError(pool)


MAPLE = "43641cf5-a92e-416b-bce9-27113d3c0db6"  # apy = apyBase + apyReward, reward tokens
SKY = "d8c4eff5-c8a9-46fc-a888-057c4c668e72"  # apyBase and apyReward null, apy 4.75
LIDO = "747c1d2a-c668-4682-b9f9-296708a3dd90"  # project "lido": Liquid Staking
AAVE = "29932dea-cd71-44c3-95bd-3e1525f4e3dd"  # project "aave-v3": Lending, apy 0


def record(item: dict[str, Any] | str, **kwargs: Any) -> RawRecord:
    payload = item if isinstance(item, str) else json.dumps(item)
    return raw(SOURCE, payload.encode(), endpoint="/pools", **kwargs)


# --- every recorded response -------------------------------------------------------


def test_there_are_recorded_pools_responses() -> None:
    assert set(POOL_FILES) >= {"pools-stablecoin_quant.json", "pools-2records-from-cn-doc.json"}


@pytest.mark.parametrize("name", POOL_FILES)
def test_every_recorded_item_maps_field_for_field(name: str) -> None:
    items = body_of(SOURCE, name)["data"]
    records = records_of(SOURCE, name)
    assert len(records) == len(items) > 0
    for item, rec in zip(items, records, strict=True):
        obs = observe(yields.transform, rec)
        assert rec.native_id == item["pool"]
        assert obs.source == SOURCE
        assert obs.pool_id == item["pool"]
        assert obs.observed_at == FETCH_HOUR
        assert obs.protocol == item["project"]
        assert obs.chain == item["chain"]
        assert obs.symbol == item["symbol"]
        assert obs.venue is Venue.DEFI
        assert obs.apy_pct == item["apy"]
        assert obs.apy_base_pct == item["apyBase"]
        assert obs.apy_reward_pct == item["apyReward"]
        assert obs.tvl_usd == item["tvlUsd"]
        assert obs.stablecoin is item["stablecoin"]
        assert obs.il_risk is (item["ilRisk"] == "yes")
        assert obs.exposure == item["exposure"]
        assert obs.outlier is item["outlier"]
        assert obs.pool_meta == item["poolMeta"]
        assert obs.underlying_tokens == item["underlyingTokens"]
        assert obs.reward_tokens == item["rewardTokens"]


def test_exact_values_of_a_pool_with_base_and_reward_apy() -> None:
    rec = next(r for r in records_of(SOURCE, "pools-stablecoin_quant.json") if r.native_id == MAPLE)
    obs = observe(yields.transform, rec, categories())
    assert (obs.apy_pct, obs.apy_base_pct, obs.apy_reward_pct) == (9.07259, 6.87259, 2.2)
    assert obs.tvl_usd == 2506311653.0
    assert isinstance(obs.tvl_usd, float)
    assert (obs.protocol, obs.symbol, obs.pool_meta) == ("maple", "USDC", "Syrup USDC")
    assert obs.reward_tokens == ["0x643C4E15d7d62Ad0aBeC4a9BD4b001aA3Ef52d66"]
    assert obs.underlying_tokens == ["0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"]
    assert obs.stablecoin is True
    assert obs.il_risk is False
    # maple is not in the /protocols sample: a guess from its fields (single USDC).
    assert (obs.strategy, obs.strategy_guessed) == (Strategy.LENDING, True)
    assert obs.category is None


def test_apy_without_a_split_keeps_the_split_empty() -> None:
    # Real: apy 4.75 with apyBase and apyReward null; never invent a base APY.
    obs = observe(yields.transform, record(real_item(SKY)))
    assert (obs.apy_pct, obs.apy_base_pct, obs.apy_reward_pct) == (4.75, None, None)


def test_zero_apy_is_a_figure_not_a_missing_one() -> None:
    obs = observe(yields.transform, record(real_item(AAVE)))
    assert obs.apy_pct == 0.0
    assert obs.apy_base_pct == 0.0


# --- observation time --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fetched_at", "hour"),
    [
        (datetime(2026, 3, 12, 12, 0, 0, tzinfo=UTC), datetime(2026, 3, 12, 12, tzinfo=UTC)),
        (
            datetime(2026, 3, 12, 12, 59, 59, 999999, tzinfo=UTC),
            datetime(2026, 3, 12, 12, tzinfo=UTC),
        ),
        (datetime(2026, 3, 12, 13, 0, 0, tzinfo=UTC), datetime(2026, 3, 12, 13, tzinfo=UTC)),
        # Not UTC: the UTC hour counts, also for half-hour offsets.
        (
            datetime(2026, 3, 12, 18, 15, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            datetime(2026, 3, 12, 12, tzinfo=UTC),
        ),
        (
            datetime(2026, 3, 12, 1, 5, tzinfo=timezone(timedelta(hours=-3))),
            datetime(2026, 3, 12, 4, tzinfo=UTC),
        ),
    ],
)
def test_observed_at_is_the_utc_hour_of_the_fetch(fetched_at: datetime, hour: datetime) -> None:
    obs = observe(yields.transform, record(real_item(MAPLE), fetched_at=fetched_at))
    assert obs.observed_at == hour
    assert obs.observed_at.utcoffset() == timedelta(0)
    assert floor_hour(fetched_at) == hour


def test_two_fetches_in_one_hour_share_the_key() -> None:
    item = real_item(MAPLE)
    first = observe(yields.transform, record(item, fetched_at=FETCHED_AT))
    again = observe(yields.transform, record(item, fetched_at=FETCHED_AT + timedelta(minutes=20)))
    assert first == again


# --- strategy from the /protocols categories -------------------------------------


@pytest.mark.parametrize(
    ("project", "category", "strategy"),
    [
        ("lido", "Liquid Staking", Strategy.STAKING),
        ("ether.fi-stake", "Liquid Restaking", Strategy.STAKING),
        ("aave-v3", "Lending", Strategy.LENDING),
        ("uniswap-v3", "Dexs", Strategy.FARMING),
        ("raydium-amm", "Dexs", Strategy.FARMING),
        ("maple", None, Strategy.LENDING),  # not in the categories: guessed (single USDC)
    ],
)
def test_strategy_comes_from_the_protocol_category(
    project: str, category: str | None, strategy: Strategy
) -> None:
    item = {**real_item(MAPLE), "project": project}
    obs = observe(yields.transform, record(item), categories())
    assert obs.strategy is strategy
    assert obs.category == category
    assert obs.protocol == project
    assert obs.strategy_guessed is (category is None)


def test_recorded_staking_and_lending_pools_are_classified() -> None:
    ctx = categories()
    assert observe(yields.transform, record(real_item(LIDO)), ctx).strategy is Strategy.STAKING
    assert observe(yields.transform, record(real_item(AAVE)), ctx).strategy is Strategy.LENDING


def test_unknown_category_is_a_guess_and_kept_for_a_later_replay() -> None:
    ctx = Context(MappingProxyType({PROTOCOLS: {"maple": "Onchain Treasury Bills"}}))
    obs = observe(yields.transform, record(real_item(MAPLE)), ctx)
    assert (obs.strategy, obs.strategy_guessed) == (Strategy.LENDING, True)
    assert obs.category == "Onchain Treasury Bills"


# Every recorded /pools item (the demo's /pools serves the same): pool -> strategy.
# With the recorded /protocols categories, where they name the pool's protocol:
WITH_CATEGORIES = {
    "66985a81-9c51-46ca-9977-42b4fe7bc6df": (Strategy.LENDING, True),  # ethena sUSDe
    MAPLE: (Strategy.LENDING, True),  # maple Syrup USDC: credit
    SKY: (Strategy.LENDING, True),  # sky sUSDS: the savings rate
    "a87bbade-7728-43d9-bc23-2538812be3cc": (Strategy.FARMING, True),  # merkl: rewards only
    AAVE: (Strategy.LENDING, False),  # aave-v3: Lending
    LIDO: (Strategy.STAKING, False),  # lido: Liquid Staking
    "46bd2bdf-6d92-4066-b482-e885ee172264": (Strategy.STAKING, False),  # ether.fi: Liquid Restaking
    # Not among the recorded /protocols rows: a guess from the fields (single, no IL).
    "d4b3c522-6127-4b89-bedf-83641cdcd2eb": (Strategy.STAKING, True),  # rocket-pool rETH
    "0e7d0722-9054-4907-8593-567b353c0900": (Strategy.STAKING, True),  # jito JitoSOL
}
# Without any: every strategy is a guess from the pool's own fields.
WITHOUT_CATEGORIES = {pool: (strategy, True) for pool, (strategy, _) in WITH_CATEGORIES.items()}


@pytest.mark.parametrize(
    ("ctx", "expected"),
    [(categories(), WITH_CATEGORIES), (Context(), WITHOUT_CATEGORIES)],
    ids=["with-categories", "without"],
)
def test_every_recorded_pool_is_classified(
    ctx: Context, expected: dict[str, tuple[Strategy, bool]]
) -> None:
    got = {}
    for name in POOL_FILES:
        for rec in records_of(SOURCE, name):
            obs = observe(yields.transform, rec, ctx)
            got[obs.pool_id] = (obs.strategy, obs.strategy_guessed)
            assert (obs.category is None) is obs.strategy_guessed
    assert got == expected


def test_a_pool_lp_is_farming_whatever_its_protocol() -> None:
    lp = {**real_item(AAVE), "symbol": "SUSDE-USDC", "exposure": "multi", "ilRisk": "yes"}
    obs = observe(yields.transform, record(lp), categories())
    assert (obs.strategy, obs.strategy_guessed, obs.category) == (
        Strategy.FARMING,
        False,
        "Lending",
    )


# --- APY split and schema drift --------------------------------------------------


@pytest.mark.parametrize(
    ("base", "reward", "apy"),
    [(6.87259, 2.2, 9.07259), (None, 0.60403, 0.60403), (2.68, None, 2.68), (0.0, 0.0, 0.0)],
)
def test_null_apy_is_the_sum_of_base_and_reward(
    base: float | None, reward: float | None, apy: float
) -> None:
    item = {**real_item(MAPLE), "apy": None, "apyBase": base, "apyReward": reward}
    obs = observe(yields.transform, record(item))
    assert obs.apy_pct == pytest.approx(apy, abs=1e-12)
    assert (obs.apy_base_pct, obs.apy_reward_pct) == (base, reward)


def test_no_apy_at_all_keeps_the_tvl_figure() -> None:
    item = {**real_item(MAPLE), "apy": None, "apyBase": None, "apyReward": None}
    obs = observe(yields.transform, record(item))
    assert obs.apy_pct is None
    assert obs.tvl_usd == 2506311653.0


def test_neither_apy_nor_tvl_is_rejected() -> None:
    item = {**real_item(MAPLE), "apy": None, "apyBase": None, "apyReward": None, "tvlUsd": None}
    rej = rejection(yields.transform, record(item))
    assert rej.stage == "validate"
    assert "neither an APY nor a TVL" in rej.reason


OLDER_API_MISSING = (
    "il7d",
    "apyBase7d",
    "apyMean30d",
    "volumeUsd1d",
    "volumeUsd7d",
    "apyBaseInception",
)


@pytest.mark.parametrize("pool", [MAPLE, SKY, LIDO, "46bd2bdf-6d92-4066-b482-e885ee172264"])
def test_older_api_records_without_the_newer_fields_parse_the_same(pool: str) -> None:
    full = real_item(pool)
    older = {k: v for k, v in full.items() if k not in OLDER_API_MISSING}
    assert set(full) - set(older) == set(OLDER_API_MISSING)
    assert observe(yields.transform, record(older)) == observe(yields.transform, record(full))


def test_only_the_required_fields_are_enough() -> None:
    item = {"pool": "p-1", "chain": "Tron", "project": "justlend", "symbol": "USDT", "apy": 3.5}
    obs = observe(yields.transform, record(item))
    assert (obs.pool_id, obs.chain, obs.apy_pct, obs.tvl_usd) == ("p-1", "Tron", 3.5, None)
    assert obs.il_risk is None
    assert obs.underlying_tokens is None


def test_exponent_notation_is_a_number() -> None:
    text = json.dumps({**real_item(MAPLE), "apyReward": 0.0}).replace(
        '"apyReward": 0.0', '"apyReward": 1e-05'
    )
    obs = observe(yields.transform, record(text))
    assert obs.apy_reward_pct == 1e-05


def test_null_and_empty_entries_in_token_lists_are_dropped() -> None:
    item = {**real_item(MAPLE), "underlyingTokens": [None, "", "0xabc"], "rewardTokens": []}
    obs = observe(yields.transform, record(item))
    assert obs.underlying_tokens == ["0xabc"]
    assert obs.reward_tokens == []


def test_il_risk_yes_is_true() -> None:
    obs = observe(yields.transform, record({**real_item(MAPLE), "ilRisk": "yes"}))
    assert obs.il_risk is True


# --- APY and TVL ranges ----------------------------------------------------------


@pytest.mark.parametrize("apy", [-100.0, -99.9, 0.0, 924_000.5, 1e6])
def test_apy_inside_the_range_is_kept(apy: float) -> None:
    # APYs above 900,000 % occur in the real data; -100 % is a total loss.
    obs = observe(yields.transform, record({**real_item(MAPLE), "apy": apy}))
    assert obs.apy_pct == apy


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("apy", 2e6, "<= 1000000.0 - at `$.apy_pct`"),
        ("apy", 1_000_000.001, "<= 1000000.0 - at `$.apy_pct`"),
        ("apy", -100.5, ">= -100.0 - at `$.apy_pct`"),
        ("apyBase", 5e6, "<= 1000000.0 - at `$.apy_base_pct`"),
        ("apyReward", -250.0, ">= -100.0 - at `$.apy_reward_pct`"),
        ("tvlUsd", -1.0, ">= 0.0 - at `$.tvl_usd`"),
        ("tvlUsd", -2506311653, ">= 0.0 - at `$.tvl_usd`"),
        ("tvlUsd", 1e16, "<= 1000000000000000.0 - at `$.tvl_usd`"),
        ("pool", "", "length >= 1 - at `$.pool_id`"),
        ("chain", "", "length >= 1 - at `$.chain`"),
    ],
)
def test_out_of_range_values_are_rejected_at_validation(
    field: str, value: Any, reason: str
) -> None:
    rej = rejection(yields.transform, record({**real_item(MAPLE), field: value}))
    assert rej.stage == "validate"
    assert reason in rej.reason


# --- bad records become rejections, never exceptions --------------------------------


@pytest.mark.parametrize(
    ("value", "literal"),
    [(float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity")],
)
@pytest.mark.parametrize("field", ["apy", "tvlUsd", "apyBase"])
def test_nan_and_infinity_literals_are_rejected_naming_the_field(
    value: float, literal: str, field: str
) -> None:
    # The lenient fetch keeps such items (json.dumps writes NaN back): one bad item
    # must not lose the response, and its rejection must say what is wrong.
    payload = json.dumps({**real_item(MAPLE), field: value})
    assert f'"{field}": {literal}' in payload
    shown = repr(value)
    rej = rejection(yields.transform, record(payload))
    assert rej.stage == "decode"
    assert f"not a finite number: {shown} at `$.{field}`" in rej.reason


def test_nan_in_a_nested_unused_field_is_named_too() -> None:
    item = real_item(MAPLE)
    item["predictions"] = {**item["predictions"], "predictedProbability": float("nan")}
    rej = rejection(yields.transform, record(json.dumps(item)))
    assert "nan at `$.predictions.predictedProbability`" in rej.reason


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("apy", "9.07", "Expected `float | null`, got `str` - at `$.apy`"),
        ("tvlUsd", "2506311653", "Expected `float | null`, got `str` - at `$.tvlUsd`"),
        ("apyReward", True, "Expected `float | null`, got `bool` - at `$.apyReward`"),
        ("apyBase", [6.8], "Expected `float | null`, got `array` - at `$.apyBase`"),
        ("pool", 12345, "Expected `str`, got `int` - at `$.pool`"),
        ("stablecoin", "true", "Expected `bool | null`, got `str` - at `$.stablecoin`"),
        ("rewardTokens", "0xabc", "Expected `array | null`, got `str` - at `$.rewardTokens`"),
        ("apy", 1e400, "Number out of range - at `$.apy`"),
    ],
)
def test_wrong_types_are_rejected_not_coerced(field: str, value: Any, reason: str) -> None:
    text = json.dumps({**real_item(MAPLE), field: value})
    if value == 1e400:  # json.dumps would write Infinity; upstream would send the digits
        text = text.replace("Infinity", "1e400")
    rej = rejection(yields.transform, record(text))
    assert rej.stage == "decode"
    assert reason in rej.reason


@pytest.mark.parametrize("field", ["pool", "chain", "project", "symbol"])
def test_missing_required_field_is_rejected(field: str) -> None:
    item = {k: v for k, v in real_item(MAPLE).items() if k != field}
    rej = rejection(yields.transform, record(item))
    assert rej.stage == "decode"
    assert f"Object missing required field `{field}`" in rej.reason


@pytest.mark.parametrize(
    "payload", ["[1, 2]", "null", '"pool"', '{"pool": "p", "chain": "Eth', "", "{]"]
)
def test_not_an_item_at_all_is_rejected(payload: str) -> None:
    rej = rejection(yields.transform, record(payload))
    assert rej.stage == "decode"
    assert rej.reason.startswith("undecodable item: ")


def test_a_rejection_keeps_the_original_payload_and_identity() -> None:
    rec = record('{"pool": "p", "chain": "Ethereum", "project": "x", "symbol": "s", "apy": NaN}')
    result = apply(yields.transform, rec, Context())
    assert isinstance(result, Rejection)
    assert result.payload == rec.payload
    assert result.endpoint == "/pools"
    assert result.raw_id == rec.raw_id
    assert len(result.payload_sha256) == 64
    assert result.rejected_at.tzinfo is not None


def test_a_transform_bug_becomes_a_rejection_not_a_crash() -> None:
    def broken(rec: RawRecord, ctx: Context) -> list[Any]:
        raise KeyError("oops")

    result = apply(broken, record(real_item(MAPLE)), Context())
    assert isinstance(result, Rejection)
    assert result.stage == "validate"
    assert result.reason == "transform failed: KeyError: 'oops'"
