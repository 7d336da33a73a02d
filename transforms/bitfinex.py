"""Bitfinex funding rates -> lending observations, net of Bitfinex's 15 % fee.

Three kinds of record, told apart by their endpoint:

- ``/v2/tickers`` rows ``[SYMBOL, FRR, ...]`` (17 fields; 14 in older answers):
  the FRR is the **per-day** rate. The row has no time of its own, so it is
  stamped with the hour it was fetched in (the same snapshot fetched twice is one
  key). A trading ticker (``tBTCUSD``) is no funding product and is rejected.
- ``/v2/funding/stats/{symbol}/hist`` rows ``[MTS, _, _, FRR, AVG_PERIOD, _, _,
  FUNDING_AMOUNT, FUNDING_AMOUNT_USED, ...]``: this FRR is **1/365 of the per-day
  rate** (:func:`~transforms.units.frr_to_daily_rate`); they give utilisation
  (used / amount) and the amount lent, in the currency (USD for fUSD).
- ``/v2/candles/trade:1D:{symbol}:a30:p2:p30/hist`` rows ``[MTS, OPEN, CLOSE, ...]``
  (history): the day's CLOSE, a per-day rate.

Per-day rate x 365 is the gross APR. Bitfinex keeps 15 % of a lender's interest
("amount*(rate/100)*(seconds/86400))*0.85", support.bitfinex.com article
360024039494 "What do I get when I offer Margin Funding?"), so ``apy_pct``
compounds 85 % of it and ``apy_gross_pct`` the whole. Interest accrues by the
second on a per-day rate and is paid out daily (Bitfinex's help centre lists a
"daily" interest payment beside payment at the end of the term), hence daily
compounding (``DAILY``, n = 365): a lender who re-offers each day's interest.

A per-day rate below 0 or above 7 % (the cap on Bitfinex funding offers) is a unit
error (a percent read as a fraction) and rejected, as is a time before 2013 or
after the fetch (beyond :data:`CLOCK_SKEW`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from transforms import CLOCK_SKEW, Context, Result, floor_hour
from transforms.products import product_id
from transforms.units import (
    DAILY,
    apr_to_apy_pct,
    exact,
    fraction_to_pct,
    frr_to_daily_rate,
    ms_time,
    net_of_fee_pct,
    period_rate_to_apr_pct,
    to_float,
)
from yieldstream.contracts import (
    Observation,
    ObservationError,
    RawRecord,
    Strategy,
    Venue,
    make_observation,
)

SOURCE = "bitfinex"
FEE_SHARE = 0.15  # of the interest, kept by Bitfinex
MAX_DAILY_RATE = 0.07  # Bitfinex's highest funding rate: 7 % a day
SINCE = datetime(2013, 1, 1, tzinfo=UTC)  # before any Bitfinex funding
ASSETS = {"UST": "USDT"}  # Bitfinex's currency codes that differ from the asset's symbol
STABLE = frozenset({"USD", "USDT"})
TICKERS = "/v2/tickers"
STATS = ("/v2/funding/stats/", "/hist")
CANDLES = ("/v2/candles/trade:1D:", ":a30:p2:p30/hist")

Number = int | float


class Symbol(msgspec.Struct, array_like=True):
    symbol: str


class FundingTicker(msgspec.Struct, array_like=True):
    symbol: str
    frr: Number
    bid: Number
    bid_period: int
    bid_size: Number
    ask: Number
    ask_period: int
    ask_size: Number
    daily_change: Number
    daily_change_relative: Number
    last_price: Number
    volume: Number
    high: Number
    low: Number
    # The current layout's last three; older answers end at LOW.
    placeholder_1: Any = None
    placeholder_2: Any = None
    frr_amount_available: Number | None = None


class FundingStats(msgspec.Struct, array_like=True):
    mts: int
    placeholder_1: Any
    placeholder_2: Any
    frr: Number
    avg_period: Number
    placeholder_5: Any
    placeholder_6: Any
    funding_amount: Number
    funding_amount_used: Number


class Candle(msgspec.Struct, array_like=True):
    mts: int
    open: Number
    close: Number
    high: Number
    low: Number
    volume: Number


_symbol = msgspec.json.Decoder(Symbol).decode
_ticker = msgspec.json.Decoder(FundingTicker).decode
_stats = msgspec.json.Decoder(FundingStats).decode
_candle = msgspec.json.Decoder(Candle).decode


def asset_of(symbol: str) -> str:
    """The asset of a funding symbol: ``fUSD`` -> USD, ``fUST`` -> USDT."""
    code = symbol.removeprefix("f")
    return ASSETS.get(code, code)


def _between(endpoint: str, around: tuple[str, str]) -> str | None:
    head, tail = around
    if endpoint.startswith(head) and endpoint.endswith(tail):
        return endpoint[len(head) : len(endpoint) - len(tail)] or None
    return None


def transform(record: RawRecord, ctx: Context) -> Result:
    if record.endpoint == TICKERS:
        return _from_ticker(record)
    if (symbol := _between(record.endpoint, STATS)) is not None:
        return _from_stats(record, symbol)
    if (symbol := _between(record.endpoint, CANDLES)) is not None:
        return _from_candle(record, symbol)
    raise ObservationError(f"no Bitfinex funding endpoint: {record.endpoint}")


def _from_ticker(record: RawRecord) -> Result:
    symbol = _symbol(record.payload).symbol
    if not symbol.startswith("f"):
        raise ObservationError(f"{symbol} is a trading ticker, not a funding product")
    row = _ticker(record.payload)
    return _observation(symbol, row.frr, floor_hour(record.fetched_at))


def _from_stats(record: RawRecord, symbol: str) -> Result:
    row = _stats(record.payload)
    observed_at = _time(row.mts, record)
    try:
        daily = frr_to_daily_rate(row.frr)
        amount, used = exact(row.funding_amount), exact(row.funding_amount_used)
    except ValueError as exc:
        raise ObservationError(f"unusable funding stats: {exc}") from None
    if amount < 0 or not 0 <= used <= amount:
        raise ObservationError(f"funding used {used} is not within the funding amount {amount}")
    asset = asset_of(symbol)
    extra: dict[str, Any] = {"tvl_tokens": to_float(amount), "tvl_token": asset}
    if amount > 0:
        extra["utilization_pct"] = fraction_to_pct(to_float(used / amount))
    if asset == "USD":
        extra["tvl_usd"] = to_float(amount)
    return _observation(symbol, daily, observed_at, extra)


def _from_candle(record: RawRecord, symbol: str) -> Result:
    row = _candle(record.payload)
    return _observation(symbol, row.close, _time(row.mts, record))


def _time(mts: int, record: RawRecord) -> datetime:
    moment = ms_time(mts)
    if moment is None or not SINCE <= moment <= record.fetched_at + CLOCK_SKEW:
        raise ObservationError(
            f"time {mts} ms is not between {SINCE.date()} and the fetch "
            f"({record.fetched_at.isoformat()})"
        )
    return moment


def _observation(
    symbol: str, daily_rate: Number, observed_at: datetime, extra: dict[str, Any] | None = None
) -> list[Observation]:
    if not 0 <= daily_rate <= MAX_DAILY_RATE:
        raise ObservationError(
            f"per-day rate {daily_rate!r} of {symbol} is not between 0 and {MAX_DAILY_RATE}"
        )
    try:
        gross_apr = period_rate_to_apr_pct(float(daily_rate), DAILY)
        gross = apr_to_apy_pct(gross_apr, DAILY)
        net = apr_to_apy_pct(net_of_fee_pct(gross_apr, FEE_SHARE), DAILY)
    except ValueError as exc:
        raise ObservationError(f"unusable rate of {symbol}: {exc}") from None
    asset = asset_of(symbol)
    return [
        make_observation(
            {
                "source": SOURCE,
                "pool_id": symbol,
                "product_id": product_id("bitfinex", "Off-chain", asset, "funding"),
                "observed_at": observed_at,
                "protocol": "bitfinex",
                "chain": "Off-chain",
                "symbol": asset,
                "strategy": Strategy.LENDING,
                "strategy_guessed": False,
                "venue": Venue.CEFI,
                "category": "CeFi Lending",
                "stablecoin": asset in STABLE,
                "apy_pct": net,
                "apy_base_pct": net,
                "apy_reward_pct": 0.0,
                "apy_gross_pct": gross,
                **(extra or {}),
            }
        )
    ]
