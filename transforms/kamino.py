"""Kamino Lend reserves -> lending observations (supply APY, borrow APY, utilisation).

Snapshot items (``/kamino-market/{market}/reserves/metrics``) give ``supplyApy`` and
``borrowApy`` as FRACTION strings that are already APYs: K-Lend compounds interest
every slot and Kamino's API publishes the resulting APY (as its app shows it), so there
is no compounding step, only fraction -> percent. Amounts are decimal strings of up to
40 digits, read exactly (:func:`transforms.units.exact`) and made floats once.
Utilisation is ``totalBorrow / totalSupply`` (whole tokens). ``tvl_usd`` is the
supplied value (``totalSupplyUsd``). A snapshot item carries no time: it is observed
at its fetch. History points (``.../reserves/{reserve}/metrics/history``) carry their
own ``timestamp`` and ``metrics`` (``supplyInterestAPY``/``borrowInterestAPY``
fractions, ``depositTvl`` USD).

The product is DefiLlama's (yield-server ``src/adaptors/kamino-lend/index.js``:
``project: 'kamino-lend'``, ``chain: 'Solana'``, ``symbol: r.liquidityToken``,
``poolMeta: market.name``), so ``kamino-lend:solana:<symbol>:<market name>``; a market
whose name is not in :data:`MARKETS` is named by its pubkey instead.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import msgspec

from transforms import CLOCK_SKEW, Context, Result
from transforms.products import product_id
from transforms.units import exact, fraction_to_pct, iso_time, ratio, to_float
from yieldstream.contracts import (
    Observation,
    ObservationError,
    RawRecord,
    Strategy,
    Venue,
    make_observation,
)

SOURCE = "kamino"
PROTOCOL = "kamino-lend"  # DefiLlama's project slug
CHAIN = "Solana"
SEPARATOR = "_"  # between a market and a reserve in one id (base58 holds no '_')
LAUNCHED = datetime(2023, 8, 1, tzinfo=UTC)  # K-Lend went live in August 2023

# The lending markets by pubkey, named as Kamino's /v2/kamino-market names them
# (DefiLlama's poolMeta).
MARKETS = {
    "7u3HeHxYDLhnCoErrtycNokbQYbWGzLs6JSDqGAv5PfF": "Main Market",
    "DxXdAyU3kCjnyggvHmY5nAwg5cRbbmdyX3npfDMjjMek": "JLP Market",
    "ByYiZxp8QrdN9qbdtaAiePN8AAr3qvTPppNJDpf5DVJ5": "Altcoins Market",
    "5wJeMrUYECGq41fxRESKALVcHnNX26TAWy4W98yULsua": "xStocks Market",
}

_SNAPSHOT = re.compile(r"/kamino-market/([^/]+)/reserves/metrics")
_HISTORY = re.compile(r"/kamino-market/([^/]+)/reserves/([^/]+)/metrics/history")


class Reserve(msgspec.Struct):
    reserve: str
    liquidityToken: str
    liquidityTokenMint: str
    supplyApy: str
    borrowApy: str
    totalSupply: str
    totalBorrow: str
    totalSupplyUsd: str


class Metrics(msgspec.Struct):
    symbol: str
    mintAddress: str
    supplyInterestAPY: float | str
    borrowInterestAPY: float | str
    # Newer answers; the 2023 documented ones carried ``tvl``/``totalSupplyWads`` instead.
    depositTvl: float | str | None = None
    totalSupply: float | str | None = None
    totalBorrows: float | str | None = None


class HistoryPoint(msgspec.Struct):
    timestamp: str
    metrics: Metrics


_reserve = msgspec.json.Decoder(Reserve).decode
_point = msgspec.json.Decoder(HistoryPoint).decode


def transform(record: RawRecord, ctx: Context) -> Result:
    if (found := _HISTORY.fullmatch(record.endpoint)) is not None:
        return _history(record, found.group(1), found.group(2))
    if (found := _SNAPSHOT.fullmatch(record.endpoint)) is not None:
        return _snapshot(record, found.group(1))
    raise ObservationError(f"unknown Kamino endpoint {record.endpoint!r}")


def _snapshot(record: RawRecord, market: str) -> Result:
    item = _reserve(record.payload)
    return [
        _observation(
            market=market,
            reserve=item.reserve,
            symbol=item.liquidityToken,
            mint=item.liquidityTokenMint,
            observed_at=record.fetched_at,
            supply_apy=item.supplyApy,
            borrow_apy=item.borrowApy,
            supplied=item.totalSupply,
            borrowed=item.totalBorrow,
            supplied_usd=item.totalSupplyUsd,
        )
    ]


def _history(record: RawRecord, market: str, reserve: str) -> Result:
    point = _point(record.payload)
    observed_at = iso_time(point.timestamp)
    if observed_at is None or not LAUNCHED <= observed_at <= record.fetched_at + CLOCK_SKEW:
        raise ObservationError(
            f"point time {point.timestamp!r} is not between K-Lend's launch "
            f"({LAUNCHED.date()}) and its fetch ({record.fetched_at.isoformat()})"
        )
    m = point.metrics
    return [
        _observation(
            market=market,
            reserve=reserve,
            symbol=m.symbol,
            mint=m.mintAddress,
            observed_at=observed_at,
            supply_apy=m.supplyInterestAPY,
            borrow_apy=m.borrowInterestAPY,
            supplied=m.totalSupply,
            borrowed=m.totalBorrows,
            supplied_usd=m.depositTvl,
        )
    ]


def _observation(
    *,
    market: str,
    reserve: str,
    symbol: str,
    mint: str,
    observed_at: datetime,
    supply_apy: float | str,
    borrow_apy: float | str,
    supplied: float | str | None,
    borrowed: float | str | None,
    supplied_usd: float | str | None,
) -> Observation:
    try:
        apy = fraction_to_pct(to_float(exact(supply_apy)))
        borrow = fraction_to_pct(to_float(exact(borrow_apy)))
        tokens = None if supplied is None else exact(supplied)
        used = (
            fraction_to_pct(to_float(ratio(borrowed, tokens)))
            if tokens is not None and tokens > 0 and borrowed is not None
            else None
        )
        tvl_usd = None if supplied_usd is None else to_float(exact(supplied_usd))
        tvl_tokens = None if tokens is None else to_float(tokens)
    except ValueError as exc:
        raise ObservationError(f"reserve {reserve}: {exc}") from None
    if apy < 0 or borrow < 0:
        raise ObservationError(f"reserve {reserve}: negative APY {apy} % / {borrow} % (borrow)")
    name = MARKETS.get(market, market)
    return make_observation(
        {
            "source": SOURCE,
            "pool_id": reserve,
            "product_id": product_id(PROTOCOL, CHAIN, symbol, name),
            "observed_at": observed_at,
            "protocol": PROTOCOL,
            "chain": CHAIN,
            "symbol": symbol,
            "pool_meta": name,
            "strategy": Strategy.LENDING,
            "strategy_guessed": False,
            "venue": Venue.DEFI,
            "category": "Lending",
            "apy_pct": apy,
            "apy_base_pct": apy,
            "apy_reward_pct": 0.0,
            "apy_borrow_pct": borrow,
            "utilization_pct": used,
            "tvl_usd": tvl_usd,
            "tvl_tokens": tvl_tokens,
            "tvl_token": symbol,
            "underlying_tokens": [mint],
        }
    )
