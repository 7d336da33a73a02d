"""Over Kafka, the sink publishes the alerts it opened on ``yields.alerts``, after the store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from tests.kafka.conftest import kafka_config, running
from tests.kafka.test_end_to_end import stored
from tests.kafka.test_roles import consume, produce
from tests.test_cli_alerts import figure
from yieldstream import wire
from yieldstream.settings import Settings


async def test_a_tvl_crash_stored_by_the_sink_is_published_on_yields_alerts(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    config = kafka_config(kafka_bootstrap, partitions=1)
    config["topics"]["alerts"] = f"alerts-{config['topics']['raw'].removeprefix('raw-')}"
    settings = Settings(data_dir=tmp_path / "data", kafka=config)
    topics = settings.kafka.topics
    now = datetime.now(UTC)
    before = figure("vault", now - timedelta(minutes=20), 5.0, 2_000_000.0)
    crashed = figure("vault", now - timedelta(minutes=10), 5.0, 500_000.0)
    async with running(settings, frozenset({"sink"})):
        await asyncio.sleep(1)  # the topics exist once the sink started
        await produce(
            kafka_bootstrap,
            topics.observations,
            [(b"beefy:vault", wire.encode_observation(o)) for o in (before, crashed)],
        )
        [message] = await consume(kafka_bootstrap, topics.alerts, 1)
    value = orjson.loads(message.value)
    assert message.key == b"tvl_drawdown:beefy:vault"
    assert dict(message.headers)["stage"] == b"alert_opened"
    assert (value["type"], value["schema_version"], value["event"]) == ("alert", 1, "opened")
    assert (value["kind"], value["severity"], value["cleared_at"]) == (
        "tvl_drawdown",
        "critical",
        None,
    )
    assert value["evidence"]["drop_pct"] == 75.0
    # Published once the store had it: the same alert, in the table.
    assert stored(settings, "SELECT alert_id, kind FROM alerts") == [
        (value["alert_id"], "tvl_drawdown")
    ]
