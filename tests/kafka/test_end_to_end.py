"""The pipeline over a real Kafka-protocol broker gives what the embedded one gives."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from sinks.lake import Store, open_reader
from tests.kafka.conftest import kafka_config, running
from yieldstream.app import run_pipeline
from yieldstream.loopback import Route
from yieldstream.settings import Settings

StartServer = Callable[[Mapping[str, Route] | None], tuple[str, dict[str, int]]]
COLUMNS = "source, pool_id, observed_at, protocol, chain, symbol, strategy, venue, apy_pct, tvl_usd"


def stored(settings: Settings, query: str) -> list[tuple[Any, ...]]:
    con = open_reader(Store(settings.data_dir))
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


async def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.25)


async def test_all_roles_over_kafka_store_what_the_embedded_pipeline_stores(
    loopback: StartServer,
    make_settings: Callable[..., Settings],
    kafka_bootstrap: str,
    tmp_path: Any,
    steady_hour: None,
) -> None:
    url, _ = loopback(None)
    embedded = make_settings(url, data_dir=tmp_path / "embedded")
    await run_pipeline(embedded, once=True, handle_signals=False)
    expected = stored(embedded, f"SELECT {COLUMNS} FROM observations ORDER BY ALL")
    assert len(expected) == 23

    kafka = make_settings(
        url, data_dir=tmp_path / "kafka", kafka=kafka_config(kafka_bootstrap), batch_size=500
    )
    async with running(kafka) as daemon:

        def complete() -> bool:
            assert not daemon.done(), daemon.exception() if daemon.done() else None
            if not Store(kafka.data_dir).exists:
                return False
            fetches = stored(kafka, "SELECT count(*) FROM fetches")[0][0]
            rows = stored(kafka, "SELECT count(*) FROM observations")[0][0]
            return bool(fetches == 3 and rows == len(expected))

        await wait_for(complete, 60, "23 observations and 3 fetch reports")
    assert stored(kafka, f"SELECT {COLUMNS} FROM observations ORDER BY ALL") == expected
    rejected = "SELECT source, stage, reason FROM rejections ORDER BY ALL"
    assert stored(kafka, rejected) == stored(embedded, rejected)

    # What the collector wrote is plain JSON any Kafka client reads.
    consumer = AIOKafkaConsumer(
        kafka.kafka.topics.raw,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        polled = await consumer.getmany(timeout_ms=5000, max_records=1000)
    finally:
        await consumer.stop()
    messages = [m for batch in polled.values() for m in batch]
    assert messages
    message = messages[0]
    value = orjson.loads(message.value)
    assert set(value) == {
        "type",
        "schema_version",
        "source",
        "endpoint",
        "fetched_at",
        "run_id",
        "kind",
        "native_id",
        "payload",
    }
    assert value["type"] == "raw"
    assert value["schema_version"] == 1
    assert message.key.decode() == f"{value['source']}:{value['native_id']}"
    assert isinstance(orjson.loads(value["payload"]), dict)
    assert dict(message.headers)["source"] == value["source"].encode()
