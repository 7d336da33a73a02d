"""Kafka roles killed with SIGKILL at random moments lose and duplicate nothing.

At-least-once delivery plus the idempotent sink: a sink commits its offsets only
after its DuckLake transaction committed, a transform worker only after its outputs
were acknowledged, so a kill at any moment means some messages are delivered again,
and the sink stores each key once.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

import yieldstream
from tests.conftest import query, recorded, store_created
from tests.kafka.conftest import kafka_config, kafka_env, running
from tests.sinks import Lineage, daemon, daemon_env, tail
from yieldstream.contracts import Observation, RawRecord, make_observation
from yieldstream.kafka import KafkaBus
from yieldstream.settings import KafkaSettings, Settings
from yieldstream.transformer import Outcome, RawBatch

pytestmark = pytest.mark.slow

OBSERVATIONS = 200_000
OBS_TOPIC = "yields.observations"  # bus topics; the adapter maps them to their names
RAW_TOPIC = "yields.raw"
KILLS = 10
HOUR = datetime(2026, 3, 1, 12, tzinfo=UTC)


def observation(i: int) -> Observation:
    return make_observation(
        {
            "source": "defillama-yields",
            "pool_id": f"pool-{i:07d}",
            "observed_at": HOUR,
            "protocol": "aave-v3",
            "chain": "Ethereum",
            "symbol": "USDC",
            "product_id": "aave-v3:ethereum:usdc",
            "strategy": "lending",
            "venue": "defi",
            "apy_pct": 2.0 + i % 1000 / 100,
            "tvl_usd": 1e6 + i,
        }
    )


def observation_batches(total: int, chunk: int) -> list[tuple[str, Outcome]]:
    """``total`` distinct observations as outcomes of ``chunk``, ready to publish."""
    return [
        (
            OBS_TOPIC,
            Outcome(None, "defillama-yields", chunk, list(map(observation, range(n, n + chunk)))),
        )
        for n in range(0, total, chunk)
    ]


def store_counts(data_dir: Path, catalog: str | None = None) -> tuple[int, int]:
    """(rows, distinct keys) of the observations stored so far."""
    if catalog is None and not store_created(data_dir):
        return 0, 0
    ((rows, keys),) = query(
        data_dir,
        "SELECT count(*), count(DISTINCT (source, pool_id, observed_at)) FROM observations",
        catalog,
    )
    return int(rows), int(keys)


def stored_pool_ids(data_dir: Path) -> set[str]:
    con = yieldstream.connect(data_dir)
    try:
        return {str(r[0]) for r in con.execute("SELECT pool_id FROM observations").fetchall()}
    finally:
        con.close()


@contextmanager
def producing(settings: KafkaSettings, batches: list[Any], pause_s: float) -> Iterator[None]:
    """Publish ``batches`` from another thread, ``pause_s`` apart, while the test runs."""
    failure: list[BaseException] = []

    async def publish() -> None:
        bus = KafkaBus(settings, batch_size=10_000)
        await bus.start(produce=True, follow_reference=False)
        try:
            for topic, value in batches:
                await bus.publish(topic, value.source, value)
                await asyncio.sleep(pause_s)
        finally:
            await bus.aclose()

    def run() -> None:
        try:
            asyncio.run(publish())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="producer")
    thread.start()
    try:
        yield
    finally:
        thread.join(120)
    assert not thread.is_alive(), "the producer did not finish"
    assert not failure, failure


def wait_for_log(
    log: Path, event: str, seen: int, proc: subprocess.Popen[bytes], timeout_s: float
) -> int:
    """Wait until ``log`` has more than ``seen`` lines with ``event``; their count."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        count = log.read_text(errors="replace").count(f'"event":"{event}"')
        if count > seen:
            return count
        assert proc.poll() is None, tail(log)
        time.sleep(0.05)
    raise AssertionError(f"no new {event} within {timeout_s} s:\n{tail(log)}")


@pytest.mark.timeout(600)
def test_sink_killed_10_times_while_200k_observations_flow_stores_each_once(
    report: Callable[[str], None], kafka_bootstrap: str, tmp_path: Path
) -> None:
    # A killed sink leaves its group when its session expires: keep that short.
    config = kafka_config(kafka_bootstrap, session_timeout_ms=6000, instance_id="sink-1")
    settings = KafkaSettings.model_validate(config)
    data_dir = tmp_path / "data"
    env = {**daemon_env("http://127.0.0.1:9", data_dir), **kafka_env(config)}
    env["YIELDSTREAM_BATCH_SIZE"] = "5000"
    log = tmp_path / "sink.log"
    chunk = 5_000
    batches = observation_batches(OBSERVATIONS, chunk)
    rng = random.Random(7)
    kills = []
    with producing(settings, batches, pause_s=2.0):
        for kill in range(KILLS):
            lineage = Lineage()
            with daemon(lineage.mark(env), log, command="sink") as sink, lineage.watching(sink):
                started = time.monotonic()
                seen = log.read_text().count('"event":"consumer_started"') if log.exists() else 0
                wait_for_log(log, "consumer_started", seen, sink, 60)
                time.sleep(rng.uniform(0, 2.0))
                sink.send_signal(signal.SIGKILL)
                sink.wait()
                kills.append((kill, round(time.monotonic() - started, 1), store_counts(data_dir)))
            # Its catalog holder (a child process) ends with it.
            left, _ = lineage.left_after(10)
            assert not left, f"kill {kill} left processes behind: {left}"
    with daemon(env, log, command="sink") as sink:
        deadline = time.monotonic() + 120
        while store_counts(data_dir)[1] < OBSERVATIONS:
            assert time.monotonic() < deadline, tail(log)
            assert sink.poll() is None, tail(log)
            time.sleep(0.5)
        sink.send_signal(signal.SIGTERM)
        assert sink.wait(15) == 0, tail(log)
    rows, keys = store_counts(data_dir)
    for kill, seconds, (at_rows, _) in kills:
        report(f"kill {kill + 1}: after {seconds} s, {at_rows} rows stored")
    report(
        f"sink kills: {len(kills)}; observations sent: {OBSERVATIONS}; stored rows: {rows}; "
        f"distinct keys: {keys}; lost: {OBSERVATIONS - keys}; duplicated: {rows - keys}"
    )
    assert len(kills) == KILLS
    assert rows == keys == OBSERVATIONS
    assert stored_pool_ids(data_dir) == {f"pool-{i:07d}" for i in range(OBSERVATIONS)}


