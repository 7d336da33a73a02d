"""Sinks: the DuckLake store (DuckDB) that observations, rejections and raw records go to."""
