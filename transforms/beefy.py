"""Beefy vaults -> farming observations, one per vault per poll.

Each record is one vault's three upstream items side by side (see
:mod:`ingest.beefy`): ``breakdown`` (``/apy/breakdown``), ``chain`` and ``tvl``
(``/tvl``), ``vault`` (``/vaults``). Rates are fractions.

- ``apy_pct`` is ``totalApy`` (fraction_to_pct): the figure Beefy's app shows and
  DefiLlama's beefy adaptor publishes. Its parts are not split out: Beefy's docs say
  ``totalApy = (1 + vaultApy) * (1 + tradingApr) - 1``, but the docs' own sample
  does not add up ((1 + 2.1058) x (1 + 0.2232) - 1 = 2.7991, against ``totalApy``
  2.8826), and many vaults carry ``totalApy`` alone. ``apy_base_pct`` and
  ``apy_reward_pct`` stay empty; the archive keeps the breakdown verbatim.
- No compounding is applied: ``totalApy`` and ``vaultApy`` are already APYs,
  Beefy having compounded ``vaultApr`` ``compoundingsPerYear`` times (its harvests)
  net of ``beefyPerformanceFee``.
- ``tvl_usd`` is the vault's ``/tvl`` figure (US dollars).
- observed_at is the fetch time: Beefy's figures carry no time of their own.

Products as DefiLlama's beefy adaptor (yield-server ``src/adaptors/beefy/index.js``)
names them: chain from the ``/tvl`` chain id through its ``networkMapping``, symbol
``formatSymbol(assets.join('-'))`` (DefiLlama looks each asset up in ``/tokens``
first and falls back to the asset id, which is the token's symbol for nearly every
vault), poolMeta ``formatChain(platformId)`` plus ``-DDMMMYY`` when the vault's name
has such a date. Retired vaults (status ``eol``/``paused``), which DefiLlama drops,
are kept with ``pool_meta`` naming the status (their product id unchanged).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from transforms import Context, Result
from transforms.products import product_id
from transforms.units import fraction_to_pct
from yieldstream.contracts import ObservationError, RawRecord, Strategy, Venue, make_observation

SOURCE = "beefy"
PROTOCOL = "beefy"  # DefiLlama's project slug
# DefiLlama's networkMapping (chain id -> its chain name), as of its adaptor.
NETWORKS = {
    "1": "ethereum",
    "10": "optimism",
    "25": "cronos",
    "56": "bsc",
    "100": "gnosis",
    "122": "fuse",
    "128": "heco",
    "137": "polygon",
    "250": "fantom",
    "252": "fraxtal",
    "324": "zksync",
    "1088": "metis",
    "1101": "polygon_zkevm",
    "1284": "moonbeam",
    "1285": "moonriver",
    "2222": "kava",
    "5000": "mantle",
    "7700": "canto",
    "8453": "base",
    "34443": "mode",
    "42161": "arbitrum",
    "42220": "celo",
    "42262": "oasis",
    "43114": "avalanche",
    "59144": "linea",
    "1313161554": "aurora",
    "1666600000": "harmony",
}
# Beefy's own chain names (``vault.chain``) where DefiLlama's differ.
BEEFY_CHAINS = {"avax": "avalanche", "one": "harmony", "zkevm": "polygon_zkevm"}
DISPLAY = {"bsc": "BSC", "polygon_zkevm": "Polygon zkEVM", "zksync": "zkSync Era"}
RETIRED = ("eol", "paused")
_DATE = re.compile(r"\d{2}[A-Za-z]{3}\d{2}")  # DDMMMYY, as DefiLlama's extractePoolMetaDate


class Breakdown(msgspec.Struct):
    totalApy: float | None = None


class Vault(msgspec.Struct):
    id: str
    chain: str
    assets: list[str]
    status: str
    platformId: str | None = None
    name: str = ""
    tokenAddress: str | None = None


class Joined(msgspec.Struct):
    id: str
    breakdown: Breakdown | None = None
    chain: str | None = None  # the /tvl chain id
    tvl: float | None = None
    vault: Vault | None = None


_decode = msgspec.json.Decoder(Joined).decode


def format_symbol(symbol: str) -> str:
    """DefiLlama's ``formatSymbol``: ``_`` and ``/`` as ``-``, whitespace removed."""
    return re.sub(r"\s", "", re.sub(r"[_/]", "-", symbol))


def pool_meta(vault: Vault) -> str | None:
    """DefiLlama's poolMeta: the platform (first letter upper) and a DDMMMYY date."""
    if not vault.platformId:
        return None
    meta = vault.platformId[:1].upper() + vault.platformId[1:]
    date = _DATE.search(vault.name)
    return f"{meta}-{date.group(0)}" if date else meta


def _chain(item: Joined, vault: Vault) -> str:
    if item.chain is not None:
        name = NETWORKS.get(item.chain)
        if name is None:
            raise ObservationError(f"chain id {item.chain!r} of /tvl is not a known chain")
        return name
    return BEEFY_CHAINS.get(vault.chain, vault.chain)


def _pct(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        return fraction_to_pct(value)
    except ValueError as exc:
        raise ObservationError(f"{name}: {exc}") from None


def transform(record: RawRecord, ctx: Context) -> Result:
    item = _decode(record.payload)
    vault = item.vault
    if vault is None:
        raise ObservationError(
            f"vault {item.id!r} is not in /vaults: its chain and assets are unknown"
        )
    if not vault.assets:
        raise ObservationError(f"vault {item.id!r} lists no assets")
    chain = _chain(item, vault)
    breakdown = item.breakdown or Breakdown()
    meta = pool_meta(vault)
    symbol = format_symbol("-".join(vault.assets))
    fields: dict[str, Any] = {
        "source": SOURCE,
        "pool_id": item.id,
        "product_id": product_id(PROTOCOL, chain, symbol, meta),
        "observed_at": record.fetched_at,
        "protocol": PROTOCOL,
        "chain": DISPLAY.get(chain, chain[:1].upper() + chain[1:]),
        "symbol": symbol,
        "strategy": Strategy.FARMING,
        "strategy_guessed": False,
        "venue": Venue.DEFI,
        "category": "Yield Aggregator",
        "apy_pct": _pct(breakdown.totalApy, "totalApy"),
        "tvl_usd": item.tvl,
        "pool_meta": meta,
    }
    if vault.status.lower() in RETIRED:
        fields["pool_meta"] = f"{meta} ({vault.status})" if meta else vault.status
    if vault.tokenAddress and len(vault.assets) == 1:
        fields["underlying_tokens"] = [vault.tokenAddress]
    return [make_observation(fields)]
