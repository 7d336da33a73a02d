"""``yieldstream parse``: a saved response -> observations on stdout, rejections on stderr.

Run as a real process (the installed ``yieldstream`` script), so that exit codes,
the stdout/stderr split and rich's output are what a user gets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES
from tests.transforms import body_of, fixture_files
from transforms import floor_hour

POOLS = [f for f in fixture_files("defillama-yields") if f.name.startswith("pools-")]
PROTOCOLS = FIXTURES / "defillama-protocols" / "protocols-rows-onchain-analytics-first6.json"


WITHOUT_REFERENCE = (
    "warning: no --reference given: strategies are guessed from each pool's own fields "
    "(strategy_guessed = true); pass a saved /protocols (defillama-protocols) response"
)
CHART = FIXTURES / "defillama-yields" / "chart-d829b642-from-cn-doc.json"
LIDO_POOL = "747c1d2a-c668-4682-b9f9-296708a3dd90"  # in pools-2records-from-cn-doc.json


def parse_cmd(tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("yieldstream")
    # No settings leak in: no YIELDSTREAM_* variables, no ./yieldstream.toml in tmp_path.
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIELDSTREAM_")}
    env["YIELDSTREAM_LOG_FORMAT"] = "json"
    return subprocess.run(
        [str(exe), "parse", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=False,
    )


def observations(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("pools", POOLS, ids=[f.name for f in POOLS])
def test_every_recorded_pools_response_becomes_observations(tmp_path: Path, pools: Path) -> None:
    before = floor_hour(datetime.now(UTC))
    result = parse_cmd(tmp_path, "--source", "defillama-yields", pools)
    after = floor_hour(datetime.now(UTC))

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    items = body_of("defillama-yields", pools.name)["data"]
    got = observations(result.stdout)
    assert [o["pool_id"] for o in got] == [i["pool"] for i in items]
    for obs, item in zip(got, items, strict=True):
        assert obs["source"] == "defillama-yields"
        assert (obs["apy_pct"], obs["apy_base_pct"], obs["apy_reward_pct"]) == (
            item["apy"],
            item["apyBase"],
            item["apyReward"],
        )
        assert obs["tvl_usd"] == item["tvlUsd"]
        # No --reference given: no category, a guess from the pool's own fields.
        assert (obs["category"], obs["strategy_guessed"]) == (None, True)
        assert obs["strategy"] in {"staking", "lending", "farming"}
        observed_at = datetime.fromisoformat(obs["observed_at"])
        assert observed_at in {before, after}
    n = len(items)
    assert result.stderr.strip().splitlines() == [
        WITHOUT_REFERENCE,
        f"{n} records: {n} observations, 0 rejections",
    ]


def test_reference_categories_classify_pools_by_their_protocol(tmp_path: Path) -> None:
    pools = tmp_path / "pools.json"
    data = [i for f in POOLS for i in body_of("defillama-yields", f.name)["data"]]
    pools.write_text(json.dumps({"status": "success", "data": data}))

    result = parse_cmd(tmp_path, "-s", "defillama-yields", pools, "--reference", PROTOCOLS)

    assert result.returncode == 0, result.stderr
    by_protocol = {o["protocol"]: o for o in observations(result.stdout)}
    assert (by_protocol["lido"]["strategy"], by_protocol["lido"]["category"]) == (
        "staking",
        "Liquid Staking",
    )
    assert by_protocol["ether.fi-stake"]["strategy"] == "staking"  # Liquid Restaking
    assert by_protocol["aave-v3"]["strategy"] == "lending"
    assert not any(o["strategy_guessed"] for o in by_protocol.values() if o["category"])
    # maple is not in the recorded /protocols rows: a guess from its fields (single USDC).
    maple = by_protocol["maple"]
    assert (maple["strategy"], maple["category"], maple["strategy_guessed"]) == (
        "lending",
        None,
        True,
    )
    assert result.stderr.strip() == "9 records: 9 observations, 0 rejections"  # no warning


def test_unknown_source_is_a_one_line_error(tmp_path: Path) -> None:
    result = parse_cmd(tmp_path, "--source", "nope", POOLS[0])
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "unknown source 'nope'" in result.stderr
    assert "known sources: aave-v3, " in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("source", "fixture", "says"),
    [
        (
            "defillama-yields",
            FIXTURES / "lido" / "apr-last-from-mcp-test.json",
            "expected a list at $.data",
        ),
        ("defillama-yields", PROTOCOLS, "expected an object with 'data' at $"),
        ("lido", POOLS[0], "expected an object at $.data"),
        ("defillama-protocols", POOLS[0], "expected a list at $"),
    ],
)
def test_a_response_of_another_endpoint_is_a_clear_error(
    tmp_path: Path, source: str, fixture: Path, says: str
) -> None:
    result = parse_cmd(tmp_path, "--source", source, fixture)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"is not a {source} response" in result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", "expected JSON"),
        ('{"status": "success", "data": [{"pool": "a"', "malformed or truncated JSON"),
        ("", "empty JSON"),
    ],
)
def test_a_file_that_is_no_json_is_a_clear_error(tmp_path: Path, content: str, says: str) -> None:
    saved = tmp_path / "saved.json"
    saved.write_text(content)
    result = parse_cmd(tmp_path, "--source", "defillama-yields", saved)
    assert result.returncode == 1
    assert result.stdout == ""
    assert says in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = parse_cmd(tmp_path, "--source", "lido", tmp_path / "nowhere.json")
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def bad_items_file(tmp_path: Path) -> Path:
    """Real /pools items, five of them broken in one way each, as a live-shaped response."""
    real = {i["pool"]: dict(i) for f in POOLS for i in body_of("defillama-yields", f.name)["data"]}
    missing_pool = real["747c1d2a-c668-4682-b9f9-296708a3dd90"]
    del missing_pool["pool"]
    items = [
        real["43641cf5-a92e-416b-bce9-27113d3c0db6"],  # good: maple
        {**real["d8c4eff5-c8a9-46fc-a888-057c4c668e72"], "tvlUsd": float("nan")},
        {**real["a87bbade-7728-43d9-bc23-2538812be3cc"], "apy": "0.60403"},
        {**real["29932dea-cd71-44c3-95bd-3e1525f4e3dd"], "apy": 2e6},
        {**real["66985a81-9c51-46ca-9977-42b4fe7bc6df"], "tvlUsd": -5698745714},
        missing_pool,
        real["46bd2bdf-6d92-4066-b482-e885ee172264"],  # good: ether.fi weETH
    ]
    path = tmp_path / "pools-with-bad-items.json"
    path.write_text(json.dumps({"status": "success", "data": items}))  # writes NaN as NaN
    assert '"tvlUsd": NaN' in path.read_text()
    return path


def test_bad_items_are_rejected_with_reasons_and_good_items_pass(tmp_path: Path) -> None:
    result = parse_cmd(tmp_path, "--source", "defillama-yields", bad_items_file(tmp_path))

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert [o["pool_id"] for o in observations(result.stdout)] == [
        "43641cf5-a92e-416b-bce9-27113d3c0db6",
        "46bd2bdf-6d92-4066-b482-e885ee172264",
    ]
    lines = result.stderr.strip().splitlines()
    rejected = {line.split(":", 1)[0]: line for line in lines if line.startswith("rejected ")}
    expected = {
        "rejected d8c4eff5-c8a9-46fc-a888-057c4c668e72": "not a finite number: nan at `$.tvlUsd`",
        "rejected a87bbade-7728-43d9-bc23-2538812be3cc": (
            "Expected `float | null`, got `str` - at `$.apy`"
        ),
        "rejected 29932dea-cd71-44c3-95bd-3e1525f4e3dd": (
            "Expected `float` <= 1000000.0 - at `$.apy_pct`"
        ),
        "rejected 66985a81-9c51-46ca-9977-42b4fe7bc6df": "Expected `float` >= 0.0 - at `$.tvl_usd`",
        "rejected #5": "Object missing required field `pool`",
    }
    assert set(rejected) == set(expected)
    for prefix, reason in expected.items():
        assert reason in rejected[prefix]
    assert lines[-1] == "7 records: 2 observations, 5 rejections"


def test_lido_last_response_parses(tmp_path: Path) -> None:
    result = parse_cmd(tmp_path, "-s", "lido", FIXTURES / "lido" / "apr-last-from-mcp-test.json")
    assert result.returncode == 0, result.stderr
    (obs,) = observations(result.stdout)
    assert obs["observed_at"] == "2026-03-12T12:21:59Z"
    assert obs["apy_pct"] == pytest.approx(2.4945221, abs=1e-7)
    assert obs["strategy"] == "staking"


@pytest.mark.parametrize(
    "name", ["apr-sma-from-mcp-test.json", "apr-sma-lidodocs-2023-TRUNCATED.json"]
)
def test_lido_sma_response_parses(tmp_path: Path, name: str) -> None:
    result = parse_cmd(tmp_path, "-s", "lido", FIXTURES / "lido" / name)
    assert result.returncode == 0, result.stderr
    points = body_of("lido", name)["data"]["aprs"]
    assert len(observations(result.stdout)) == len(points)
    assert "0 rejections" in last_line(result.stderr)


def test_rejection_lines_show_the_stage(tmp_path: Path) -> None:
    result = parse_cmd(tmp_path, "--source", "defillama-yields", bad_items_file(tmp_path))
    assert "rejected #5: [decode] undecodable item" in result.stderr
    assert ": [validate] Expected `float` <= 1000000.0" in result.stderr


@pytest.mark.parametrize(
    ("source", "fixture"),
    [
        ("lido", FIXTURES / "lido" / "apr-last-from-mcp-test.json"),
        ("defillama-protocols", PROTOCOLS),
    ],
)
def test_no_warning_for_sources_that_read_no_reference_data(
    tmp_path: Path, source: str, fixture: Path
) -> None:
    result = parse_cmd(tmp_path, "-s", source, fixture)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr


# --- history: a saved /chart/{pool} response -----------------------------------------


def chart_cmd(tmp_path: Path, *extra: str | Path) -> subprocess.CompletedProcess[str]:
    listing = FIXTURES / "defillama-yields" / "pools-2records-from-cn-doc.json"
    return parse_cmd(
        tmp_path, "-s", "defillama-yields", "--pool", LIDO_POOL, "--listing", listing, *extra, CHART
    )


def test_a_saved_chart_becomes_the_pools_history(tmp_path: Path) -> None:
    result = chart_cmd(tmp_path, "--reference", PROTOCOLS)

    assert result.returncode == 0, result.stderr
    points = body_of("defillama-yields", CHART.name)["data"]
    got = observations(result.stdout)
    assert len(got) == len(points) == 8
    for obs, point in zip(got, points, strict=True):
        # The point's figures and time (floored to its hour) ...
        assert (obs["apy_pct"], obs["apy_base_pct"], obs["apy_reward_pct"]) == (
            point["apy"],
            point["apyBase"],
            point["apyReward"],
        )
        assert obs["tvl_usd"] == point["tvlUsd"]
        assert obs["observed_at"] == point["timestamp"][:13] + ":00:00Z"
        # ... and the rest from the pool's /pools item and its protocol's category.
        assert (obs["pool_id"], obs["protocol"], obs["symbol"]) == (LIDO_POOL, "lido", "STETH")
        assert (obs["strategy"], obs["category"], obs["strategy_guessed"]) == (
            "staking",
            "Liquid Staking",
            False,
        )
    assert result.stderr.strip() == "8 records: 8 observations, 0 rejections"


def test_a_saved_chart_without_categories_is_classified_from_the_pool_and_warns(
    tmp_path: Path,
) -> None:
    result = chart_cmd(tmp_path)
    assert result.returncode == 0, result.stderr
    got = observations(result.stdout)
    assert {(o["strategy"], o["strategy_guessed"], o["category"]) for o in got} == {
        ("staking", True, None)
    }
    assert result.stderr.strip().splitlines() == [
        WITHOUT_REFERENCE,
        "8 records: 8 observations, 0 rejections",
    ]


def test_a_chart_without_its_listing_says_what_to_pass(tmp_path: Path) -> None:
    result = parse_cmd(tmp_path, "-s", "defillama-yields", "--pool", LIDO_POOL, CHART)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"--pool needs --listing: a saved /pools response that lists {LIDO_POOL}" in (
        result.stderr
    )


def test_a_listing_without_the_pool_is_a_one_line_error(tmp_path: Path) -> None:
    listing = FIXTURES / "defillama-yields" / "pools-stablecoin_quant.json"
    result = parse_cmd(
        tmp_path, "-s", "defillama-yields", "--pool", LIDO_POOL, "--listing", listing, CHART
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"does not list {LIDO_POOL} (5 items)" in result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--listing", POOLS[0]), "--listing goes with --pool"),
        (("--pool", LIDO_POOL, "--listing", CHART), "--listing: "),  # not a /pools response
    ],
)
def test_history_option_mistakes_are_one_line_errors(
    tmp_path: Path, args: tuple[str | Path, ...], says: str
) -> None:
    result = parse_cmd(tmp_path, "-s", "defillama-yields", *args, CHART)
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr


def test_a_chart_read_as_a_pools_response_hints_at_pool(tmp_path: Path) -> None:
    result = parse_cmd(tmp_path, "-s", "defillama-yields", CHART)
    assert result.returncode == 0, result.stderr
    assert "note: if FILE is a history response, pass --pool (and --listing)" in result.stderr
    assert last_line(result.stderr) == "8 records: 0 observations, 8 rejections"


def test_a_fixed_history_series_needs_no_listing(tmp_path: Path) -> None:
    sma = FIXTURES / "lido" / "apr-sma-from-mcp-test.json"
    result = parse_cmd(tmp_path, "-s", "lido", "--pool", "steth", sma)
    assert result.returncode == 0, result.stderr
    assert len(observations(result.stdout)) == 8
