"""A command imports what it needs: ``yieldstream sql`` loads no collector, HTTP client,
Kafka client, web server or plotting library (bench/cli_start.py times it)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sinks.lake import Store
from sinks.writer import LakeWriter
from tests.sinks import lido_observations
from yieldstream.cli import app

MOMENT = datetime(2026, 3, 12, 12, tzinfo=UTC)
# What the daemon, the API and the plots load; a query needs none of them.
NOT_FOR_SQL = (
    "aiokafka",
    "aiolimiter",
    "fastapi",
    "httpx",
    "ingest",
    "matplotlib",
    "prometheus_client",
    "stamina",
    "uvicorn",
    "yieldstream.app",
    "yieldstream.backfill",
    "yieldstream.pipeline",
    "yieldstream.registry",
)
# ``sys.argv[1:]``: the data directory (or "-" for an import only), then a file for
# the names of the modules loaded.
PROBE = """
import sys
data_dir, out = sys.argv[1:]
from yieldstream.cli import main
if data_dir != "-":
    sys.argv = ["yieldstream", "-d", data_dir, "sql", "SELECT count(*) FROM observations"]
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, exc.code
with open(out, "w") as f:
    f.write("\\n".join(sorted(sys.modules)))
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("start") / "data"
    writer = LakeWriter(Store(data_dir))
    try:
        writer.store(None, "lido", 7, lido_observations("p", 7, MOMENT), [])
    finally:
        writer.close()
    return data_dir


def loaded(data_dir: str, tmp_path: Path) -> tuple[set[str], str]:
    """The modules a fresh interpreter loaded, and what it printed."""
    out = tmp_path / "modules.txt"
    result = subprocess.run(
        [sys.executable, "-c", PROBE, data_dir, str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return set(out.read_text().split()), result.stdout


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in NOT_FOR_SQL or m in NOT_FOR_SQL)


def test_sql_answers_without_loading_the_daemons_libraries(store: Path, tmp_path: Path) -> None:
    modules, printed = loaded(str(store), tmp_path)
    assert "│ 7 " in printed  # the query ran
    assert heavy(modules) == []
    assert {"duckdb", "pydantic"} <= modules  # what it does need
    # A table needs no Arrow (0.15 s to import), and nothing on the way logs: the
    # command leaves structlog unconfigured, so a log line here would go to stdout.
    assert not {"pyarrow", "numpy", "structlog", "transforms"} & modules


def test_importing_the_command_line_loads_no_command(tmp_path: Path) -> None:
    modules, _ = loaded("-", tmp_path)
    assert heavy(modules) == []
    assert not {"pyarrow", "pydantic", "structlog", "sinks.lake"} & modules


def test_help_still_names_the_sources_it_lists_only_when_shown() -> None:
    runner = CliRunner()
    backfill = runner.invoke(app, ["backfill", "--help"], env={"COLUMNS": "300"})
    assert backfill.exit_code == 0, backfill.output
    assert "One of: aave-v3," in backfill.output
    assert "defillama-yields" in backfill.output
    parse = runner.invoke(app, ["parse", "--help"], env={"COLUMNS": "300"})
    assert parse.exit_code == 0, parse.output
    assert "defillama-yields: a saved defillama-protocols response" in parse.output
