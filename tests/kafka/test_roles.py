"""The three roles as daemons over a real Kafka-protocol broker; poison and errors."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.conftest import recorded, store_created
from tests.kafka.broker import free_port
from tests.kafka.conftest import REAL_KAFKA, kafka_config, kafka_env, running
from tests.kafka.test_end_to_end import StartServer, stored, wait_for
from tests.sinks import daemon, daemon_env, tail, yieldstream_exe
from tests.yieldstream.test_wire import observations, steth
from yieldstream import wire
from yieldstream.contracts import RawRecord, make_observation
from yieldstream.errors import ConfigError
from yieldstream.kafka import KafkaBus, Placement
from yieldstream.settings import KafkaSettings, Settings


@pytest.mark.timeout(120)
def test_collect_transform_and_sink_daemons_fill_the_store_and_stop_on_sigterm(
    loopback: StartServer, kafka_bootstrap: str, tmp_path: Path, steady_hour: None
) -> None:
    url, _ = loopback(None)
    env = {**daemon_env(url, tmp_path / "data"), **kafka_env(kafka_config(kafka_bootstrap))}
    log = tmp_path / "daemons.log"
    settings = Settings(data_dir=tmp_path / "data")
    with (
        daemon(env, log, command="transform") as transform,
        daemon(env, log, command="sink") as sink,
    ):
        collect = subprocess.run(
            [yieldstream_exe(), "collect", "--once"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert collect.returncode == 0, collect.stderr.decode()[-2000:]
        assert b"published 24 records, 0 failed fetches" in collect.stderr

        def complete() -> bool:
            assert transform.poll() is None, tail(log)
            assert sink.poll() is None, tail(log)
            if not store_created(tmp_path / "data"):
                return False
            return stored(
                settings, "SELECT count(*), (SELECT count(*) FROM fetches) FROM observations"
            )[0] == (23, 3)

        asyncio.run(wait_for_sync(complete, 60))
        for proc in (transform, sink):
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0, tail(log)
            assert time.monotonic() - started < 15
    assert "pipeline_stopped" in log.read_text()


async def wait_for_sync(check: Callable[[], bool], timeout_s: float) -> None:
    await wait_for(check, timeout_s, "the store to fill")


def pool_record(native_id: str, apy: float) -> RawRecord:
    """A recorded real /pools item under another pool id."""
    item = orjson.loads(recorded("defillama-yields", "pools-stablecoin_quant.json"))["data"][0]
    return RawRecord(
        source="defillama-yields",
        endpoint="/pools",
        fetched_at=datetime.now(UTC),
        run_id="poison-test",
        kind="snapshot",
        native_id=native_id,
        payload=orjson.dumps({**item, "pool": native_id, "apy": apy}),
    )


async def produce(bootstrap: str, topic: str, values: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in values:
            await producer.send_and_wait(topic, value, key=key, partition=0)
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, count: int, timeout_s: float = 30) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    got: list[Any] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(got) < count:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    got.extend(batch)
    finally:
        await consumer.stop()
    return got


async def test_a_poison_message_goes_to_the_dlq_and_does_not_block_its_partition(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    config = kafka_config(kafka_bootstrap, partitions=1)
    settings = Settings(data_dir=tmp_path / "data", kafka=config)
    topics = settings.kafka.topics
    before, after = pool_record("before", 3.0), pool_record("after", 4.0)
    async with running(settings, frozenset({"transform"})):
        await asyncio.sleep(1)  # the topics exist once the worker started
        await produce(
            kafka_bootstrap,
            topics.raw,
            [
                (b"defillama-yields:before", wire.encode_raw(before)),
                (b"defillama-yields:junk", b"\x00\xffnot json at all"),
                (b"defillama-yields:after", wire.encode_raw(after)),
            ],
        )
        dlq = await consume(kafka_bootstrap, topics.dlq, 1)
        pools: list[str] = []
        for count in (1, 2):  # one message of columns, or one a batch
            observations = await consume(kafka_bootstrap, topics.observations, count)
            pools = [pool for m in observations for pool in orjson.loads(m.value)["pool_id"]]
            if len(pools) == 2:
                break
    [rejected] = dlq
    headers = dict(rejected.headers)
    assert headers["stage"] == b"decode"
    assert headers["reason"].startswith(b"not a raw record message: JSON is malformed")
    value = orjson.loads(rejected.value)
    assert value["type"] == "rejection"
    assert value["stage"] == "decode"
    assert value["raw_id"] == f"kafka:{topics.raw}/0/1"
    assert rejected.key == b"unknown:defillama-yields:junk"
    assert pools == ["before", "after"]


async def test_poison_at_the_sink_becomes_a_rejection_row_and_the_rest_is_stored(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    config = kafka_config(kafka_bootstrap, partitions=1)
    settings = Settings(data_dir=tmp_path / "data", kafka=config)
    topics = settings.kafka.topics
    observation = orjson.loads(wire.encode_observation(make_observation(steth())))
    async with running(settings, frozenset({"sink"})):
        await asyncio.sleep(1)
        await produce(
            kafka_bootstrap,
            topics.observations,
            [
                (b"lido:steth", orjson.dumps({**observation, "apy_pct": "high"})),
                (b"lido:steth", orjson.dumps(observation)),
            ],
        )

        def done() -> bool:
            if not store_created(tmp_path / "data"):
                return False
            return stored(settings, "SELECT count(*) FROM observations")[0][0] == 1

        await wait_for(done, 30, "the valid observation")
    [(stage, reason, raw_id)] = stored(settings, "SELECT stage, reason, raw_id FROM rejections")
    assert stage == "decode"
    assert "Expected `float | null`, got `str` - at `$.apy_pct`" in reason
    assert raw_id == f"kafka:{topics.observations}/0/0"


async def test_a_bad_row_of_a_columns_message_is_a_rejection_row_and_its_others_are_stored(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    config = kafka_config(kafka_bootstrap, partitions=1)
    settings = Settings(data_dir=tmp_path / "data", kafka=config)
    topics = settings.kafka.topics
    [(_, key, value)] = wire.encode_observations(observations(3), Placement(1), 1 << 20)
    message = orjson.loads(value)
    message["tvl_usd"] = [1e6, -5.0, 2e6]
    async with running(settings, frozenset({"sink"})):
        await asyncio.sleep(1)
        await produce(kafka_bootstrap, topics.observations, [(key, orjson.dumps(message))])

        def done() -> bool:
            if not store_created(tmp_path / "data"):
                return False
            return stored(settings, "SELECT count(*) FROM rejections")[0][0] == 1

        await wait_for(done, 30, "the rejected row")
    assert stored(settings, "SELECT pool_id, tvl_usd FROM observations ORDER BY pool_id") == [
        ("pool-0", 1e6),
        ("pool-2", 2e6),
    ]
    [(stage, reason, raw_id, native_id)] = stored(
        settings, "SELECT stage, reason, raw_id, native_id FROM rejections"
    )
    assert stage == "decode"
    assert reason == "row 1: Expected `float` >= 0.0 - at `$.tvl_usd`"
    assert raw_id == f"kafka:{topics.observations}/0/0/1"
    assert native_id == "pool-1"


async def test_a_broker_refusing_idempotence_is_a_one_line_error_naming_the_setting(
    kafka_bootstrap: str,
) -> None:
    settings = KafkaSettings.model_validate(kafka_config(kafka_bootstrap, idempotence=True))
    bus = KafkaBus(settings, batch_size=100)
    try:
        if REAL_KAFKA:  # Apache Kafka supports it: the producer starts
            await bus.start(produce=True, follow_reference=False)
            return
        with pytest.raises(ConfigError) as caught:
            await bus.start(produce=True, follow_reference=False)
    finally:
        await bus.aclose()
    message = str(caught.value)
    assert "\n" not in message
    assert "refused the idempotent producer" in message
    assert "kafka.idempotence = false" in message


async def test_an_unreachable_broker_is_a_one_line_error_within_the_deadline() -> None:
    port = free_port()  # nothing listens there
    settings = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", send_timeout_s=2)
    started = time.monotonic()
    bus = KafkaBus(settings, batch_size=100)
    with pytest.raises(ConfigError, match=f"cannot reach Kafka at 127.0.0.1:{port} within 2 s"):
        await bus.start(produce=True, follow_reference=False)
    await bus.aclose()
    assert time.monotonic() - started < 10


def test_a_role_without_a_broker_says_how_to_name_one(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in daemon_env("http://127.0.0.1:9", tmp_path).items()
        if k != "KAFKA_BOOTSTRAP_SERVERS"
    }
    result = subprocess.run(
        [yieldstream_exe(), "transform"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert lines == [
        "error: Kafka mode needs a broker: pass --kafka HOST:PORT or set KAFKA_BOOTSTRAP_SERVERS"
    ]