def child_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def topic_rows(bootstrap: str, topic: str) -> int:
    """Observations on ``topic`` (a message of columns holds many), read to the end."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    count = 0
    try:
        while polled := await consumer.getmany(timeout_ms=3000, max_records=50_000):
            for batch in polled.values():
                for message in batch:
                    value = orjson.loads(message.value)
                    count += {"observations": len(value.get("pool_id", ())), "observation": 1}.get(
                        value["type"], 0
                    )
    finally:
        await consumer.stop()
    return count


def pool_records(start: int, count: int) -> list[RawRecord]:
    """Recorded real /pools items under new pool ids, fetched in one fixed hour."""
    template = orjson.loads(recorded("defillama-yields", "pools-stablecoin_quant.json"))["data"]
    return [
        RawRecord(
            source="defillama-yields",
            endpoint="/pools",
            fetched_at=HOUR,
            run_id=f"run-{start}",
            kind="snapshot",
            native_id=f"pool-{i:07d}",
            payload=orjson.dumps({**template[i % len(template)], "pool": f"pool-{i:07d}"}),
        )
        for i in range(start, start + count)
    ]


@pytest.mark.timeout(300)
def test_transform_worker_killed_mid_batch_loses_and_duplicates_nothing(
    report: Callable[[str], None], kafka_bootstrap: str, tmp_path: Path
) -> None:
    records, chunk, kills = 60_000, 2_000, 4
    config = kafka_config(kafka_bootstrap, session_timeout_ms=6000, instance_id="transform-1")
    settings = KafkaSettings.model_validate(config)
    data_dir = tmp_path / "data"
    env = {**daemon_env("http://127.0.0.1:9", data_dir), **kafka_env(config)}
    env["YIELDSTREAM_BATCH_SIZE"] = "3000"
    log = tmp_path / "transform.log"
    batches = [
        (RAW_TOPIC, RawBatch(f"b{start}", "defillama-yields", pool_records(start, chunk)))
        for start in range(0, records, chunk)
    ]
    rng = random.Random(11)
    with producing(settings, batches, pause_s=0.5):
        for _ in range(kills):
            lineage = Lineage()
            with (
                daemon(lineage.mark(env), log, command="transform") as worker,
                lineage.watching(worker),
            ):
                # Kill while batches flow: after one was published, before the next is.
                seen = log.read_text().count('"event":"batch_transformed"') if log.exists() else 0
                wait_for_log(log, "batch_transformed", seen, worker, 60)
                time.sleep(rng.uniform(0, 0.4))
                children = child_pids(worker.pid)
                assert children, "the transform runs in a worker process"
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                # Its transform worker notices the parent is gone and exits too.
                deadline = time.monotonic() + 10
                while any(alive(pid) for pid in children):
                    assert time.monotonic() < deadline, f"orphaned workers {children}"
                    time.sleep(0.1)
            left, _ = lineage.left_after(10)  # and so does every other process it started
            assert not left, f"orphaned processes {left}"

    async def finish() -> None:
        final = Settings(data_dir=data_dir, kafka=config, batch_size=5000)
        async with running(final, frozenset({"transform", "sink"})) as task:
            deadline = asyncio.get_running_loop().time() + 120
            while store_counts(data_dir)[1] < records:
                assert not task.done(), task
                assert asyncio.get_running_loop().time() < deadline, store_counts(data_dir)
                await asyncio.sleep(0.5)

    asyncio.run(finish())
    rows, keys = store_counts(data_dir)
    sent = asyncio.run(topic_rows(kafka_bootstrap, settings.topics.observations))
    report(
        f"transform kills: {kills}; raw records sent: {records}; observations on "
        f"the topic: {sent} ({sent - records} sent again after a kill); stored rows: {rows}; "
        f"distinct keys: {keys}; lost: {records - keys}; duplicated: {rows - keys}"
    )
    assert sent >= records
    assert rows == keys == records
    assert stored_pool_ids(data_dir) == {f"pool-{i:07d}" for i in range(records)}
