"""Pendle V2 markets -> two products each: the LP position and buying PT.

Snapshot items (``/core/v1/{chainId}/markets/active``) give APYs as FRACTIONS that
are already APYs (Pendle annualises with compounding and publishes the APY its app
shows), so there is no compounding step, only fraction -> percent:

* **LP** (farming): ``details.aggregatedApy`` is the LP's unboosted APY, PENDLE
  incentives included (swap fees + the SY's underlying yield + PT's fixed yield +
  PENDLE); ``details.pendleApy`` is the PENDLE part. As DefiLlama's adaptor does,
  ``apy_reward`` = pendleApy and ``apy_base`` = aggregatedApy - pendleApy.
  ``maxBoostedApy`` (with a vePENDLE boost) is not what every LP gets: not stored.
* **PT** (lending): ``details.impliedApy`` is the fixed yield of buying PT now and
  holding it to expiry, a zero-coupon loan at a discount: ``apy_base`` only.

``tvl_usd`` is ``details.liquidity`` (USD) for both, as DefiLlama reports it. The
observation time is the item's own ``timestamp``; a market at or past its
``expiry`` at that time is no product any more and is rejected.

Products as DefiLlama's pendle adaptor (yield-server ``src/adaptors/pendle/index.js``)
publishes them: ``project 'pendle'``, chain by chain id, ``symbol =
formatSymbol(name)``, ``poolMeta`` ``"For LP | Maturity 27AUG2026"`` and
``"For buying PT-<name>-27AUG2026"`` (the expiry as Node's ``en-GB`` short date,
spaces removed, upper case: September is ``SEPT``).

History points (``/core/v3/{chainId}/markets/{address}/historical-data``) give
``baseApy`` (the LP's unboosted APY, like ``aggregatedApy``; no PENDLE split) and
``impliedApy`` (PT), fractions; their ``tvl`` is not in USD (1.186 where the
listing says 2.96 M) and is not stored. Name and expiry come from the market's
listing item (``ctx.listing``); without it the products are named by the market
address (``pendle:<chain>:<address>:lp|pt``) and carry no symbol.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import msgspec

from ingest.pendle import ENDPOINTS, HISTORY, split_market
from transforms import CLOCK_SKEW, Context, Result, history_time
from transforms.products import product_id
from transforms.units import fraction_to_pct, iso_time
from yieldstream.contracts import (
    Observation,
    ObservationError,
    RawRecord,
    Strategy,
    Venue,
    make_observation,
)

SOURCE = "pendle"
PROTOCOL = "pendle"
CATEGORY = "Yield"  # DefiLlama's category of Pendle
# An APY fraction above this (10,000 %) is a percent read as a fraction upstream.
MAX_FRACTION = 100.0

# Chain id -> DefiLlama's chain name (its adaptor's ``formatChain(chainName)``) and
# the PENDLE token there (the LP's reward token).
CHAINS: dict[str, tuple[str, str]] = {
    "1": ("Ethereum", "0x808507121b80c02388fad14726482e061b8da827"),
    "42161": ("Arbitrum", "0x0c880f6761f1af8d9aa9c466984b80dab9a8c9e8"),
    "56": ("BSC", "0xb3ed0a426155b79b898849803e3b36552f7ed507"),
    "10": ("Optimism", "0xBC7B1Ff1c6989f006a1185318eD4E7b5796e66E1"),
    "146": ("Sonic", "0xf1ef7d2d4c0c881cd634481e0586ed5d2871a74b"),
    "8453": ("Base", "0xa99f6e6785da0f5d6fb42495fe424bce029eeb3e"),
    "5000": ("Mantle", "0xd27b18915e7acc8fd6ac75db6766a80f8d2f5729"),
    "999": ("Hyperliquid", "0xD6Eb81136884713E843936843E286FD2a85A205A"),
    "80094": ("Berachain", "0xFf9c599D51C407A45D631c6e89cB047Efb88AeF6"),
}
# Node's en-GB short months (CLDR), as DefiLlama's expiryToText writes them.
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEPT", "OCT", "NOV", "DEC")


class Details(msgspec.Struct):
    liquidity: float | None = None
    impliedApy: float | None = None
    aggregatedApy: float | None = None
    pendleApy: float | None = None


class Market(msgspec.Struct):
    name: str
    address: str
    expiry: str
    pt: str
    details: Details
    sy: str | None = None
    underlyingAsset: str | None = None
    timestamp: str | None = None


class HistoryPoint(msgspec.Struct):
    timestamp: str
    baseApy: float | None = None
    impliedApy: float | None = None


_market = msgspec.json.Decoder(Market).decode
_point = msgspec.json.Decoder(HistoryPoint).decode


def expiry_text(expiry: datetime) -> str:
    """``27AUG2026``: DefiLlama's ``expiryToText`` (en-GB short date, UTC)."""
    return f"{expiry.day:02d}{MONTHS[expiry.month - 1]}{expiry.year}"


def symbol_of(name: str) -> str:
    """DefiLlama's ``formatSymbol``: ``_`` and ``/`` as ``-``, no whitespace."""
    return "".join(name.replace("_", "-").replace("/", "-").split())


def _pct(value: float | None, field: str) -> float | None:
    if value is None:
        return None
    if not -1.0 <= value <= MAX_FRACTION:
        raise ObservationError(f"{field} {value!r} is not an APY fraction in [-1, {MAX_FRACTION}]")
    try:
        return fraction_to_pct(value)
    except ValueError as exc:
        raise ObservationError(f"{field}: {exc}") from None


