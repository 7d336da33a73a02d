"""What ``yieldstream plot`` draws, read from the store: no plotting library here.

:func:`history` reads ``yield_history`` (and ``real_yields`` where the store has it)
into one :class:`Line` per product and source; :func:`compare` reads one asset's rows
of ``strategy_compare`` into :class:`Bar` s. :mod:`yieldstream.charts` draws them.
Each refusal is a :class:`PlotError` whose one line says how to fix the command.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

FORMATS = {".png": "png", ".svg": "svg"}
STRATEGIES = ("staking", "lending", "farming", "other")
VENUES = ("defi", "cefi")
_LIST_PRODUCTS = 'yieldstream sql "SELECT DISTINCT product_id FROM latest_yields ORDER BY 1"'
_LIST_ASSETS = 'yieldstream sql "SELECT DISTINCT asset FROM strategy_compare ORDER BY 1"'


class PlotError(ValueError):
    """The command cannot draw what it was asked; the message says what to change."""


@dataclass
class Line:
    """One product as one source reports it (one pool of it), over time."""

    product_id: str
    source: str
    pool_id: str
    times: list[datetime] = field(default_factory=list)
    apy_pct: list[float | None] = field(default_factory=list)
    real_apy_pct: list[float | None] = field(default_factory=list)
    tvl_usd: list[float | None] = field(default_factory=list)
    label: str = ""


@dataclass(frozen=True)
class Bar:
    """One strategy at one venue for an asset: ``strategy_compare``'s all-chain row."""

    strategy: str
    venue: str
    products: int
    tvl_usd: float | None
    apy_pct: float | None  # TVL-weighted; the median when no product has a TVL
    weighted: bool
    real_apy_pct: float | None


def out_format(out: Path) -> str:
    """``png`` or ``svg``, from the suffix of ``out``."""
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise PlotError(
            f"--out {out}: the file name must end in .png or .svg (e.g. --out {out.stem}.png)"
        )
    if not out.parent.is_dir():
        raise PlotError(f"--out {out}: no directory {out.parent}; create it or write elsewhere")
    return fmt


def _check_not_empty(con: duckdb.DuckDBPyConnection) -> None:
    if con.execute("SELECT 1 FROM observations WHERE level = 'product' LIMIT 1").fetchone():
        return
    raise PlotError(
        "the store holds no products yet; run `yieldstream run --once` "
        "(or `yieldstream demo --data-dir DIR`) first"
    )


def _has_view(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_views() "
        "WHERE view_name = ? AND database_name = current_database()",
        [name],
    ).fetchone()
    return bool(row and row[0])


def _unknown(kind: str, names: Sequence[str], known: Sequence[str], hint: str) -> PlotError:
    """``no product x in the store (did you mean y?)``, for each name not known."""
    parts = []
    for name in names:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        parts.append(f"{name} (did you mean {close[0]}?)" if close else name)
    what = kind if len(names) == 1 else f"{kind}s"
    return PlotError(f"no {what} {', '.join(parts)} in the store; list them with: {hint}")


def history(
    con: duckdb.DuckDBPyConnection, products: Sequence[str], since: datetime | None
) -> list[Line]:
    """Each product's APY, real APY and TVL over time, one line per source and pool."""
    _check_not_empty(con)
    wanted = list(dict.fromkeys(products))
    known = [
        str(r[0])
        for r in con.execute(
            "SELECT DISTINCT product_id FROM observations WHERE level = 'product'"
        ).fetchall()
    ]
    missing = [p for p in wanted if p not in set(known)]
    if missing:
        raise _unknown("product", missing, known, _LIST_PRODUCTS)
    real = (
        "(SELECT source, pool_id, observed_at, real_apy_pct FROM real_yields "
        "WHERE product_id IN (SELECT unnest($products)))"
        if _has_view(con, "real_yields")
        else "(SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS pool_id, "
        "NULL::TIMESTAMPTZ AS observed_at, NULL::DOUBLE AS real_apy_pct)"
    )
    rows = con.execute(
        f"""
        SELECT h.product_id, h.source, h.pool_id, h.observed_at, h.apy_pct,
               r.real_apy_pct, h.tvl_usd
        FROM yield_history AS h
        LEFT JOIN {real} AS r USING (source, pool_id, observed_at)
        WHERE h.product_id IN (SELECT unnest($products))
          AND ($since IS NULL OR h.observed_at >= $since)
        ORDER BY h.product_id, h.source, h.pool_id, h.observed_at
        """,
        {"products": wanted, "since": since},
    ).fetchall()
    lines: dict[tuple[str, str, str], Line] = {}
    for product_id, source, pool_id, at, apy, real_apy, tvl in rows:
        key = (str(product_id), str(source), str(pool_id))
        line = lines.setdefault(key, Line(*key))
        line.times.append(at.astimezone(UTC))
        line.apy_pct.append(apy)
        line.real_apy_pct.append(real_apy)
        line.tvl_usd.append(tvl)
    empty = [p for p in wanted if not any(k[0] == p for k in lines)]
    if empty:
        raise PlotError(
            f"no observations of {', '.join(empty)} since {since:%Y-%m-%d %H:%M} UTC; "
            "pass an earlier --since or leave it out"
            if since
            else f"no observations of {', '.join(empty)}"
        )
    return _labelled(sorted(lines.values(), key=lambda x: (wanted.index(x.product_id), x.source)))


def _labelled(lines: list[Line]) -> list[Line]:
    """``product (source)``; with the pool id when a source has several for a product."""
    pools: dict[tuple[str, str], int] = {}
    for line in lines:
        pools[line.product_id, line.source] = pools.get((line.product_id, line.source), 0) + 1
    for line in lines:
        line.label = f"{line.product_id} ({line.source})"
        if pools[line.product_id, line.source] > 1:
            line.label = f"{line.product_id} ({line.source}, pool {line.pool_id})"
    return lines


def compare(con: duckdb.DuckDBPyConnection, asset: str) -> list[Bar]:
    """``asset``'s strategies side by side, over all chains, from ``strategy_compare``."""
    _check_not_empty(con)
    if not _has_view(con, "strategy_compare"):
        raise PlotError(
            "the store has no strategy_compare view yet: a writer of this version "
            "creates it; run `yieldstream run --once` against the store, then plot again"
        )
    wanted = asset.strip().upper()
    rows = con.execute(
        """
        SELECT strategy, venue, products, tvl_usd, apy_tvl_weighted_pct, apy_median_pct,
               coalesce(real_apy_tvl_weighted_pct, real_apy_median_pct)
        FROM strategy_compare
        WHERE asset = ? AND chain = '(all chains)'
        """,
        [wanted],
    ).fetchall()
    if not rows:
        found = con.execute("SELECT DISTINCT asset FROM strategy_compare").fetchall()
        known = [str(r[0]) for r in found]
        raise _unknown("asset", [wanted], known, _LIST_ASSETS)
    bars = [
        Bar(
            strategy=str(strategy),
            venue=str(venue),
            products=int(products),
            tvl_usd=tvl,
            apy_pct=weighted if weighted is not None else median,
            weighted=weighted is not None,
            real_apy_pct=real,
        )
        for strategy, venue, products, tvl, weighted, median, real in rows
    ]
    return sorted(bars, key=lambda b: (_rank(STRATEGIES, b.strategy), _rank(VENUES, b.venue)))


def _rank(order: Sequence[str], value: str) -> int:
    return order.index(value) if value in order else len(order)


__all__ = ["FORMATS", "Bar", "Line", "PlotError", "compare", "history", "out_format"]
