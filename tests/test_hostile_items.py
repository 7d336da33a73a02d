"""Hostile items in one /pools response: each bad item is one rejection, the rest stored.

The whole pipeline runs once against the loopback server (as in test_failures.py),
with the recorded /pools body (7 pools) given one hostile item. Every item must end
as exactly one observation or one rejection, and the run's summary must agree with
the store.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from tests.test_cli_parse import last_line, parse_cmd
from tests.test_failures import POOL_IDS, POOLS_BODY, YIELDS, Run, RunWith, run_with
from yieldstream.items import MAX_DEPTH
from yieldstream.loopback import Reply

__all__ = ["run_with"]  # the fixture, shared with test_failures.py

ITEMS = json.loads(POOLS_BODY)["data"]
DEEP = b"[" * 1000 + b"]" * 1000


def body_with(first: bytes | None = None, *, nan: bool = False) -> bytes:
    """The recorded /pools body with ``first`` (JSON text) as its first item."""
    items = [orjson.dumps(item) for item in ITEMS]
    if nan:  # a NaN literal: the lenient parser reads the response
        items[-1] = items[-1][:-1] + b',"apyMean30d":NaN}'
    if first is not None:
        items.insert(0, first)
    return b'{"status":"success","data":[' + b",".join(items) + b"]}"


def deep_item() -> bytes:
    return orjson.dumps({**ITEMS[0], "pool": "deep-one"})[:-1] + b',"x":' + DEEP + b"}"


def accounted(run: Run) -> tuple[int, int, int]:
    """(items fetched, observations stored, rejections stored) of /pools."""
    ((rows,),) = run.query("SELECT count(*) FROM observations WHERE source = ?", [YIELDS])
    ((rejected,),) = run.query("SELECT count(*) FROM rejections WHERE source = ?", [YIELDS])
    return run.stats.sources[YIELDS].fetched, rows, rejected


def assert_summary_matches_store(run: Run) -> None:
    mine = run.stats.sources[YIELDS]
    fetched, rows, rejected = accounted(run)
    assert mine.stored + mine.duplicates + mine.rejected == fetched
    assert (mine.stored, mine.rejected) == (rows, rejected)
    assert rows + rejected == fetched


@pytest.mark.parametrize("nan", [False, True], ids=["strict", "lenient"])
async def test_an_item_nested_1000_levels_first_is_one_rejection(
    run_with: RunWith, nan: bool
) -> None:
    run = await run_with({"/pools": Reply(body=body_with(deep_item(), nan=nan))})

    assert accounted(run) == (10, 9 - nan, 1 + nan)  # the NaN item is rejected too
    assert run.fetches()[YIELDS][:2] == (True, 10)
    [rejection] = [r for r in run.rejections() if r["native_id"] == "#0"]
    assert (rejection["stage"], rejection["native_id"]) == ("decode", "#0")
    assert rejection["reason"] == f"item nested deeper than {MAX_DEPTH} levels"
    assert rejection["payload"].endswith(b',"x":' + DEEP + b"}")
    ((archived,),) = run.query("SELECT count(*) FROM raw_records WHERE source = ?", [YIELDS])
    assert archived == 9
    assert_summary_matches_store(run)
    logged = [e for e in run.events("record_rejected") if e["native_id"] == "#0"]
    assert [e["stage"] for e in logged] == ["decode"]


async def test_an_item_whose_id_is_a_lone_surrogate_is_a_rejection_not_an_archive_error(
    run_with: RunWith,
) -> None:
    bad = orjson.dumps({**ITEMS[0], "pool": "PLACEHOLDER"}).replace(b"PLACEHOLDER", b"\\udfff")
    run = await run_with({"/pools": Reply(body=body_with(bad))})

    assert accounted(run) == (10, 9, 1)
    [rejection] = run.rejections()
    assert rejection["stage"] == "decode"
    assert "lone surrogate" in rejection["reason"]
    assert b'"pool":"\\udfff"' in rejection["payload"]  # kept as bytes, the escape intact
    assert_summary_matches_store(run)


async def test_items_sharing_an_id_keep_the_first_and_reject_the_others(
    run_with: RunWith,
) -> None:
    first = ITEMS[0]
    again = orjson.dumps(first)
    changed = orjson.dumps({**first, "tvlUsd": 1.0})
    items = [orjson.dumps(item) for item in ITEMS] + [again, changed]
    body = b'{"status":"success","data":[' + b",".join(items) + b"]}"

    run = await run_with({"/pools": Reply(body=body)})

    assert accounted(run) == (11, 9, 2)
    ((tvl,),) = run.query("SELECT tvl_usd FROM observations WHERE pool_id = ?", [first["pool"]])
    assert tvl == first["tvlUsd"]  # the first is kept
    reasons = sorted(r["reason"] for r in run.rejections())
    assert all(r.startswith("duplicate id in one response") for r in reasons)
    assert any("with the same values" in r for r in reasons)
    assert any("with other values" in r and str(first["tvlUsd"]) in r for r in reasons)
    assert_summary_matches_store(run)
    assert POOL_IDS[0] == first["pool"]


def test_parse_rejects_the_deep_item_and_prints_the_others(tmp_path: Path) -> None:
    saved = tmp_path / "pools.json"
    saved.write_bytes(body_with(deep_item()))
    done = parse_cmd(tmp_path, "--source", "defillama-yields", saved)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert f"rejected #0: [decode] item nested deeper than {MAX_DEPTH} levels" in done.stderr
    assert last_line(done.stderr) == "10 records: 9 observations, 1 rejections"
