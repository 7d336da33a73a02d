"""Exit codes and messages a script can trust: real processes, as a script runs them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import yieldstream
from tests.test_cli import SOURCES, StartServer, env_for, yieldstream_cmd
from yieldstream.loopback import Reply, recorded_routes


def fast_retries(env: dict[str, str]) -> dict[str, str]:
    for name in SOURCES:
        key = f"YIELDSTREAM_SOURCES__{name.upper().replace('-', '_')}"
        env.update({f"{key}__WAIT_INITIAL_S": "0.01", f"{key}__WAIT_MAX_S": "0.05"})
    return env


def summary(stderr: str) -> dict[str, str]:
    """The summary lines of ``run --once``, by source (and ``total``)."""
    lines = (line.partition(": ") for line in stderr.splitlines())
    return {name: rest for name, _, rest in lines if name in {*SOURCES, "total"}}


def test_run_once_exits_1_when_a_source_failed_every_fetch(
    loopback: StartServer, tmp_path: Path
) -> None:
    url, _ = loopback({**recorded_routes(), "/pools": Reply(404, b'{"error": "gone"}')})
    result = yieldstream_cmd("run", "--once", env=fast_retries(env_for(url, tmp_path / "data")))
    assert result.returncode == 1, result.stderr
    lines = summary(result.stderr)
    assert list(lines) == [*sorted(SOURCES), "total"], result.stderr
    assert lines["defillama-yields"] == (
        "fetched 0 records: 0 observations stored, 0 already stored, 0 rejected, "
        f"1 failed fetches; FAILED: HTTP 404 from {url}/pools"
    )
    assert lines["lido"].startswith("fetched 9 records: 8 observations stored,")
    assert "FAILED" not in lines["lido"] + lines["defillama-protocols"]
    assert lines["total"].startswith("fetched 15 records: 14 observations stored,")
    assert lines["total"].endswith(", 1 failed fetches")


def test_run_once_exits_0_and_sums_up_each_source(loopback: StartServer, tmp_path: Path) -> None:
    url, _ = loopback(None)
    result = yieldstream_cmd("run", "--once", env=env_for(url, tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    lines = summary(result.stderr)
    assert lines["defillama-yields"].startswith("fetched 9 records: 9 observations stored, ")
    assert lines["defillama-protocols"].startswith("fetched 6 records: 6 observations stored, ")
    assert lines["total"].startswith("fetched 24 records: 23 observations stored, ")
    assert "FAILED" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "named"),
    [
        ("YIELDSTREAM_DATA_DIRR", "did you mean data_dir?"),
        ("YIELDSTREAM_BATCHSIZE", "did you mean batch_size?"),
        ("YIELDSTREAM_KAFKA__SASL_PASSWRD", "did you mean kafka.sasl_password?"),
        ("YIELDSTREAM_SASL_PASSWORD", "did you mean kafka.sasl_password?"),
        ("YIELDSTREAM_KAFKAA__PARTITIONS", "did you mean kafka.partitions?"),
        ("YIELDSTREAM_SOURCES__LIDO__INTERVAL", "did you mean sources.lido.interval_s?"),
        ("YIELDSTREAM_NOTHING_LIKE_IT", "no such setting;"),
    ],
)
def test_a_misspelt_variable_is_a_one_line_error_naming_the_closest_setting(
    tmp_path: Path, variable: str, named: str
) -> None:
    secret = "hunter2-s3cret"
    result = yieldstream_cmd(
        "sources", env={"YIELDSTREAM_DATA_DIR": str(tmp_path), variable: secret}
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert variable in result.stderr
    assert named in result.stderr
    assert secret not in result.stderr


def test_variables_that_are_not_settings_are_left_alone(tmp_path: Path) -> None:
    config = tmp_path / "yieldstream.toml"
    config.write_text("batch_size = 10\n")
    env = {
        "YIELDSTREAM_CONFIG": str(config),
        "YIELDSTREAM_TEST_ANYTHING": "1",
        "YIELDSTREAM_DATA_DIR": str(tmp_path),
    }
    result = yieldstream_cmd("sources", env=env)
    assert result.returncode == 0, result.stderr


def test_a_misspelt_key_in_toml_names_the_closest_too(tmp_path: Path) -> None:
    config = tmp_path / "yieldstream.toml"
    config.write_text('data_dirr = "x"\n')
    result = yieldstream_cmd("sources", env={"YIELDSTREAM_CONFIG": str(config)})
    assert result.returncode == 2
    assert "setting data_dirr: no such setting (did you mean data_dir?)" in result.stderr


HELP_DEFAULTS = {
    (): [
        "[default: ./yieldstream-data]",
        "[default: auto]",
        "[default: info]",
        "[default: SQLite file in the data dir]",
        "--version",
    ],
    ("run",): ["[default: every enabled source]", "[default: none: embedded, no Kafka]"],
    ("collect",): [
        "[default: every enabled source]",
        "[default: KAFKA_BOOTSTRAP_SERVERS or kafka.bootstrap_servers]",
    ],
    ("transform",): ["[default: KAFKA_BOOTSTRAP_SERVERS or kafka.bootstrap_servers]"],
    ("sink",): ["[default: KAFKA_BOOTSTRAP_SERVERS or kafka.bootstrap_servers]"],
    ("sql",): ["[default: table]"],
    ("backfill",): [
        "[default: all the source has]",
        "[default: the end of today]",
        "[default: every entity listed]",
    ],
    ("replay",): [
        "[default: every source]",
        "[default: the first]",
        "[default: the last]",
        "[default: at --since, else at the beginning]",
        "[default: KAFKA_BOOTSTRAP_SERVERS or kafka.bootstrap_servers]",
    ],
    ("demo",): ["[default: a temporary one, removed]"],
}


@pytest.mark.parametrize(("command", "defaults"), HELP_DEFAULTS.items(), ids=" ".join)
def test_help_shows_every_default(command: tuple[str, ...], defaults: list[str]) -> None:
    result = yieldstream_cmd(*command, "--help", env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    # Read as a person does: the words, whatever the table's borders and line breaks.
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stdout).split())
    for default in defaults:
        assert default in text, f"{default!r} missing from:\n{result.stdout}"


def test_the_data_dir_default_shows_literally_in_the_main_help() -> None:
    result = yieldstream_cmd("--help")
    assert "Store directory [default: ./yieldstream-data]" in result.stdout


def test_version_prints_the_version() -> None:
    result = yieldstream_cmd("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"yieldstream {yieldstream.__version__}\n"


@pytest.mark.parametrize("only", ["", ",", " , "])
def test_backfill_only_naming_nothing_is_a_one_line_error(tmp_path: Path, only: str) -> None:
    result = yieldstream_cmd("-d", str(tmp_path / "data"), "backfill", "lido", "--only", only)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "--only names no entity" in result.stderr
    assert not (tmp_path / "data").exists()  # nothing was fetched or stored


def test_sources_with_a_file_as_data_dir_is_a_one_line_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    result = yieldstream_cmd("-d", str(not_a_dir), "sources")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"cannot use {not_a_dir} as the data directory" in result.stderr


def test_sources_before_any_run_lists_them(tmp_path: Path) -> None:
    result = yieldstream_cmd("-d", str(tmp_path / "not-yet"), "sources")
    assert result.returncode == 0, result.stderr
    assert "never" in result.stdout
