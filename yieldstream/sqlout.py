"""``yieldstream sql`` output: a table for people, CSV and JSON lines for programs.

DuckDB turns every value into text (a projection over the query), and the rows
stream out in batches (CSV and JSON lines in Arrow record batches): memory stays
flat however many rows a query returns. The table shows the first ``--limit`` rows
only; the rows after them are counted, batch by batch, never held. A table needs
no Arrow: ``yieldstream sql`` starts without importing pyarrow.

How values are written (CSV and JSON lines alike, unless said):

* NULL: an empty field in CSV, ``null`` in JSON;
* times: ISO 8601, ``2026-01-01T12:00:00+00`` (TIMESTAMPTZ in UTC), ``2026-01-01``;
* intervals: ISO 8601 durations, ``P1DT2H``, ``P1Y2M``, ``PT0.5S``, ``PT0S``; a negative
  part keeps its sign (``P-1D``);
* DOUBLE/FLOAT: numbers; NaN and infinities as ``NaN``, ``Infinity``, ``-Infinity``
  (JSON strings: JSON has no such numbers, and null means NULL);
* DECIMAL: exact, all its digits (``"1.10"``, a JSON string: a JSON number would be
  read as a float by most readers);
* BLOB: base64;
* lists, structs and maps: JSON (``["0xa","0xb"]``), their values written as above;
* CSV: a header line, ``\\n`` line ends; a string in double quotes when it holds a
  comma, a quote or a line break, and the empty string as ``""`` (NULL is nothing).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, BinaryIO

import duckdb
from rich.cells import cell_len

from yieldstream.sqltext import csv_expr, json_expr, literal

if TYPE_CHECKING:  # imported by DuckDB when CSV or JSON stream; a table needs no pyarrow
    import pyarrow as pa

DEFAULT_LIMIT = 1_000
BATCH_ROWS = 65_536


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


Note = Callable[[str], None]


def write_results(
    con: duckdb.DuckDBPyConnection,
    statements: Sequence[duckdb.Statement],
    fmt: Format,
    out: BinaryIO,
    note: Note,
    limit: int | None = None,
) -> None:
    """Run each statement in turn and write its result, if it has one, to ``out``.

    ``limit``: at most that many rows per result (0: all; None: the table's
    :data:`DEFAULT_LIMIT`, every row in CSV and JSON). ``note`` gets the lines for
    stderr (rows shown, rows left out).
    """
    for statement in statements:
        relation: duckdb.DuckDBPyRelation | None = con.sql(statement.query)
        if relation is None:  # SET, USE, BEGIN...: nothing to show
            continue
        if fmt is Format.table:
            _table(relation, out, note, DEFAULT_LIMIT if limit is None else limit)
        elif fmt is Format.csv:
            _csv(relation, out, limit or None)
        else:
            _json(relation, out, limit or None)
        out.flush()


def _batches(relation: duckdb.DuckDBPyRelation) -> pa.RecordBatchReader:
    return relation.fetch_record_batch(BATCH_ROWS)


def _csv(relation: duckdb.DuckDBPyRelation, out: BinaryIO, limit: int | None) -> None:
    out.write((",".join(_csv_quote(name) for name in relation.columns) + "\n").encode())
    # concat() writes NULL as nothing, and makes each line at once (|| made 25 strings).
    fields = ", ',', ".join(csv_expr(f"#{i}", kind) for i, kind in enumerate(relation.types, 1))
    _write_lines(relation.project(f"concat({fields}, chr(10)) AS line"), out, limit)


def _csv_quote(text: str) -> str:
    if text == "" or any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _json(relation: duckdb.DuckDBPyRelation, out: BinaryIO, limit: int | None) -> None:
    # One concat() per line: json_object() took half as long again.
    parts: list[str] = []
    for i, (name, kind) in enumerate(zip(relation.columns, relation.types, strict=True), 1):
        key = ("," if parts else "{") + json.dumps(name) + ":"
        value = f"coalesce(CAST({json_expr(f'#{i}', kind)} AS VARCHAR), 'null')"
        parts += [literal(key), value]
    line = f"concat({', '.join(parts)}, '}}', chr(10))" if parts else "'{}' || chr(10)"
    _write_lines(relation.project(f"{line} AS line"), out, limit)


def _write_lines(lines: duckdb.DuckDBPyRelation, out: BinaryIO, limit: int | None) -> None:
    for batch in _batches(lines if limit is None else lines.limit(limit)):
        _write_strings(out, batch.column(0))


def _write_strings(out: BinaryIO, column: pa.Array) -> None:
    """The concatenated values of a string column, straight from its Arrow buffer."""
    import pyarrow as pa

    if len(column) == 0:
        return
    if column.type == pa.string_view() or column.null_count:
        out.write("".join(column.to_pylist()).encode())
        return
    offsets, data = column.buffers()[1:3]
    assert offsets is not None
    assert data is not None
    size = 8 if column.type == pa.large_string() else 4
    start, end = column.offset * size, (column.offset + len(column)) * size
    first = int.from_bytes(offsets[start : start + size], "little")
    last = int.from_bytes(offsets[end : end + size], "little")
    out.write(memoryview(data)[first:last])


def _table(
    relation: duckdb.DuckDBPyRelation,
    out: BinaryIO,
    note: Note,
    limit: int,
) -> None:
    """The first ``limit`` rows (0: all) as text; the rows after them only counted.

    One pass of the query: DuckDB numbers the rows as they stream (a streaming
    window, in their order) and casts the first ``limit`` only, each row's cells
    one list of text; the rows after them arrive as NULLs, counted. Casting all
    1,000,000 rows of a query to count them took three times as long; streaming
    them through Arrow, twice as long (and importing pyarrow, 0.15 s of a start).
    """
    cells = ", ".join(f"CAST(#{i} AS VARCHAR)" for i in range(1, len(relation.columns) + 1))
    row = f"[{cells}]::VARCHAR[]"
    if limit:
        row = f"CASE WHEN row_number() OVER () <= {limit} THEN {row} END"
    numbered = relation.project(f"{row} AS cells")
    rows: list[list[str]] = []
    seen = 0
    while batch := numbered.fetchmany(BATCH_ROWS):
        seen += len(batch)
        for (cells_of_row,) in batch[: limit - len(rows) if limit else None]:
            rows.append(["" if v is None else str(v) for v in cells_of_row])
    kept, more = len(rows), seen - len(rows)
    print_table(relation.columns, rows, out)
    out.flush()  # the table before the line on stderr
    if more:
        note(
            f"{kept:,} rows shown; ... {more:,} more rows not shown; "
            "use --limit 0 for all, or --format csv/json"
        )
    else:
        note(rows_line(kept))


def rows_line(count: int) -> str:
    return f"{count:,} row" if count == 1 else f"{count:,} rows"


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]], out: BinaryIO) -> None:
    """A box table as wide as its widest cells: a cell is never cut or squeezed (a
    terminal narrower than the table wraps its lines; a copied id stays whole).

    Drawn here, in rich's box style: rich measured and wrapped each cell, 3 s for the
    1,000 rows x 25 columns of ``FROM observations``. A line break in a cell makes the
    row taller; other control characters are shown escaped.
    """
    header = [_cell_lines(name) for name in columns]
    body = [[_cell_lines(value) for value in row] for row in rows]
    widths = [max(cell_len(line) for line in cell) for cell in header]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], *(cell_len(line) for line in cell))

    def rule(left: str, fill: str, cross: str, right: str) -> str:
        return left + cross.join(fill * (w + 2) for w in widths) + right + "\n"

    def lines(cells: list[list[str]], bar: str) -> str:
        text = ""
        for n in range(max((len(c) for c in cells), default=1)):
            parts = (
                (cell[n] if n < len(cell) else "", w) for cell, w in zip(cells, widths, strict=True)
            )
            text += bar + bar.join(f" {t}{' ' * (w - cell_len(t))} " for t, w in parts) + bar + "\n"
        return text

    if not columns:
        return
    chunks = [rule("┏", "━", "┳", "┓"), lines(header, "┃"), rule("┡", "━", "╇", "┩")]
    chunks.extend(lines(row, "│") for row in body)
    chunks.append(rule("└", "─", "┴", "┘"))
    out.write("".join(chunks).encode())


# C0 controls but the line break, and DEL: written as escapes, never sent to a terminal.
_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F] if c != 0x0A}
_CONTROLS[0x09] = "\\t"
_CONTROLS[0x0D] = "\\r"


def _cell_lines(text: str) -> list[str]:
    return text.translate(_CONTROLS).split("\n")
