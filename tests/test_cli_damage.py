"""A broken store from the command line: one line naming what is broken, never a
traceback, never a new store over old data (real processes)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.sinks.test_damage import _filled
from tests.test_cli import StartServer, env_for, yieldstream_cmd

COMMANDS = {
    "run": ("run", "--once"),
    "sources": ("sources",),
    "replay": ("replay",),
    "sql": ("sql", "SELECT count(*) FROM observations"),
    "backfill": ("backfill", "lido"),
}


def _truncate_data_files(data_dir: Path) -> None:
    for path in (data_dir / "lake").rglob("*.parquet"):
        os.truncate(path, 100)


def _lose_catalog(data_dir: Path) -> None:
    for path in data_dir.glob("catalog.sqlite*"):
        path.unlink()


def _empty_catalog(data_dir: Path) -> None:
    _lose_catalog(data_dir)
    (data_dir / "catalog.sqlite").write_bytes(b"")


def _garbage_catalog(data_dir: Path) -> None:
    _lose_catalog(data_dir)
    (data_dir / "catalog.sqlite").write_bytes(os.urandom(8192))


DAMAGE: dict[str, tuple[Callable[[Path], None], int, str]] = {
    "missing catalog": (_lose_catalog, 2, "catalog.sqlite is missing, but "),
    "empty catalog": (_empty_catalog, 2, "catalog.sqlite is empty, but "),
    "garbage catalog": (_garbage_catalog, 2, "catalog.sqlite is not a SQLite database"),
    "truncated data files": (_truncate_data_files, 1, "is damaged ("),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_broken_store_is_one_line_from_every_command(
    loopback: StartServer, tmp_path: Path, command: str, damage: str
) -> None:
    data_dir = tmp_path / "data"
    _filled(data_dir)
    harm, code, said = DAMAGE[damage]
    harm(data_dir)
    files = sorted(p.name for p in (data_dir / "lake").rglob("*.parquet"))
    url, _ = loopback(None)

    result = yieldstream_cmd(*COMMANDS[command], env=env_for(url, data_dir))

    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == code, result.stderr
    assert last.startswith("error: ") or last.startswith("error:"), result.stderr
    assert said in last, last
    if "catalog" in damage:
        assert "restore" in last
    # Every data file is still there, and no catalog was created in the lost one's place.
    assert sorted(p.name for p in (data_dir / "lake").rglob("*.parquet")) == files
    if damage == "missing catalog":
        assert not (data_dir / "catalog.sqlite").exists()


def test_the_demo_refuses_a_data_dir_whose_catalog_is_lost(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _filled(data_dir)
    _lose_catalog(data_dir)
    result = yieldstream_cmd("demo", "--data-dir", str(data_dir))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "catalog.sqlite is missing, but " in result.stderr.strip().splitlines()[-1]
    assert not (data_dir / "catalog.sqlite").exists()
