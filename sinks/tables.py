"""Observations as Arrow tables: what the transform worker hands the store writer.

Only pyarrow here, so the transform worker process does not load DuckDB.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import pyarrow as pa

from yieldstream.contracts import Observation

TS = pa.timestamp("us", tz="UTC")
OBS_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("pool_id", pa.string()),
        ("observed_at", TS),
        ("protocol", pa.string()),
        ("chain", pa.string()),
        ("symbol", pa.string()),
        ("strategy", pa.string()),
        ("venue", pa.string()),
        ("category", pa.string()),
        ("apy_pct", pa.float64()),
        ("apy_base_pct", pa.float64()),
        ("apy_reward_pct", pa.float64()),
        ("tvl_usd", pa.float64()),
        ("stablecoin", pa.bool_()),
        ("il_risk", pa.bool_()),
        ("exposure", pa.string()),
        ("outlier", pa.bool_()),
        ("pool_meta", pa.string()),
        ("underlying_tokens", pa.list_(pa.string())),
        ("reward_tokens", pa.list_(pa.string())),
        ("level", pa.string()),
        ("product_id", pa.string()),
        ("strategy_guessed", pa.bool_()),
        ("apy_gross_pct", pa.float64()),
        ("apy_borrow_pct", pa.float64()),
        ("utilization_pct", pa.float64()),
        ("tvl_tokens", pa.float64()),
        ("tvl_token", pa.string()),
    ]
)
OBS_FIELDS = tuple(OBS_SCHEMA.names)


def observations_table(observations: Sequence[Observation]) -> pa.Table:
    """Observations as an Arrow table, column by column (no per-row dicts)."""
    columns = [
        pa.array(_micros([o.observed_at for o in observations]), type=field.type)
        if name == "observed_at"
        else pa.array([getattr(o, name) for o in observations], type=field.type)
        for name, field in zip(OBS_FIELDS, OBS_SCHEMA, strict=True)
    ]
    return pa.Table.from_arrays(columns, schema=OBS_SCHEMA)


def _micros(moments: Iterable[datetime]) -> list[int]:
    """Epoch microseconds; each distinct time converts once (a snapshot shares one)."""
    cache: dict[datetime, int] = {}
    out = []
    for moment in moments:
        micros = cache.get(moment)
        if micros is None:
            micros = cache[moment] = (moment - _EPOCH) // _MICROSECOND
        out.append(micros)
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def columns_table(source: str, columns: Mapping[str, Sequence[Any] | None]) -> pa.Table:
    """An observations table of one source from its columns as lists (a Kafka
    ``observations`` message); a column missing or None is null in every row."""
    rows = len(columns["pool_id"] or ())
    varying = {
        name: pa.array(
            _micros(column) if name == "observed_at" else column, type=OBS_SCHEMA.field(name).type
        )
        for name, column in columns.items()
        if column is not None
    }
    return observations_columns(rows, {"source": source}, varying)


def column_values(column: pa.ChunkedArray | pa.Array) -> list[Any]:
    """A column of an observations table as Python values, as an Observation holds
    them (enums as their text); :func:`columns_table` reads them back.

    Times come out as UTC datetimes, each distinct time made once: Arrow's own
    conversion looks up the zone for every value (3 ms per 1,000 rows).
    """
    if column.type != TS:
        values: list[Any] = column.to_pylist()
        return values
    cache: dict[int | None, datetime | None] = {None: None}
    out = []
    for micros in column.cast(pa.int64()).to_pylist():
        moment = cache.get(micros, _UNSEEN)
        if moment is _UNSEEN:
            moment = cache[micros] = _EPOCH + micros * _MICROSECOND
        out.append(moment)
    return out


_UNSEEN: Any = object()


def observations_columns(
    rows: int, same: Mapping[str, Any], varying: Mapping[str, pa.Array]
) -> pa.Table:
    """An observations table of ``rows`` rows from whole columns, no row made in Python.

    ``same`` holds the values every row shares (one entity's protocol, chain, tokens...),
    ``varying`` the columns of their own (times, figures); a column in neither is null.
    Enum values are stored as their text, as :func:`observations_table` stores them.
    """
    columns = []
    for name, field in zip(OBS_FIELDS, OBS_SCHEMA, strict=True):
        column = varying.get(name)
        if column is None:
            value = same.get(name)
            if value is None:
                column = pa.nulls(rows, field.type)
            else:
                scalar = pa.scalar(value.value if isinstance(value, Enum) else value, field.type)
                column = pa.repeat(scalar, rows)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=OBS_SCHEMA)
