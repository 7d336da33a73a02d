"""yieldstream: APY and TVL for staking, farming and lending, as DuckLake time series.

For analysts, :func:`connect` returns a read-only DuckDB connection with the store
attached and the views (``latest_yields``, ``yield_history``) ready::

    import yieldstream
    con = yieldstream.connect("yieldstream-data")
    con.sql("SELECT * FROM latest_yields ORDER BY tvl_usd DESC LIMIT 10").show()
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    import duckdb


def connect(
    data_dir: str | Path = "yieldstream-data",
    catalog: str | None = None,
    *,
    read: Sequence[str | Path] = (),
) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the store; safe while a daemon writes to it.

    It reads the store and nothing else (DuckDB's ``enable_external_access`` off,
    configuration locked, no extension loads): ``read`` names files or directories
    it may read too, e.g. ``read=["pools.csv"]`` to join a local CSV.
    """
    from sinks.lake import Store, open_reader

    return open_reader(Store(Path(data_dir), catalog), [Path(p) for p in read])


__all__ = ["__version__", "connect"]
