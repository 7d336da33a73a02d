"""DefiLlama /protocols rows -> one TVL observation per protocol, with its strategy."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import raw
from tests.transforms import body_of, observe, records_of, rejection
from transforms import defillama_protocols as protocols
from yieldstream.contracts import RawRecord, Strategy, Venue

SOURCE = "defillama-protocols"
SAMPLE = "protocols-rows-onchain-analytics-first6.json"
FETCH_HOUR = datetime(2026, 3, 12, 12, tzinfo=UTC)


def real_row(slug: str) -> dict[str, Any]:
    return dict(next(r for r in body_of(SOURCE, SAMPLE) if r["slug"] == slug))


def record(row: dict[str, Any] | str) -> RawRecord:
    payload = row if isinstance(row, str) else json.dumps(row)
    return raw(SOURCE, payload.encode(), endpoint="/protocols", native_id="n")


def test_every_recorded_row_maps_field_for_field() -> None:
    rows = body_of(SOURCE, SAMPLE)
    records = records_of(SOURCE, SAMPLE)
    assert len(records) == len(rows) == 6
    for row, rec in zip(rows, records, strict=True):
        obs = observe(protocols.transform, rec)
        assert rec.native_id == row["slug"]
        assert obs.source == SOURCE
        assert obs.pool_id == obs.protocol == row["slug"]
        assert obs.observed_at == FETCH_HOUR
        assert obs.tvl_usd == row["tvl"]
        assert obs.category == row["category"]
        assert obs.pool_meta == row["name"]
        assert obs.chain == row["chain"]
        assert obs.symbol == row["symbol"]
        assert obs.venue is Venue.DEFI
        assert obs.apy_pct is None


def test_exact_values_of_lido() -> None:
    obs = observe(protocols.transform, record(real_row("lido")))
    assert obs.tvl_usd == 17760598548.192703
    assert obs.strategy is Strategy.STAKING
    assert obs.category == "Liquid Staking"
    assert (obs.pool_meta, obs.chain, obs.symbol) == ("Lido", "Multi-Chain", "LDO")


@pytest.mark.parametrize(
    ("slug", "strategy"),
    [
        ("lido", Strategy.STAKING),
        ("aave-v3", Strategy.LENDING),
        ("ether.fi-stake", Strategy.STAKING),
        ("uniswap-v3", Strategy.FARMING),
        ("raydium-amm", Strategy.FARMING),
    ],
)
def test_strategy_comes_from_the_category(slug: str, strategy: Strategy) -> None:
    assert observe(protocols.transform, record(real_row(slug))).strategy is strategy


def test_single_chain_protocol_keeps_its_chain() -> None:
    assert observe(protocols.transform, record(real_row("raydium-amm"))).chain == "Solana"


@pytest.mark.parametrize("change", [{"category": None}, {"category": "Onchain Treasury Bills"}])
def test_missing_or_unknown_category_is_kept_as_other(change: dict[str, Any]) -> None:
    # ("Bridge" was the unknown example; it is mapped now: bridge liquidity is farming.)
    obs = observe(protocols.transform, record({**real_row("aave-v3"), **change}))
    assert obs.strategy is Strategy.OTHER
    assert obs.category == change["category"]
    assert obs.strategy_guessed is False  # a protocol's row is never a guess


def test_row_without_category_key_is_kept_as_other() -> None:
    row = {k: v for k, v in real_row("aave-v3").items() if k != "category"}
    obs = observe(protocols.transform, record(row))
    assert obs.strategy is Strategy.OTHER
    assert obs.category is None


def test_zero_tvl_is_a_figure() -> None:
    assert observe(protocols.transform, record({**real_row("lido"), "tvl": 0})).tvl_usd == 0.0


def test_null_tvl_has_no_figure_and_is_rejected_with_the_reason() -> None:
    rej = rejection(protocols.transform, record({**real_row("lido"), "tvl": None}))
    assert rej.stage == "validate"
    assert "neither an APY nor a TVL" in rej.reason


def test_dash_symbol_and_missing_chain() -> None:
    row = {**real_row("uniswap-v3"), "symbol": "-"}
    del row["chain"]
    obs = observe(protocols.transform, record(row))
    assert obs.symbol == ""
    assert obs.chain == "Multi-Chain"


def test_string_ids_and_null_changes_are_ignored() -> None:
    row = {**real_row("lido"), "id": "2", "change_1h": None, "change_1d": None}
    assert observe(protocols.transform, record(row)).tvl_usd == 17760598548.192703


@pytest.mark.parametrize(
    ("change", "stage", "reason"),
    [
        ({"tvl": float("nan")}, "decode", "not a finite number: nan at `$.tvl`"),
        ({"tvl": "17760598548"}, "decode", "Expected `float | null`, got `str` - at `$.tvl`"),
        ({"tvl": -5.0}, "validate", ">= 0.0 - at `$.tvl_usd`"),
        ({"slug": None}, "decode", "Expected `str`, got `null` - at `$.slug`"),
        ({"slug": ""}, "validate", "length >= 1 - at `$.pool_id`"),
        ({"category": 7}, "decode", "got `int` - at `$.category`"),
    ],
)
def test_bad_rows_are_rejected(change: dict[str, Any], stage: str, reason: str) -> None:
    rej = rejection(protocols.transform, record(json.dumps({**real_row("lido"), **change})))
    assert rej.stage == stage
    assert reason in rej.reason


@pytest.mark.parametrize("field", ["slug", "name"])
def test_missing_required_field_is_rejected(field: str) -> None:
    row = {k: v for k, v in real_row("lido").items() if k != field}
    rej = rejection(protocols.transform, record(row))
    assert rej.stage == "decode"
    assert f"missing required field `{field}`" in rej.reason
