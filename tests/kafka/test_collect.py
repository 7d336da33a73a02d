"""``collect --once`` sums up each source and fails when one did; a failed stage over Kafka."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from sinks.lake import Store
from sinks.writer import LakeWriter
from tests.kafka.conftest import kafka_config, kafka_env, running
from tests.kafka.test_end_to_end import StartServer, stored, wait_for
from tests.sinks import daemon_env, yieldstream_exe
from tests.yieldstream.test_pipeline import fail_first
from yieldstream import pipeline
from yieldstream.loopback import Reply, recorded_routes
from yieldstream.settings import Settings


def collect_once(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [yieldstream_exe(), "collect", "--once"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def lines(stderr: str) -> dict[str, str]:
    """The summary lines, by source (and ``total``)."""
    return {
        name: rest
        for name, _, rest in (line.partition(": ") for line in stderr.splitlines())
        if not name.startswith("{")
    }


def test_collect_once_exits_1_naming_the_source_that_failed_every_fetch(
    loopback: StartServer, kafka_bootstrap: str, tmp_path: Path
) -> None:
    url, _ = loopback({**recorded_routes(), "/pools": Reply(404, b'{"error": "gone"}')})
    env = {**daemon_env(url, tmp_path / "data"), **kafka_env(kafka_config(kafka_bootstrap))}
    result = collect_once(env, tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    summary = lines(result.stderr)
    assert summary["defillama-yields"] == (
        f"published 0 records, 1 failed fetches; FAILED: HTTP 404 from {url}/pools"
    )
    assert summary["lido"] == "published 9 records, 0 failed fetches"
    assert summary["defillama-protocols"] == "published 6 records, 0 failed fetches"
    assert summary["total"] == "published 15 records, 1 failed fetches"
    assert "Traceback" not in result.stderr


def test_collect_once_exits_0_when_every_source_fetched(
    loopback: StartServer, kafka_bootstrap: str, tmp_path: Path
) -> None:
    url, _ = loopback(None)
    env = {**daemon_env(url, tmp_path / "data"), **kafka_env(kafka_config(kafka_bootstrap))}
    result = collect_once(env, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert lines(result.stderr)["total"] == "published 24 records, 0 failed fetches"
    assert "FAILED" not in result.stderr


async def test_a_sink_whose_store_failed_rejoins_and_stores_what_kafka_delivers_again(
    loopback: StartServer,
    make_settings: Callable[..., Settings],
    kafka_bootstrap: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    steady_hour: None,
) -> None:
    """Over Kafka a failed batch's offsets are not committed: the stage restarts after
    its back-off, and the messages come again."""
    monkeypatch.setattr(pipeline, "BACKOFF_FIRST_S", 0.05)
    monkeypatch.setattr(LakeWriter, "store", fail_first(LakeWriter.store))
    url, _ = loopback(None)
    settings = make_settings(url, kafka=kafka_config(kafka_bootstrap), batch_size=500)
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        async with running(settings) as daemon:

            def complete() -> bool:
                assert not daemon.done(), daemon.exception() if daemon.done() else None
                if not Store(settings.data_dir).exists:
                    return False
                return bool(stored(settings, "SELECT count(*) FROM observations")[0][0] == 23)

            await wait_for(complete, 90, "23 observations after the failed store")
    [failed] = [e for e in logs if e["event"] == "stage_failed"]
    assert failed["stage"] == "store"
    assert failed["note"] == "restarting"
