"""Two sink processes in one consumer group write one store: no conflict, no duplicate.

With the SQLite catalog (sinks on one host) and with a PostgreSQL catalog (sinks on
several hosts, sharing the data files), against a real PostgreSQL server.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.kafka.conftest import kafka_config, kafka_env
from tests.kafka.test_kill import (
    observation_batches,
    producing,
    store_counts,
    wait_for_log,
)
from tests.sinks import daemon, daemon_env, tail
from yieldstream.settings import KafkaSettings

pytestmark = pytest.mark.slow

OBSERVATIONS = 60_000


def stored_by(log: Path) -> int:
    return sum(
        json.loads(line)["stored"]
        for line in log.read_text().splitlines()
        if '"event":"batch_stored"' in line
    )


@pytest.mark.timeout(240)
@pytest.mark.parametrize("catalog", ["sqlite", "postgres"])
def test_two_sinks_in_one_group_store_each_observation_once(
    report: Callable[[str], None],
    catalog: str,
    kafka_bootstrap: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    url = request.getfixturevalue("postgres_catalog") if catalog == "postgres" else None
    config = kafka_config(kafka_bootstrap)
    data_dir = tmp_path / "data"
    env = {**daemon_env("http://127.0.0.1:9", data_dir), **kafka_env(config)}
    env["YIELDSTREAM_BATCH_SIZE"] = "4000"
    if url is not None:
        env["YIELDSTREAM_CATALOG"] = url
    logs = [tmp_path / "sink-1.log", tmp_path / "sink-2.log"]
    chunk = 4_000
    batches = observation_batches(OBSERVATIONS, chunk)
    with (
        daemon(env, logs[0], command="sink") as first,
        daemon(env, logs[1], command="sink") as second,
    ):
        for log, proc in zip(logs, (first, second), strict=True):
            wait_for_log(log, "consumer_started", 0, proc, 60)
        with producing(KafkaSettings.model_validate(config), batches, pause_s=0.3):
            pass
        deadline = time.monotonic() + 120
        while store_counts(data_dir, url)[1] < OBSERVATIONS:
            assert time.monotonic() < deadline, tail(logs[0]) + tail(logs[1])
            assert first.poll() is None, tail(logs[0])
            assert second.poll() is None, tail(logs[1])
            time.sleep(0.5)
        for proc, log in zip((first, second), logs, strict=True):
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0, tail(log)
    rows, keys = store_counts(data_dir, url)
    shares = [stored_by(log) for log in logs]
    report(
        f"{catalog} catalog: two sinks stored {shares} rows; {rows} rows, {keys} keys, "
        f"{rows - keys} duplicated"
    )
    assert rows == keys == OBSERVATIONS
    assert sum(shares) == OBSERVATIONS
    assert all(share > 0 for share in shares)  # both sinks did write


@pytest.mark.timeout(240)
def test_rebalances_while_observations_flow_lose_and_duplicate_nothing(
    report: Callable[[str], None], kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A second sink joins mid-flow, then the first leaves: two rebalances under load."""
    config = kafka_config(kafka_bootstrap)
    data_dir = tmp_path / "data"
    env = {**daemon_env("http://127.0.0.1:9", data_dir), **kafka_env(config)}
    env["YIELDSTREAM_BATCH_SIZE"] = "2000"
    logs = [tmp_path / "sink-1.log", tmp_path / "sink-2.log"]
    # ~50 s of flow: observations still come while the second sink joins (as columns
    # they are published and stored faster than the sinks start).
    chunk = 1_000
    batches = observation_batches(OBSERVATIONS, chunk)
    with (
        daemon(env, logs[0], command="sink") as first,
        producing(KafkaSettings.model_validate(config), batches, pause_s=0.8),
    ):
        wait_for_log(logs[0], "batch_stored", 0, first, 60)
        with daemon(env, logs[1], command="sink") as second:
            wait_for_log(logs[1], "batch_stored", 0, second, 60)  # joined: partitions split
            first.send_signal(signal.SIGTERM)  # leaves: the second takes them all
            assert first.wait(15) == 0, tail(logs[0])
            deadline = time.monotonic() + 120
            while store_counts(data_dir)[1] < OBSERVATIONS:
                assert time.monotonic() < deadline, tail(logs[1])
                assert second.poll() is None, tail(logs[1])
                time.sleep(0.5)
            second.send_signal(signal.SIGTERM)
            assert second.wait(15) == 0, tail(logs[1])
    rows, keys = store_counts(data_dir)
    shares = [stored_by(log) for log in logs]
    revoked = logs[0].read_text().count('"event":"partitions_revoked"')
    report(
        f"rebalances under load: sinks stored {shares} rows, the first had partitions revoked "
        f"{revoked} times; {rows} rows, {keys} keys, {rows - keys} duplicated"
    )
    assert revoked >= 1
    assert rows == keys == OBSERVATIONS
    assert all(share > 0 for share in shares)
