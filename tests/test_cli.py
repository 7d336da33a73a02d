"""The command line, end to end: real processes, a loopback server, a real store."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import orjson
import pytest

import yieldstream
from tests.conftest import FIRST_SOURCES, others_disabled
from yieldstream.loopback import Route
from yieldstream.registry import sources as all_sources

SOURCES = FIRST_SOURCES
# Rows the recorded responses hold: 9 pools, 6 protocols, 8 distinct Lido APR points
# (the /last point is also the newest /sma point: one key, stored once).
EXPECTED = {"defillama-yields": 9, "defillama-protocols": 6, "lido": 8}


def yieldstream_cmd(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("yieldstream")
    return subprocess.run(
        [str(exe), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "YIELDSTREAM_LOG_FORMAT": "json", **(env or {})},
        check=False,
    )


def env_for(base_url: str, data_dir: Path) -> dict[str, str]:
    env = {"YIELDSTREAM_DATA_DIR": str(data_dir), **others_disabled(SOURCES)}
    for name in SOURCES:
        key = name.upper().replace("-", "_")
        env[f"YIELDSTREAM_SOURCES__{key}__BASE_URL"] = base_url
        env[f"YIELDSTREAM_SOURCES__{key}__RATE_PER_S"] = "100"
    return env


def counts(data_dir: Path) -> dict[str, int]:
    con = yieldstream.connect(data_dir)
    try:
        rows = con.execute("SELECT source, count(*) FROM observations GROUP BY source").fetchall()
    finally:
        con.close()
    return {str(source): int(n) for source, n in rows}


StartServer = Callable[[Mapping[str, Route] | None], tuple[str, dict[str, int]]]


def test_run_once_stores_every_source_and_a_second_run_adds_nothing(
    loopback: StartServer, tmp_path: Path, steady_hour: None
) -> None:
    url, hits = loopback(None)
    env = env_for(url, tmp_path / "data")

    first = yieldstream_cmd("run", "--once", env=env)
    assert first.returncode == 0, first.stderr
    assert counts(tmp_path / "data") == EXPECTED
    # A line per source, then the totals of all of them.
    assert "defillama-yields: fetched 9 records: 9 observations stored" in first.stderr
    assert "total: fetched 24 records: 23 observations stored" in first.stderr

    second = yieldstream_cmd("run", "--once", env=env)
    assert second.returncode == 0, second.stderr
    assert counts(tmp_path / "data") == EXPECTED
    assert "total: fetched 24 records: 0 observations stored, 24 already stored" in second.stderr
    assert hits["/pools"] == 2
    assert hits["/protocols"] == 2


def test_pools_are_classified_by_their_protocol_category(
    loopback: StartServer, tmp_path: Path
) -> None:
    url, _ = loopback(None)
    result = yieldstream_cmd("run", "--once", env=env_for(url, tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    con = yieldstream.connect(tmp_path / "data")
    rows = {
        protocol: (strategy, guessed)
        for protocol, strategy, guessed in con.execute(
            "SELECT protocol, strategy, strategy_guessed FROM latest_yields"
            " WHERE source = 'defillama-yields'"
        ).fetchall()
    }
    con.close()
    # lido: Liquid Staking; aave-v3: Lending; ether.fi-stake: Liquid Restaking.
    assert rows["lido"] == ("staking", False)
    assert rows["aave-v3"] == ("lending", False)
    assert rows["ether.fi-stake"] == ("staking", False)
    # Not in the /protocols sample: guessed from the pools' own fields (was "other").
    assert rows["maple"] == ("lending", True)  # single-asset USDC credit
    assert rows["sky-lending"] == ("lending", True)  # sUSDS savings
    assert rows["ethena-usde"] == ("lending", True)  # sUSDe
    assert rows["merkl"] == ("farming", True)  # paid in reward tokens only


@pytest.fixture
def stored(loopback: StartServer, tmp_path: Path) -> dict[str, str]:
    url, _ = loopback(None)
    env = env_for(url, tmp_path / "data")
    result = yieldstream_cmd("run", "--once", env=env)
    assert result.returncode == 0, result.stderr
    return env


def test_sql_prints_table_csv_and_json(stored: dict[str, str]) -> None:
    # Products in latest_yields, protocol totals in protocol_tvl.
    query = (
        "SELECT 'product' AS level, source, count(*) AS n FROM latest_yields GROUP BY ALL "
        "UNION ALL SELECT 'protocol', source, count(*) FROM protocol_tvl GROUP BY ALL "
        "ORDER BY level, source"
    )
    table = yieldstream_cmd("sql", query, env=stored)
    assert table.returncode == 0, table.stderr
    assert "defillama-protocols" in table.stdout
    assert "│ 6 " in table.stdout

    as_csv = yieldstream_cmd("sql", query, "--format", "csv", env=stored)
    assert list(csv.reader(io.StringIO(as_csv.stdout))) == [
        ["level", "source", "n"],
        ["product", "defillama-yields", "9"],
        ["product", "lido", "1"],
        ["protocol", "defillama-protocols", "6"],
    ]

    as_json = yieldstream_cmd("sql", query, "-f", "json", env=stored)
    lines = [orjson.loads(line) for line in as_json.stdout.splitlines()]
    assert lines[1] == {"level": "product", "source": "lido", "n": 1}


def test_sql_error_is_one_line(stored: dict[str, str]) -> None:
    result = yieldstream_cmd("sql", "SELECT no_such_column FROM observations", env=stored)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "no_such_column" in result.stderr


def test_sql_on_a_missing_store_says_how_to_fix_it(tmp_path: Path) -> None:
    result = yieldstream_cmd("-d", str(tmp_path / "none"), "sql", "SELECT 1")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "yieldstream run" in result.stderr


def test_sources_shows_last_fetch_rows_and_failures(stored: dict[str, str]) -> None:
    result = yieldstream_cmd("sources", env=stored)
    assert result.returncode == 0, result.stderr
    lines = {
        line.split("│")[1].strip(): line
        for line in result.stdout.splitlines()
        if line.startswith("│")
    }
    assert set(lines) == set(all_sources())  # the disabled ones too
    assert "│ 9 " in lines["defillama-yields"]
    assert "never" not in lines["lido"]
    # Which history endpoint `yieldstream backfill` reads for each.
    assert "/chart/{entity}" in lines["defillama-yields"]
    assert "/protocol/{entity}" in lines["defillama-protocols"]


def test_demo_prints_stored_yields(tmp_path: Path) -> None:
    started = time.monotonic()
    result = yieldstream_cmd("demo", "--data-dir", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 60
    assert "STETH" in result.stdout
    # Every source's recorded responses, side by side: one row per product.
    stored = counts(tmp_path / "demo")
    assert set(stored) == set(all_sources())
    assert stored["defillama-yields"] == 9
    con = yieldstream.connect(tmp_path / "demo")
    try:
        products = con.execute("SELECT count(*) FROM latest_yields").fetchone()
        kinds = set(con.execute("SELECT DISTINCT strategy, venue FROM latest_yields").fetchall())
        real = con.execute(
            "SELECT DISTINCT symbol, inflation_source FROM real_yields "
            "WHERE real_apy_pct IS NOT NULL"
        ).fetchall()
    finally:
        con.close()
    assert products is not None
    assert f"{products[0]} rows" in result.stderr  # protocol totals apart
    assert {("lending", "cefi"), ("staking", "defi"), ("lending", "defi")} <= kinds
    rows = [line.split("│")[1:4] for line in result.stdout.splitlines() if "│" in line]
    shown = {(a.strip(), b.strip(), c.strip()) for a, b, c in rows}
    assert ("lending", "cefi", "okx") in shown  # a CeFi lending row
    assert ("staking", "defi", "rocket-pool") in shown  # a first-party staking row
    assert ("staking", "defi", "defillama-yields") in shown  # beside DefiLlama's
    # The networks' inflation is served too: staking shows its real yield.
    assert {("STETH", "ethereum-issuance"), ("JITOSOL", "solana-inflation")} <= set(real)
    assert "real_apy_pct" in result.stdout


@pytest.mark.parametrize(
    ("env", "args", "names"),
    [
        (
            {"YIELDSTREAM_SOURCES__LIDO__INTERVAL_S": "-1"},
            ["sources"],
            "YIELDSTREAM_SOURCES__LIDO__INTERVAL_S",
        ),
        ({"YIELDSTREAM_BATCH_SIZE": "many"}, ["sources"], "batch_size"),
        ({"YIELDSTREAM_SOURCES__NOPE__BASE_URL": "http://x"}, ["sources"], "'nope'"),
        (
            {},
            ["run", "--once", "--source", "nope"],
            "unknown source 'nope'; known sources: aave-v3, ",
        ),
        ({}, ["--log-level", "loud", "sources"], "log_level"),
    ],
)
def test_bad_settings_give_a_one_line_error_naming_the_key(
    tmp_path: Path, env: dict[str, str], args: list[str], names: str
) -> None:
    result = yieldstream_cmd(*args, env={"YIELDSTREAM_DATA_DIR": str(tmp_path), **env})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert names in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_key_in_toml_is_named(tmp_path: Path) -> None:
    config = tmp_path / "yieldstream.toml"
    config.write_text('data_dir = "x"\n\n[sources.lido]\ninterval = 60\n')
    result = yieldstream_cmd("sources", env={"YIELDSTREAM_CONFIG": str(config)})
    assert result.returncode == 2
    assert "sources.lido.interval" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_toml_settings_apply(tmp_path: Path) -> None:
    config = tmp_path / "yieldstream.toml"
    config.write_text("[sources.lido]\ninterval_s = 600\nenabled = false\n")
    result = yieldstream_cmd(
        "sources", env={"YIELDSTREAM_CONFIG": str(config), "YIELDSTREAM_DATA_DIR": str(tmp_path)}
    )
    assert result.returncode == 0, result.stderr
    lido = next(line for line in result.stdout.splitlines() if "│ lido " in line)
    assert "600s" in lido
    assert "│ no " in lido


@pytest.mark.parametrize("command", ["run", "sql", "parse", "sources", "demo", "replay"])
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = yieldstream_cmd(command, "--help")
    assert result.returncode == 0
    assert "Example: yieldstream" in result.stdout


def test_unusable_data_dir_is_a_one_line_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    result = yieldstream_cmd("-d", str(not_a_dir), "run", "--once")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"cannot use {not_a_dir} as the data directory" in result.stderr
