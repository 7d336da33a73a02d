"""A Cosmos SDK chain's joined LCD answers -> one network-inflation observation.

The record (see :mod:`ingest.cosmos_inflation`) is ``{"inflation": LegacyDec string,
"pool": {"bonded_tokens", "not_bonded_tokens"} | null, "params": {"community_tax",
...} | null}`` under the chain's inflation path, which names the chain. It becomes an
observation of level ``network`` (no product, no yield):

- ``apy_pct``: x/mint's annual inflation, a fraction (``"0.12"`` or its 1e18-scaled
  integer form, :func:`transforms.units.legacy_dec`), in percent, exactly. It is
  already an annual rate of supply growth: no compounding is applied.
- ``utilization_pct``: the bonded ratio ``bonded / (bonded + not_bonded)`` in percent.
- ``tvl_tokens`` / ``tvl_token``: the bonded tokens in whole tokens of the chain's
  staking token (``CHAINS``: its base denom's decimals).
- ``pool_meta``: ``"community tax X %"`` from x/distribution's params.

The LCD gives no time: ``observed_at`` is the fetch time floored to the hour.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NamedTuple

import msgspec

from ingest.cosmos_inflation import INFLATION
from transforms import Context, Result, floor_hour
from transforms.units import base_units, legacy_dec, ratio, scaled, to_float
from yieldstream.contracts import (
    Level,
    ObservationError,
    RawRecord,
    Strategy,
    Venue,
    make_observation,
)

SOURCE = "cosmos-inflation"


class Chain(NamedTuple):
    name: str  # DefiLlama's chain name
    symbol: str  # the staking token
    denom: str  # its base denom, as bank and staking amounts are written
    decimals: int  # base denom -> whole tokens


# Chain Registry name -> chain, from each chain's ``assetlist.json`` in
# github.com/cosmos/chain-registry (denom_units: uatom/ATOM exponent 6, uakt/AKT 6,
# utia/TIA 6). Chain names as DefiLlama writes them. Add a row to poll another chain.
CHAINS: dict[str, Chain] = {
    "cosmoshub": Chain("Cosmos", "ATOM", "uatom", 6),
    "akash": Chain("Akash", "AKT", "uakt", 6),
    "celestia": Chain("Celestia", "TIA", "utia", 6),
}
# Inflation at or above 100 % a year is no Cosmos mint schedule: a unit error.
MAX_INFLATION = Decimal(1)


class Pool(msgspec.Struct):
    bonded_tokens: Any
    not_bonded_tokens: Any


class Params(msgspec.Struct):
    community_tax: Any = None


class Joined(msgspec.Struct):
    inflation: Any
    pool: Pool | None = None
    params: Params | None = None


_decode = msgspec.json.Decoder(Joined).decode


def _pct(fraction: Decimal) -> float:
    """A fraction in percent (``scaled(f, -2)`` is ``f x 100``, exactly), as a float once."""
    return to_float(scaled(fraction, -2))


def _fraction(raw: Any, what: str, top: Decimal, *, closed: bool = False) -> Decimal:
    """A LegacyDec fraction in ``[0, top)`` (``[0, top]`` if closed), or ValueError."""
    value = legacy_dec(raw)
    if value < 0 or value > top or (value == top and not closed):
        raise ValueError(f"{what} {value} is not a fraction in [0, {top}{']' if closed else ')'}")
    return value


def transform(record: RawRecord, ctx: Context) -> Result:
    network = INFLATION.entity_of(record.endpoint)
    if network is None:
        raise ObservationError(f"{record.endpoint} is no chain's inflation path")
    chain = CHAINS.get(network)
    if chain is None:
        raise ObservationError(
            f"chain {network!r} is not in transforms.cosmos_inflation.CHAINS "
            "(its DefiLlama name, token and decimals are unknown)"
        )
    joined = _decode(record.payload)
    fields: dict[str, Any] = {}
    try:
        fields["apy_pct"] = _pct(_fraction(joined.inflation, "inflation", MAX_INFLATION))
        if joined.pool is not None:
            bonded = base_units(joined.pool.bonded_tokens, 0)
            not_bonded = base_units(joined.pool.not_bonded_tokens, 0)
            # Integers: their sum is exact.
            fields["utilization_pct"] = _pct(ratio(int(bonded), int(bonded) + int(not_bonded)))
            fields["tvl_tokens"] = to_float(base_units(joined.pool.bonded_tokens, chain.decimals))
            fields["tvl_token"] = chain.symbol
        if joined.params is not None and joined.params.community_tax is not None:
            tax = _fraction(joined.params.community_tax, "community tax", Decimal(1), closed=True)
            fields["pool_meta"] = f"community tax {_format(scaled(tax, -2))} %"
    except ValueError as exc:
        raise ObservationError(f"{network}: unusable LCD value: {exc}") from None
    return [
        make_observation(
            {
                "source": SOURCE,
                "pool_id": f"{network}:inflation",
                "product_id": None,
                "level": Level.NETWORK,
                "observed_at": floor_hour(record.fetched_at),
                "protocol": network,
                "chain": chain.name,
                "symbol": chain.symbol,
                "strategy": Strategy.OTHER,
                "strategy_guessed": False,
                "venue": Venue.DEFI,
                "category": "Network inflation",
                **fields,
            }
        )
    ]


def _format(pct: Decimal) -> str:
    """``2.000000000000000000`` as ``2``, ``2.5`` as ``2.5`` (no exponent)."""
    text = f"{pct:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
