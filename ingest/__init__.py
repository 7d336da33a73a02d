"""Collectors: one module per source, each an async generator of RawRecord.

A source module defines ``SOURCE`` (its name), ``Config`` (a pydantic model with
its defaults, a :class:`ingest._http.SourceConfig`) and
``async def collect(client, cfg, run_id) -> AsyncIterator[RawRecord]``. It receives
its ``httpx.AsyncClient`` (rate-limited by the caller) and fetches with
:func:`ingest._http.fetch_json`. Modules whose names start with ``_`` are helpers.
"""
