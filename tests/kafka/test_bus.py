"""How the Kafka bus turns a poll into batches (no broker needed for this part)."""

from __future__ import annotations

from aiokafka import ConsumerRecord, TopicPartition

from tests.conftest import raw
from yieldstream import wire
from yieldstream.kafka import KafkaBus
from yieldstream.settings import KafkaSettings


def polled(partition: int, offset: int, value: bytes) -> ConsumerRecord:
    return ConsumerRecord(
        "yields.raw", partition, offset, 0, 0, b"k", value, None, 1, len(value), []
    )


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
        ("defillama-protocols", 1, 0),  # pools are classified with protocols' categories
        ("defillama-yields", 1, 0),
        ("unknown", 0, 1),  # an undecodable message without a source header
    ]
