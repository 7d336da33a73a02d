"""The API's response models: the store's columns, with their units in their names.

``_pct`` is percent (3.1 means 3.1 %), ``_usd`` US dollars, ``_pp`` percentage
points; times are UTC. A product's ``id`` is ``<source>:<pool_id>`` (the source's
name never holds a colon), the path id of its history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T", bound=BaseModel)


class Page(BaseModel, Generic[T]):
    """One page of a list; ``next_cursor`` fetches the next (``null``: this was the last)."""

    items: list[T]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page")


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True)


class Product(_Row):
    """A product's newest figure (``latest_yields``)."""

    id: str = Field(description="<source>:<pool_id>, the id of /v1/products/{id}/history")
    source: str
    pool_id: str
    product_id: str | None = Field(description="the product across sources")
    observed_at: datetime
    protocol: str
    chain: str
    symbol: str
    asset: str = Field(description="the asset earned on, as /v1/compare groups it")
    strategy: str
    venue: str
    category: str | None
    apy_pct: float | None
    apy_base_pct: float | None
    apy_reward_pct: float | None
    apy_gross_pct: float | None = Field(description="before the venue's fee")
    apy_borrow_pct: float | None
    utilization_pct: float | None
    tvl_usd: float | None
    tvl_tokens: float | None
    tvl_token: str | None
    stablecoin: bool | None
    il_risk: bool | None
    exposure: str | None
    outlier: bool | None
    strategy_guessed: bool | None
    pool_meta: str | None
    underlying_tokens: list[str | None] | None
    reward_tokens: list[str | None] | None


class HistoryPoint(_Row):
    """A product's figures at the end of one hour or day (its last observation in it)."""

    at: datetime = Field(description="start of the hour or UTC day")
    observed_at: datetime = Field(description="the observation standing for it")
    apy_pct: float | None
    apy_base_pct: float | None
    apy_reward_pct: float | None
    real_apy_pct: float | None = Field(description="net of the staked token's inflation")
    inflation_pct: float | None
    tvl_usd: float | None
    tvl_tokens: float | None
    apy_borrow_pct: float | None
    utilization_pct: float | None


class History(Page[HistoryPoint]):
    id: str
    source: str
    pool_id: str
    product_id: str | None
    interval: str


class RealYield(_Row):
    """A staking product's newest APY net of the inflation that dilutes it (``real_yields``)."""

    id: str
    source: str
    pool_id: str
    product_id: str | None
    observed_at: datetime
    protocol: str
    chain: str
    symbol: str
    venue: str
    token: str | None = Field(description="the token whose supply dilutes it")
    apy_pct: float | None
    inflation_pct: float | None
    inflation_source: str | None
    inflation_at: datetime | None
    real_apy_pct: float | None
    no_real_yield: str | None = Field(description="why real_apy_pct is null")


class Comparison(_Row):
    """Strategies side by side for one asset and chain (``strategy_compare``)."""

    asset: str
    chain: str = Field(description="'(all chains)' for the asset over every chain")
    strategy: str
    venue: str
    products: int
    tvl_usd: float | None
    apy_tvl_weighted_pct: float | None
    apy_median_pct: float | None
    real_apy_tvl_weighted_pct: float | None
    real_apy_median_pct: float | None
    sigma_median_pct: float | None = Field(description="median annualised volatility")


class Alert(_Row):
    """One occurrence of a condition (``alerts``); open while ``cleared_at`` is null."""

    alert_id: str
    kind: str
    severity: str
    source: str
    pool_id: str | None
    product_id: str | None
    opened_at: datetime
    cleared_at: datetime | None
    detected_at: datetime
    evidence: dict[str, Any] = Field(description="the figures that set it off")


class ProtocolTvl(_Row):
    """A protocol's TVL at one moment: its total, or one chain's part (``protocol_tvl``)."""

    source: str
    protocol: str
    chain: str
    scope: str = Field(description="total, or chain: sum the chain rows or take the total")
    observed_at: datetime
    tvl_usd: float | None
    category: str | None
    strategy: str
    name: str | None


class SourceStatus(_Row):
    """A source as the store saw it fetch."""

    source: str
    enabled: bool
    interval_s: float
    last_fetch: datetime | None
    last_ok: bool | None
    last_success: datetime | None
    consecutive_failures: int
    failed_fetches: int
    rows_stored: int
    rejected: int
    fresh: bool = Field(description="a success within alerts.stale_after_h")


class Sources(BaseModel):
    items: list[SourceStatus]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str = Field(description="ready, or not_ready")
    store: str = Field(description="readable, or why not")
    stale_sources: list[str] = Field(description="sources with no success lately")
    detail: str | None = Field(None, description="why not ready")
