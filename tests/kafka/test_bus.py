"""How the Kafka bus turns a poll into batches, and shares reference data between workers."""

from __future__ import annotations

import orjson
import pyarrow as pa
from aiokafka import ConsumerRecord, TopicPartition

from sinks.tables import observations_table
from tests.conftest import raw
from tests.yieldstream.test_wire import observations
from yieldstream import wire
from yieldstream.kafka import KafkaBus, Placement
from yieldstream.settings import KafkaSettings
from yieldstream.transformer import Outcome


def polled(partition: int, offset: int, value: bytes, topic: str = "yields.raw") -> ConsumerRecord:
    return ConsumerRecord(topic, partition, offset, 0, 0, b"k", value, None, 1, len(value), [])


def test_a_poll_hands_over_the_sources_others_wait_for_first() -> None:
    bus = KafkaBus(KafkaSettings(bootstrap_servers="127.0.0.1:9"), batch_size=100)
    pool = wire.encode_raw(raw("defillama-yields", b"{}", native_id="p1"))
    protocol = wire.encode_raw(raw("defillama-protocols", b"{}", native_id="aave"))
    batches = bus._raw_batches(
        {
            TopicPartition("yields.raw", 0): [polled(0, 0, pool)],
            TopicPartition("yields.raw", 1): [polled(1, 0, protocol), polled(1, 1, b"junk")],
        }
    )
    assert [(b.source, len(b.records), len(b.rejections)) for b in batches] == [
        ("defillama-protocols", 1, 0),  # protocols give the reference data that classifies pools
        ("defillama-yields", 1, 0),
        ("unknown", 0, 1),  # an undecodable message without a source header
    ]


async def test_reference_data_shared_by_one_worker_reaches_a_worker_started_later(
    kafka_settings: KafkaSettings,
) -> None:
    """Over the compacted reference topic, keyed by provider and key: a worker that
    starts after another learned it knows it at once, the newest value winning."""
    first = KafkaBus(kafka_settings, batch_size=100)
    await first.start(produce=True, follow_reference=False)
    try:
        await first.share_reference("defillama-protocols", {"aave-v3": "Lending", "lido": "X"})
        await first.share_reference("defillama-protocols", {"lido": "Liquid Staking"})
        await first.share_reference("another-provider", {"k": "v"})
    finally:
        await first.aclose()
    later = KafkaBus(kafka_settings, batch_size=100)
    await later.start(produce=False, follow_reference=True)
    try:
        assert later.known_reference() == {
            "defillama-protocols": {"aave-v3": "Lending", "lido": "Liquid Staking"},
            "another-provider": {"k": "v"},
        }
    finally:
        await later.aclose()


def test_the_sink_gets_one_table_of_columns_and_single_messages_in_order_and_bad_rows_apart() -> (
    None
):
    bus = KafkaBus(KafkaSettings(bootstrap_servers="127.0.0.1:9"), batch_size=100)
    given = observations(6)
    [(_, _, columns)] = wire.encode_observations(given[:3], Placement(1), 1 << 20)
    broken = orjson.loads(wire.encode_observations(given[4:], Placement(1), 1 << 20)[0][2])
    broken["symbol"][0] = 7
    topic = "yields.observations"
    outcome, junk = bus._downstream(
        {
            TopicPartition(topic, 0): [
                polled(0, 10, columns, topic),
                polled(0, 11, wire.encode_observation(given[3]), topic),
                polled(0, 12, orjson.dumps(broken), topic),
                polled(0, 13, b"junk", topic),
            ]
        }
    )
    assert isinstance(outcome, Outcome)
    assert (outcome.source, outcome.records) == ("lido", 6)
    # No Observation per row: one Arrow table, the rows in the order they came.
    assert isinstance(outcome.observations, pa.Table)
    wanted = observations_table([*given[:4], given[5]])
    assert outcome.observations.equals(wanted)
    assert [(r.source, r.raw_id, r.native_id) for r in outcome.rejections] == [
        ("lido", f"kafka:{topic}/0/12/0", "pool-4"),
    ]
    assert outcome.rejections[0].reason == "row 0: Expected `str`, got `int` - at `$.symbol`"
    # A message that is not one at all is rejected whole, as before.
    assert isinstance(junk, Outcome)
    assert [(r.source, r.raw_id) for r in junk.rejections] == [("unknown", f"kafka:{topic}/0/13")]
