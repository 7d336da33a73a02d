"""SQL expressions that write one value of a query result as text, for CSV and JSON.

``x`` is a SQL expression (a column, ``#3``, or a lambda's variable) of DuckDB type
``kind``; each function returns the SQL of its text. :mod:`yieldstream.sqlout` says
what each type becomes and why.
"""

from __future__ import annotations

from typing import cast

from duckdb.sqltypes import DuckDBPyType

_DOUBLES = {"double", "float"}
# Types whose text never holds a comma, quote or line break.
_UNQUOTED = {
    "boolean",
    "decimal",
    "date",
    "time",
    "time with time zone",
    "interval",
    "blob",
    "uuid",
    "timestamp",
    "timestamp with time zone",
    "timestamp_s",
    "timestamp_ms",
    "timestamp_ns",
}
_TIMES = {
    "timestamp",
    "timestamp with time zone",
    "timestamp_s",
    "timestamp_ms",
    "timestamp_ns",
}


def csv_expr(x: str, kind: DuckDBPyType) -> str:
    """A CSV field; strings quoted when they must be (and the empty string: not NULL)."""
    if kind.id in _DOUBLES:
        return (
            f"CASE WHEN isnan({x}) THEN 'NaN' WHEN {x} = 'infinity' THEN 'Infinity' "
            f"WHEN {x} = '-infinity' THEN '-Infinity' ELSE CAST({x} AS VARCHAR) END"
        )
    if kind.id in _UNQUOTED or kind.id.endswith(("int", "integer")):
        return _scalar_text(x, kind) or f"CAST({x} AS VARCHAR)"
    if kind.id in {"list", "array", "struct", "map", "union"}:
        text = f"CAST({json_expr(x, kind)} AS VARCHAR)"
    else:
        text = f"CAST({x} AS VARCHAR)"
    # contains() four times: half the time regexp_matches took.
    must = " OR ".join(f"contains({text}, {c})" for c in ("','", "'\"'", "chr(10)", "chr(13)"))
    return (
        f"CASE WHEN {text} = '' OR {must} "
        f"""THEN '"' || replace({text}, '"', '""') || '"' ELSE {text} END"""
    )


def _scalar_text(x: str, kind: DuckDBPyType) -> str | None:
    """The text of a value whose text differs from DuckDB's VARCHAR cast; else None."""
    if kind.id in _TIMES:
        return f"replace(CAST({x} AS VARCHAR), ' ', 'T')"
    if kind.id == "interval":
        return _iso_duration(x)
    if kind.id == "blob":
        return f"to_base64({x})"
    return None


def json_expr(x: str, kind: DuckDBPyType, depth: int = 0) -> str:
    """A JSON value; NULL stays NULL (``null`` in an object)."""
    if kind.id in _DOUBLES:
        number = f"to_json({x})" if kind.id == "double" else f"CAST(CAST({x} AS VARCHAR) AS JSON)"
        return (
            f"""CASE WHEN isnan({x}) THEN '"NaN"'::JSON WHEN {x} = 'infinity' """
            f"""THEN '"Infinity"'::JSON WHEN {x} = '-infinity' THEN '"-Infinity"'::JSON """
            f"ELSE {number} END"
        )
    if _plain(kind):  # DuckDB's own to_json writes it as above already
        return f"to_json({x})"
    if kind.id in {"list", "array"}:
        item = f"e{depth}"
        inner = json_expr(item, _child(kind, "child"), depth + 1)
        return f"to_json(list_transform({x}, lambda {item}: {inner}))"
    if kind.id == "struct":
        fields = ", ".join(
            f"{literal(name)}, {json_expr(f'struct_extract({x}, {literal(name)})', t, depth)}"
            for name, t in kind.children
            if isinstance(t, DuckDBPyType)
        )
        return f"CASE WHEN {x} IS NULL THEN NULL ELSE json_object({fields}) END"
    if kind.id == "map":
        item = f"e{depth}"
        inner = json_expr(item, _child(kind, "value"), depth + 1)
        values = f"list_transform(map_values({x}), lambda {item}: {inner})"
        return f"to_json(map(map_keys({x}), {values}))"
    if str(kind) == "JSON":
        return x
    if kind.id == "decimal":
        return f"to_json(CAST({x} AS VARCHAR))"
    if kind.id in {"boolean", "union"} or kind.id.endswith(("int", "integer")):
        return f"to_json({x})"
    return f"to_json({_scalar_text(x, kind) or f'CAST({x} AS VARCHAR)'})"


def _plain(kind: DuckDBPyType) -> bool:
    """Whether to_json writes ``kind`` as :func:`_json_expr` would: no float, decimal,
    time, interval, blob or JSON in it."""
    if kind.id in {"list", "array", "map", "struct"}:
        return all(_plain(t) for _, t in kind.children if isinstance(t, DuckDBPyType))
    if kind.id == "varchar":
        return str(kind) != "JSON"
    return kind.id in {"boolean", "uuid", "date"} or kind.id.endswith(("int", "integer"))


def _child(kind: DuckDBPyType, name: str) -> DuckDBPyType:
    return cast(DuckDBPyType, dict(kind.children)[name])


def _iso_duration(x: str) -> str:
    """An INTERVAL as an ISO 8601 duration: ``P1Y2M3DT4H5M6.5S``, ``PT0S`` when zero."""

    def part(unit: str) -> str:
        return f"datepart('{unit}', {x})"

    us = part("microseconds")  # the seconds of the minute, in microseconds
    # 1.5, 2, 0.000001: never the 1e-06 of a DOUBLE's text.
    seconds = f"rtrim(rtrim(printf('%.6f', {us} / 1000000), '0'), '.')"

    def piece(value: str, suffix: str) -> str:
        return f"CASE WHEN {value} <> 0 THEN CAST({value} AS VARCHAR) || '{suffix}' ELSE '' END"

    date = piece(part("year"), "Y") + " || " + piece(part("month"), "M") + " || "
    date += piece(part("day"), "D")
    clock = piece(part("hour"), "H") + " || " + piece(part("minute"), "M")
    clock += f" || CASE WHEN {us} <> 0 THEN {seconds} || 'S' ELSE '' END"
    return (
        f"CASE WHEN {x} IS NULL THEN NULL WHEN {x} = INTERVAL 0 SECOND THEN 'PT0S' "
        f"ELSE 'P' || {date} || CASE WHEN ({clock}) <> '' THEN 'T' || {clock} ELSE '' END END"
    )


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
