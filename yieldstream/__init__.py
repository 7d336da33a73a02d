"""yieldstream: APY and TVL for staking, farming and lending, as DuckLake time series.

For analysts, :func:`connect` returns a read-only DuckDB connection with the store
attached and the views (``latest_yields``, ``yield_history``) ready::

    import yieldstream
    con = yieldstream.connect("yieldstream-data")
    con.sql("SELECT * FROM latest_yields ORDER BY tvl_usd DESC LIMIT 10").show()
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    import duckdb


def connect(
    data_dir: str | Path = "yieldstream-data", catalog: str | None = None
) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the store; safe while a daemon writes to it."""
    from sinks.lake import Store, open_reader

    return open_reader(Store(Path(data_dir), catalog))


__all__ = ["__version__", "connect"]
