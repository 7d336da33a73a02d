"""Curve pools -> farming observations: TVL, CRV + extra gauge rewards, base APY.

A record is an envelope ``{"pool": <pool item>, "baseApy": <getBaseApys item or
null>}`` (``join_base_apys``, the default, see ``ingest.curve``), or a bare
``getPools`` pool item (the join turned off).

* ``tvl_usd`` = ``usdTotal`` (USD).
* ``apy_reward_pct`` = ``gaugeCrvApy[0]`` (the unboosted CRV APR, PERCENT: what an
  LP without veCRV gets, as DefiLlama takes it) + every ``gaugeRewards[].apy``
  (PERCENT). Rewards are paid in tokens that are not reinvested: no compounding
  (n = 1, the APR is the yield), as DefiLlama reports them. A pool without a gauge
  or these fields (responses before 2023) has no reward figure.
* ``apy_base_pct`` = ``latestDailyApyPcent`` of getBaseApys (PERCENT, already an
  APY: Curve compounds the day's virtual-price growth, ``(1 + r) ** 365 - 1``), the
  trading-fee yield DefiLlama takes as ``apyBase`` (from getSubgraphData's
  ``latestDailyApy``, the same figure).
* ``apy_pct`` = base + reward, only when the base APY is known: without it (a pool
  getBaseApys does not list, the 2022 recordings, the join off) the total is
  unknown, and the pool is still a valid TVL observation.

Numbers may be strings or JSON numbers; they are read exactly (``units.exact``)
and made floats once. Items carry no time: observed at the fetch.

Products as DefiLlama's curve-dex adaptor (yield-server
``src/adaptors/curve-dex/index.js``) publishes them: ``project 'curve-dex'``,
``chain formatChain(blockchainId)``, ``symbol`` = the coins' symbols joined by
``-``, no ``poolMeta``; its pool id is ``<address>-<blockchainId>``, our pool_id.
"""

from __future__ import annotations

import re
from decimal import Decimal

import msgspec

from ingest.curve import ENDPOINTS
from transforms import Context, Result
from transforms.products import product_id
from transforms.units import exact, to_float
from yieldstream.contracts import ObservationError, RawRecord, Strategy, Venue, make_observation

SOURCE = "curve"
PROTOCOL = "curve-dex"  # DefiLlama's project slug
CATEGORY = "Dexs"
MAX_PCT = Decimal(100_000)  # a gauge or fee APY above 100,000 % is a unit error
_CONTROL = re.compile(r"[\u0000-\u001f\u007f]")

# CRV on each chain (DefiLlama's adaptor): the reward token of gaugeCrvApy.
CRV = {
    "ethereum": "0xD533a949740bb3306d119CC777fa900bA034cd52",
    "arbitrum": "0x11cDb42B0EB46D95f990BeDD4695A6e3fA034978",
    "optimism": "0x0994206dfE8De6Ec6920FF4D779B0d950605Fb53",
    "polygon": "0x172370d5Cd63279eFa6d502DAB29171933a610AF",
    "avalanche": "0x249848BeCA43aC405b8102Ec90Dd5F22CA513c06",
    "xdai": "0x712b3d230F3C1c19db860d80619288b1F0BDd0Bd",
    "kava": "0x965f84D915a9eFa2dD81b653e3AE736555d945f4",
    "fantom": "0x1E4F97b9f9F913c46F1632781732927B9019C68b",
    "base": "0x8Ee73c484A26e0A5df2Ee2a4960B789967dd0415",
    "fraxtal": "0x331B9182088e2A7d6D3Fe4742AbA1fB231aEcc56",
}

Number = int | float | str


class Coin(msgspec.Struct):
    address: str
    symbol: str


class GaugeReward(msgspec.Struct):
    apy: Number | None = None
    tokenAddress: str | None = None


class Pool(msgspec.Struct):
    address: str
    coins: list[Coin]
    usdTotal: Number | None = None
    gaugeAddress: str | None = None
    gaugeCrvApy: list[Number | None] | None = None
    gaugeRewards: list[GaugeReward] | None = None


