"""How the Kafka bus turns a poll into batches, and shares reference data between workers."""

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
