"""The three contracts every stage speaks: RawRecord, Observation, Rejection.

RawRecord
    One upstream item exactly as fetched (``payload`` is its JSON text), never a
    whole response: a 20 MB ``/pools`` body becomes ~20k records.
Observation
    One validated, normalised figure for one pool at one moment. Units are in the
    names: ``*_pct`` is percent (3.1 means 3.1 %), ``tvl_usd`` is US dollars.
    The natural key is ``(source, pool_id, observed_at)``.
Rejection
    What failed, why, and the original payload. Nothing is dropped silently.

Observations are ``msgspec.Struct`` values validated by :func:`make_observation`
(``msgspec.convert`` in strict mode): it checks types, ranges, literals and UTC
times in C at ~1-2M rows/s, where a strict pydantic model measured 95-120k rows/s
on the same rows, too slow for the 100k rows/s end-to-end budget.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Final, Literal

import msgspec

from yieldstream.errors import SkippableRecord

APY_MIN_PCT: Final = -100.0
APY_MAX_PCT: Final = 1e6

Pct = Annotated[float, msgspec.Meta(ge=APY_MIN_PCT, le=APY_MAX_PCT)]
Usd = Annotated[float, msgspec.Meta(ge=0.0, le=1e15)]
Share = Annotated[float, msgspec.Meta(ge=0.0, le=1000.0)]  # a percent of a whole (utilisation)
Amount = Annotated[float, msgspec.Meta(ge=0.0, le=1e18)]  # whole tokens
UtcDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


class Strategy(StrEnum):
    """How the yield is earned."""

    STAKING = "staking"
    LENDING = "lending"
    FARMING = "farming"
    OTHER = "other"


class Venue(StrEnum):
    """Where the yield is earned: on-chain protocol or centralised desk."""

    DEFI = "defi"
    CEFI = "cefi"


class Level(StrEnum):
    """What an observation measures: a product that earns a yield, or a protocol's TVL.

    Only products are yields (``latest_yields``, ``yield_history``, ``crosscheck``);
    a protocol's total TVL and its per-chain parts are ``protocol_tvl``; a network's
    inflation is ``network_inflation``.
    """

    PRODUCT = "product"  # one way of earning on one asset: a pool, reserve, staking token
    PROTOCOL = "protocol"  # a protocol's total TVL
    PROTOCOL_CHAIN = "protocol_chain"  # one chain's part of a protocol's TVL
    # A network's own figure, not a yield: a token's supply inflation (``apy_pct`` is
    # the annual supply growth in percent), for the real yield of staking it.
    NETWORK = "network"


RecordKind = Literal["snapshot", "history"]


class RawRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One upstream item, unmodified, with where and when it was fetched."""

    source: str
    endpoint: str
    fetched_at: datetime
    run_id: str
    kind: RecordKind
    native_id: str
    payload: bytes  # the item's JSON text, as upstream sent it
    # Why the item cannot be used, found as it was split out of its response (nested
    # too deep, an id no stage can store, a repeated id: see ingest._items); such a
    # record is a rejection of stage ``decode``, never archived or transformed.
    problem: str | None = None

    @property
    def raw_id(self) -> str:
        """Stable identity of this record: same fetch, same item, same id."""
        return record_id(self.source, self.endpoint, self.fetched_at, self.native_id)


class Observation(msgspec.Struct, frozen=True, kw_only=True):
    """One validated APY/TVL figure of one pool at one moment."""

    source: NonEmpty
    pool_id: NonEmpty
    observed_at: UtcDatetime
    protocol: NonEmpty
    chain: NonEmpty
    symbol: str
    strategy: Strategy
    venue: Venue
    category: str | None = None
    apy_pct: Pct | None = None
    apy_base_pct: Pct | None = None
    apy_reward_pct: Pct | None = None
    tvl_usd: Usd | None = None
    stablecoin: bool | None = None
    il_risk: bool | None = None
    exposure: str | None = None
    outlier: bool | None = None
    pool_meta: str | None = None
    underlying_tokens: list[str] | None = None
    reward_tokens: list[str] | None = None
    level: Level = Level.PRODUCT
    # The product's identity across sources (transforms.products.product_id); None
    # for protocol-level rows.
    product_id: NonEmpty | None = None
    # True when the strategy is a guess from the pool's own fields, its protocol's
    # category being unknown to the reference data in hand.
    strategy_guessed: bool | None = None
    # The saver's APY before the venue's fee, where the venue takes a share of the
    # interest (Bitfinex keeps 15 % of a lender's): ``apy_pct`` is what the saver keeps.
    apy_gross_pct: Pct | None = None
    # A lending market's other side: what borrowers pay, and the share lent out.
    apy_borrow_pct: Pct | None = None
    utilization_pct: Share | None = None
    # TVL in whole tokens of ``tvl_token`` (SOL for JitoSOL, where no USD figure is
    # published); exact base units are scaled once, in transforms.units.
    tvl_tokens: Amount | None = None
    tvl_token: str | None = None


Stage = Literal["fetch", "decode", "validate"]


class Rejection(msgspec.Struct, frozen=True, kw_only=True):
    """A record (or a whole response) that could not become observations."""

    source: str
    endpoint: str
    stage: Stage
    reason: str
    native_id: str | None
    payload: bytes
    rejected_at: datetime
    raw_id: str

    @property
    def payload_sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


@dataclass(slots=True)
class FetchReport:
    """How one fetch run of a source went (a row of ``fetches``)."""

    source: str
    run_id: str
    started_at: datetime
    ok: bool
    records: int
    error: str | None
    token: str = field(default_factory=lambda: uuid.uuid4().hex)  # the bus's handle


def record_id(source: str, endpoint: str, fetched_at: datetime, native_id: str) -> str:
    """The deterministic id of a fetched item: ``<fetch hash>:<native id>``.

    The fetch hash (16 hex characters) names the source, endpoint and UTC fetch
    time; it is computed once per fetch, so an id costs a string join per item.
    """
    return f"{fetch_key(source, endpoint, fetched_at)}:{native_id}"


@lru_cache(maxsize=1024)  # the records of one fetch share source, endpoint and time
def fetch_key(source: str, endpoint: str, fetched_at: datetime) -> str:
    """The fetch part of :func:`record_id`: a hash of source, endpoint and UTC fetch time."""
    key = f"{source}\x1f{endpoint}\x1f{fetched_at.astimezone(UTC).isoformat()}"
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


_ZERO = timedelta(0)


class ObservationError(SkippableRecord, ValueError):
    """The fields do not make a valid Observation; the message says which and why."""


def make_observation(fields: dict[str, Any]) -> Observation:
    """Validate ``fields`` into an Observation (strict types, ranges, UTC).

    Raises :class:`ObservationError` with msgspec's path-precise message, e.g.
    ``Expected `float` <= 1000000.0 - at `$.apy_pct```.
    """
    try:
        obs = msgspec.convert(fields, Observation, strict=True)
    except msgspec.ValidationError as exc:
        raise ObservationError(str(exc)) from None
    if obs.observed_at.tzinfo is not UTC and obs.observed_at.utcoffset() != _ZERO:
        raise ObservationError(f"observed_at must be UTC, got {obs.observed_at.isoformat()}")
    if obs.apy_pct is None and obs.tvl_usd is None:
        raise ObservationError("neither an APY nor a TVL figure")
    if (obs.product_id is None) != (obs.level is not Level.PRODUCT):
        raise ObservationError(
            "a product observation needs a product_id, a protocol-level one has none"
        )
    return obs