class BaseApy(msgspec.Struct):
    address: str
    latestDailyApyPcent: Number | None = None


class Joined(msgspec.Struct):
    pool: Pool
    baseApy: BaseApy | None = None


_pool = msgspec.json.Decoder(Pool).decode
_joined = msgspec.json.Decoder(Joined).decode


def _number(value: Number | None, field: str, *, low: Decimal, high: Decimal) -> Decimal | None:
    if value is None:
        return None
    try:
        number = exact(value)
    except ValueError as exc:
        raise ObservationError(f"{field}: {exc}") from None
    if not low <= number <= high:
        raise ObservationError(f"{field} {value!r} is outside [{low}, {high}]")
    return number


def _rewards(pool: Pool, chain: str) -> tuple[Decimal | None, list[str]]:
    """The reward APR in percent (CRV unboosted + extra tokens) and the reward tokens."""
    total: Decimal | None = None
    tokens: list[str] = []
    crv = pool.gaugeCrvApy[0] if pool.gaugeCrvApy else None
    crv_pct = _number(crv, "gaugeCrvApy[0]", low=Decimal(0), high=MAX_PCT)
    if crv_pct is not None:
        total = crv_pct
        if crv_pct > 0:
            tokens.append(CRV.get(chain, CRV["ethereum"]))
    for index, reward in enumerate(pool.gaugeRewards or ()):
        pct = _number(reward.apy, f"gaugeRewards[{index}].apy", low=Decimal(0), high=MAX_PCT)
        if pct is None:
            continue
        total = (total or Decimal(0)) + pct
        if reward.tokenAddress and pct > 0:
            tokens.append(reward.tokenAddress)
    return total, tokens


def transform(record: RawRecord, ctx: Context) -> Result:
    chain_id = ENDPOINTS[0].entity_of(record.endpoint)
    if not chain_id:
        raise ObservationError(f"{record.endpoint} names no chain")
    if record.payload.lstrip().startswith(b'{"pool"'):
        joined = _joined(record.payload)
        pool, base_item = joined.pool, joined.baseApy
    else:
        pool, base_item = _pool(record.payload), None
    if not pool.coins:
        raise ObservationError(f"pool {pool.address} lists no coins")
    tvl = _number(pool.usdTotal, "usdTotal", low=Decimal(0), high=Decimal(10) ** 13)
    reward, reward_tokens = _rewards(pool, chain_id)
    base = None
    if base_item is not None:
        if base_item.address.lower() != pool.address.lower():
            raise ObservationError(f"base APY of {base_item.address} joined to {pool.address}")
        base = _number(
            base_item.latestDailyApyPcent, "latestDailyApyPcent", low=Decimal(-100), high=MAX_PCT
        )
    total = base + (reward or Decimal(0)) if base is not None else None
    symbol = "-".join(_CONTROL.sub("", coin.symbol).strip() for coin in pool.coins)
    chain = chain_id[:1].upper() + chain_id[1:]  # DefiLlama's formatChain
    return [
        make_observation(
            {
                "source": SOURCE,
                "pool_id": f"{pool.address}-{chain_id}",
                "product_id": product_id(PROTOCOL, chain, symbol),
                "observed_at": record.fetched_at,
                "protocol": PROTOCOL,
                "chain": chain,
                "symbol": symbol,
                "strategy": Strategy.FARMING,
                "strategy_guessed": False,
                "venue": Venue.DEFI,
                "category": CATEGORY,
                "apy_pct": None if total is None else to_float(total),
                "apy_base_pct": None if base is None else to_float(base),
                "apy_reward_pct": None if reward is None else to_float(reward),
                "tvl_usd": None if tvl is None else to_float(tvl),
                "underlying_tokens": [coin.address for coin in pool.coins],
                "reward_tokens": reward_tokens or None,
            }
        )
    ]
