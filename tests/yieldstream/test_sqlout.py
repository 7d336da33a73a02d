"""``yieldstream sql`` output formats on the real engine: what each value becomes."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import duckdb
import pytest

from sinks.readonly import statements
from yieldstream.sqlout import Format, print_table, write_results

LONG_ID = "747c1d2a-c668-4682-b9f9-296708a3dd90:ethereum:0x" + "ab" * 20


def run(query: str, fmt: Format, limit: int | None = None) -> tuple[str, list[str]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    out, notes = io.BytesIO(), []
    try:
        write_results(con, statements(query), fmt, out, notes.append, limit)
    finally:
        con.close()
    return out.getvalue().decode(), notes


def test_csv_has_newline_endings_lists_as_json_null_as_empty_and_iso_times() -> None:
    text, _ = run(
        "SELECT ['0xa', '0xb'] AS tokens, NULL::VARCHAR AS nothing, '' AS empty, "
        "TIMESTAMPTZ '2026-01-02 03:04:05.5+00' AS at, TIMESTAMP '2026-01-02 03:04:05' AS naive, "
        "DATE '2026-01-02' AS day, 'a \"q\", b' AS quoted, 1.5::DOUBLE AS x, 'nan'::DOUBLE AS n",
        Format.csv,
    )
    assert "\r" not in text
    assert text.endswith("\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["tokens", "nothing", "empty", "at", "naive", "day", "quoted", "x", "n"]
    assert rows[1] == [
        '["0xa","0xb"]',
        "",
        "",
        "2026-01-02T03:04:05.5+00",
        "2026-01-02T03:04:05",
        "2026-01-02",
        'a "q", b',
        "1.5",
        "NaN",
    ]
    assert json.loads(rows[1][0]) == ["0xa", "0xb"]
    assert datetime.fromisoformat(rows[1][3]) == datetime(2026, 1, 2, 3, 4, 5, 500000, UTC)
    assert text.splitlines()[1].startswith('"[""0xa"",""0xb""]",,"",')  # NULL, then ''


def test_json_lines_round_trip_every_kind_of_value() -> None:
    text, _ = run(
        "SELECT 'nan'::DOUBLE AS nan, 'inf'::DOUBLE AS inf, '-inf'::DOUBLE AS ninf, "
        "NULL::DOUBLE AS null_double, 0.1::DOUBLE AS tenth, 0.1::FLOAT AS float_tenth, "
        "'\\x00\\xff'::BLOB AS blob, INTERVAL 1 DAY + INTERVAL 2 HOUR AS iv, "
        "INTERVAL '14 months 30 minutes 1.5 seconds' AS iv2, INTERVAL 0 SECOND AS zero, "
        "-INTERVAL 1 DAY AS negative, INTERVAL 1 MICROSECOND AS tiny, "
        "TIMESTAMPTZ '2026-01-02 03:04:05+00' AS at, TIME '12:30:00' AS clock, "
        "123456789012345678.123456789::DECIMAL(38,9) AS exact, 1.10::DECIMAL(5,2) AS price, "
        "12345678901234567890123::HUGEINT AS big, "
        "{'apy': 'nan'::DOUBLE, 'tokens': ['0xa', NULL]} AS nested, "
        "MAP {'k': 1.5::DOUBLE} AS m, [[1, 2], [3]] AS lists, '{\"raw\": [1]}'::JSON AS raw, "
        "true AS yes, uuid '00000000-0000-0000-0000-000000000001' AS id",
        Format.json,
    )
    line = text.splitlines()[0]
    row: dict[str, Any] = json.loads(line, parse_float=Decimal)
    assert row["nan"] == "NaN"
    assert row["inf"] == "Infinity"
    assert row["ninf"] == "-Infinity"
    assert row["null_double"] is None  # null means NULL, never NaN
    assert row["tenth"] == Decimal("0.1")
    assert row["float_tenth"] == Decimal("0.1")
    assert base64.b64decode(row["blob"]) == b"\x00\xff"
    assert row["iv"] == "P1DT2H"
    assert row["iv2"] == "P1Y2MT30M1.5S"
    assert row["zero"] == "PT0S"
    assert row["negative"] == "P-1D"
    assert row["tiny"] == "PT0.000001S"
    assert datetime.fromisoformat(row["at"]) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert row["clock"] == "12:30:00"
    assert Decimal(row["exact"]) == Decimal("123456789012345678.123456789")
    assert row["price"] == "1.10"
    assert json.loads(line)["big"] == 12345678901234567890123  # exact: Python ints
    assert row["nested"] == {"apy": "NaN", "tokens": ["0xa", None]}
    assert row["m"] == {"k": Decimal("1.5")}
    assert row["lists"] == [[1, 2], [3]]
    assert row["raw"] == {"raw": [1]}
    assert row["yes"] is True
    assert row["id"] == "00000000-0000-0000-0000-000000000001"


def test_several_statements_print_one_result_after_the_other() -> None:
    text, notes = run(
        "SELECT 1 AS a; SET VARIABLE x = 2; SELECT getvariable('x') AS b;", Format.json
    )
    assert text == '{"a":1}\n{"b":2}\n'
    text, _ = run("SELECT 1 AS a; SELECT 2 AS b", Format.csv)
    assert text == "a\n1\nb\n2\n"
    table, notes = run("SELECT 1 AS a; SELECT 2 AS b", Format.table)
    assert "│ 1 │" in table
    assert "│ 2 │" in table
    assert notes == ["1 row", "1 row"]


@pytest.mark.parametrize("query", ["", "   ", ";;", " -- nothing\n", "/* x */ ;"])
def test_an_empty_query_is_an_error(query: str) -> None:
    with pytest.raises(duckdb.Error, match="empty"):
        statements(query)


def test_the_table_shows_the_limit_and_counts_the_rest() -> None:
    table, notes = run("SELECT range AS n FROM range(12345)", Format.table, limit=10)
    assert table.count("│") == 10 * 2
    assert notes == [
        "10 rows shown; ... 12,335 more rows not shown; use --limit 0 for all, or --format csv/json"
    ]
    table, notes = run("SELECT range AS n FROM range(1500)", Format.table)
    assert notes[0].startswith("1,000 rows shown; ... 500 more rows")
    _, notes = run("SELECT range AS n FROM range(1500)", Format.table, limit=0)
    assert notes == ["1,500 rows"]


def test_the_table_shows_the_first_rows_in_the_query_order_as_duckdb_writes_them() -> None:
    table, notes = run(
        "SELECT n, CASE WHEN n % 2 = 0 THEN NULL ELSE TIMESTAMPTZ '2026-01-01 12:00:00+00' "
        "+ to_seconds(n) END AS at, [n, n + 1] AS pair, 1.10::DECIMAL(5, 2) AS d "
        "FROM range(100000) t(n) ORDER BY n DESC",
        Format.table,
        limit=3,
    )
    lines = [line for line in table.splitlines() if line.startswith("│")]
    assert [line.split("│")[1:5] for line in lines] == [
        [" 99999 ", " 2026-01-02 15:46:39+00 ", " [99999, 100000] ", " 1.10 "],
        [" 99998 ", "                        ", " [99998, 99999]  ", " 1.10 "],
        [" 99997 ", " 2026-01-02 15:46:37+00 ", " [99997, 99998]  ", " 1.10 "],
    ]
    assert notes == [
        "3 rows shown; ... 99,997 more rows not shown; use --limit 0 for all, or --format csv/json"
    ]


def test_csv_and_json_stream_every_row_unless_limited() -> None:
    text, _ = run("SELECT range AS n FROM range(200000)", Format.csv)
    assert text.count("\n") == 200_001
    text, _ = run("SELECT range AS n FROM range(200000)", Format.json, limit=3)
    assert text == '{"n":0}\n{"n":1}\n{"n":2}\n'


def test_a_long_id_is_never_cut_and_control_characters_are_escaped() -> None:
    out = io.BytesIO()
    print_table(["pool_id", "note"], [[LONG_ID, "x " * 60], ["p", "two\nlines\x1b[31m"]], out)
    text = out.getvalue().decode()
    assert f"│ {LONG_ID} │" in text
    assert "…" not in text
    assert "\x1b" not in text
    assert "│ p" + " " * (len(LONG_ID) - 1) + " │ two " in text
    assert "lines\\x1b[31m" in text
