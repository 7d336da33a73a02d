"""Data steps of schema migrations that need the transforms' own code, not only SQL.

:func:`sinks.lake._migrate` runs the step of a version right after its SQL script,
in the same transaction, so a store is never left half migrated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import duckdb

# Imported by the step that needs them: every reader (`yieldstream sql`) imports this
# module with sinks.lake, and Arrow alone took 0.15 s of its start.


def _levels_and_products(con: duckdb.DuckDBPyConnection) -> None:
    """Version 3: the level and product id of every row stored before they existed.

    Every row was a 'product' then, but for a protocol's TVL: its pool id was the
    protocol (its total) or ``<protocol>:<chain>`` (one chain's part), with no APY,
    which no product's pool id was. A product's id is what the transforms give new
    rows (protocol, chain, symbol, and the pool's variant), computed once per
    distinct product. One UPDATE writes both, and every row: DuckLake 0.3 failed an
    assertion on a row updated twice in one transaction, and answered a filter on a
    column added with a default with no rows from files written before the column.
    """
    import pyarrow as pa

    from transforms.products import product_id

    names = con.execute(
        "SELECT DISTINCT protocol, chain, symbol, pool_meta FROM observations"
    ).fetchall()
    if not names:
        return
    protocols, chains, symbols, metas = (list(column) for column in zip(*names, strict=True))
    named = pa.table(  # noqa: F841 - read by name
        {
            "protocol": protocols,
            "chain": chains,
            "symbol": symbols,
            "meta": pa.array(metas, pa.string()),
            "product_id": [product_id(*name) for name in names],
        }
    )
    con.execute(
        f"""
        UPDATE observations AS o
        SET level = {_LEVEL},
            product_id = CASE WHEN {_LEVEL} = 'product' THEN n.product_id END
        FROM named AS n
        WHERE o.protocol = n.protocol AND o.chain = n.chain AND o.symbol = n.symbol
          AND o.pool_meta IS NOT DISTINCT FROM n.meta
        """
    )


_LEVEL = """(CASE
    WHEN o.apy_pct IS NOT NULL OR o.apy_base_pct IS NOT NULL OR o.apy_reward_pct IS NOT NULL
        THEN 'product'
    WHEN o.pool_id = o.protocol THEN 'protocol'
    WHEN starts_with(o.pool_id, o.protocol || ':') THEN 'protocol_chain'
    ELSE 'product' END)"""

STEPS: Mapping[int, Callable[[duckdb.DuckDBPyConnection], None]] = MappingProxyType(
    {3: _levels_and_products}
)
