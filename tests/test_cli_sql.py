"""``yieldstream sql`` end to end: a real process on a small real store."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import termios
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from sinks.lake import Store
from sinks.writer import LakeWriter
from tests.sinks import lido_observations, yieldstream_exe
from tests.sinks import sql_cmd as sql

MOMENT = datetime(2026, 3, 12, 12, tzinfo=UTC)
LONG_ID = "747c1d2a-c668-4682-b9f9-296708a3dd90:ethereum:0x" + "ab" * 20
WIDE = f"SELECT '{LONG_ID}' AS pool_id, repeat('x', 120) AS wide, 3.1 AS apy_pct"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("sql") / "data"
    writer = LakeWriter(Store(data_dir))
    try:
        writer.store(None, "lido", 30, lido_observations("p", 30, MOMENT), [])
    finally:
        writer.close()
    return data_dir


def test_the_table_shows_the_limit_and_says_how_many_rows_were_left_out(store: Path) -> None:
    result = sql(store, "SELECT range AS n FROM range(12345)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n│ ") == 1_000
    assert result.stderr.strip() == (
        "1,000 rows shown; ... 11,345 more rows not shown; use --limit 0 for all, "
        "or --format csv/json"
    )
    limited = sql(store, "FROM observations ORDER BY pool_id", "--limit", "5")
    assert limited.stdout.count("\n│ ") == 5
    assert "25 more rows not shown" in limited.stderr
    everything = sql(store, "FROM observations", "--limit", "0")
    assert everything.stdout.count("\n│ ") == 30
    assert everything.stderr.strip() == "30 rows"


def test_csv_and_json_print_every_row_with_newline_line_ends(store: Path) -> None:
    as_csv = sql(store, "SELECT pool_id, ['0xa', '0xb'] AS tokens FROM observations", "-f", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    assert "\r" not in as_csv.stdout
    lines = as_csv.stdout.splitlines()
    assert lines[0] == "pool_id,tokens"
    assert lines[1] == 'p-0,"[""0xa"",""0xb""]"'
    assert len(lines) == 31
    as_json = sql(store, "SELECT pool_id, 'nan'::DOUBLE AS x FROM observations", "-f", "json")
    assert [orjson.loads(line)["x"] for line in as_json.stdout.splitlines()] == ["NaN"] * 30
    assert sql(store, "FROM observations", "-f", "json", "--limit", "2").stdout.count("\n") == 2


def test_several_statements_print_in_turn_until_the_first_error(store: Path) -> None:
    both = sql(store, "SELECT 1 AS a; SELECT 2 AS b;", "-f", "csv")
    assert both.returncode == 0, both.stderr
    assert both.stdout == "a\n1\nb\n2\n"
    failed = sql(store, "SELECT 1 AS a; SELECT no_such_column FROM observations; SELECT 3 AS c")
    assert failed.returncode == 1
    assert "│ 1 │" in failed.stdout
    assert "│ 3 │" not in failed.stdout
    error = failed.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ")
    assert "no_such_column" in error


@pytest.mark.parametrize("query", ["", "  ", ";", " ; -- only a comment", "/* nothing */"])
def test_an_empty_query_is_a_one_line_error(store: Path, query: str) -> None:
    result = sql(store, query)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: the query is empty: give at least one SQL statement"


def test_a_long_id_is_whole_when_piped(store: Path) -> None:
    result = sql(store, WIDE)
    assert result.returncode == 0, result.stderr
    assert f"│ {LONG_ID} │" in result.stdout
    assert "…" not in result.stdout


def test_a_long_id_is_whole_in_a_narrow_terminal(store: Path) -> None:
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
    try:
        proc = subprocess.Popen(
            [yieldstream_exe(), "-d", str(store), "sql", WIDE],
            stdout=follower,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "COLUMNS": "40"},
        )
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            output += chunk
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(leader)
    text = output.decode()
    assert f"│ {LONG_ID} │" in text
    assert "…" not in text


def test_ids_that_look_like_emoji_codes_are_printed_as_they_are(store: Path) -> None:
    result = sql(store, "SELECT 'morpho:base:x:smile:' AS product_id")
    assert result.returncode == 0, result.stderr
    assert "morpho:base:x:smile:" in result.stdout
    failed = sql(store, 'SELECT * FROM "nope:x:tables"')
    assert failed.returncode != 0
    assert "nope:x:tables" in failed.stderr