def _address(token_id: str | None) -> str | None:
    """The address of a ``<chainId>-<address>`` token id."""
    return token_id.partition("-")[2] or None if token_id else None


def _chain(chain_id: str) -> tuple[str, str]:
    try:
        return CHAINS[chain_id]
    except KeyError:
        raise ObservationError(
            f"chain id {chain_id!r} has no DefiLlama chain name (add it to CHAINS)"
        ) from None


def _expiry(market: Market, observed_at: datetime) -> datetime:
    expiry = iso_time(market.expiry)
    if expiry is None:
        raise ObservationError(f"unreadable expiry {market.expiry!r}")
    if expiry <= observed_at:
        raise ObservationError(
            f"market {market.address} expired at {expiry.isoformat()}, before its "
            f"observation at {observed_at.isoformat()}: no longer a product"
        )
    return expiry


def _products(
    chain_id: str,
    address: str,
    observed_at: datetime,
    market: Market | None,
    lp: Mapping[str, object],
    pt: Mapping[str, object],
) -> list[Observation]:
    """The LP and PT observations of one market (one of them may have no figure)."""
    chain, pendle = _chain(chain_id)
    common = {
        "source": SOURCE,
        "observed_at": observed_at,
        "protocol": PROTOCOL,
        "chain": chain,
        "venue": Venue.DEFI,
        "strategy_guessed": False,
        "category": CATEGORY,
    }
    lp_fields = {**common, **lp, "strategy": Strategy.FARMING, "pool_id": f"{chain_id}-{address}"}
    pt_fields = {
        **common,
        **pt,
        "strategy": Strategy.LENDING,
        "pool_id": f"{chain_id}-{address}:pt",
    }
    if market is None:
        lp_fields |= {"symbol": "", "product_id": product_id(PROTOCOL, chain, address, "lp")}
        pt_fields |= {"symbol": "", "product_id": product_id(PROTOCOL, chain, address, "pt")}
    else:
        expiry = expiry_text(_expiry(market, observed_at))
        symbol = symbol_of(market.name)
        lp_meta = f"For LP | Maturity {expiry}"
        pt_meta = f"For buying PT-{market.name}-{expiry}"
        lp_fields |= {
            "symbol": symbol,
            "pool_meta": lp_meta,
            "product_id": product_id(PROTOCOL, chain, symbol, lp_meta),
            "reward_tokens": [pendle],
            "underlying_tokens": [a for a in (_address(market.pt), _address(market.sy)) if a],
        }
        pt_fields |= {
            "symbol": symbol,
            "pool_meta": pt_meta,
            "product_id": product_id(PROTOCOL, chain, symbol, pt_meta),
            "underlying_tokens": [a for a in (_address(market.underlyingAsset),) if a],
        }
    observations = []
    for fields in (lp_fields, pt_fields):
        if fields.get("apy_pct") is None and fields.get("tvl_usd") is None:
            continue  # this side has no figure in this item
        observations.append(make_observation(fields))
    if not observations:
        raise ObservationError("neither an APY nor a TVL figure for the LP or the PT")
    return observations


def transform(record: RawRecord, ctx: Context) -> Result:
    if record.kind == "history":
        return _history(record, ctx)
    market = _market(record.payload)
    chain_id = ENDPOINTS[0].entity_of(record.endpoint)
    if chain_id is None:
        raise ObservationError(f"{record.endpoint} names no chain")
    observed_at = record.fetched_at
    if market.timestamp is not None:
        stamped = iso_time(market.timestamp)
        if stamped is None:
            raise ObservationError(f"unreadable timestamp {market.timestamp!r}")
        observed_at = stamped
    if observed_at > record.fetched_at + CLOCK_SKEW:
        raise ObservationError(
            f"market time {observed_at.isoformat()} is after its fetch "
            f"({record.fetched_at.isoformat()})"
        )
    details = market.details
    total = _pct(details.aggregatedApy, "aggregatedApy")
    reward = _pct(details.pendleApy, "pendleApy")
    implied = _pct(details.impliedApy, "impliedApy")
    if details.liquidity is not None and details.liquidity < 0:
        raise ObservationError(f"negative liquidity {details.liquidity!r}")
    lp = {
        "apy_pct": total,
        "apy_reward_pct": reward if total is not None else None,
        "apy_base_pct": total - (reward or 0.0) if total is not None else None,
        "tvl_usd": details.liquidity,
    }
    pt = {
        "apy_pct": implied,
        "apy_base_pct": implied,
        "apy_reward_pct": 0.0 if implied is not None else None,
        "tvl_usd": details.liquidity,
    }
    return _products(chain_id, market.address, observed_at.astimezone(UTC), market, lp, pt)


def _history(record: RawRecord, ctx: Context) -> Result:
    point = _point(record.payload)
    entity = HISTORY.entity_of(record.endpoint)
    parts = split_market(entity)
    if parts is None:
        raise ObservationError(f"{record.endpoint} names no <chainId>-<address> market")
    chain_id, address = parts
    observed_at = history_time(iso_time(point.timestamp), point.timestamp, record)
    listed = ctx.listing.get(entity)
    market = _market(listed) if listed is not None else None
    lp = {"apy_pct": _pct(point.baseApy, "baseApy")}
    implied = _pct(point.impliedApy, "impliedApy")
    pt = {"apy_pct": implied, "apy_base_pct": implied}
    return _products(chain_id, address, observed_at, market, lp, pt)
