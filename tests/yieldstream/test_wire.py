"""The Kafka message formats: round trips, and what a consumer refuses to read."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import orjson
import pyarrow as pa
import pytest

from sinks.tables import columns_table, observations_table
from tests.conftest import FETCHED_AT, raw
from yieldstream import wire
from yieldstream.contracts import Observation, Rejection, make_observation
from yieldstream.kafka import Placement
from yieldstream.settings import KafkaSettings, load


def steth() -> dict[str, object]:
    return {
        "source": "lido",
        "pool_id": "steth",
        "observed_at": datetime(2026, 3, 1, 12, tzinfo=UTC),
        "protocol": "lido",
        "chain": "Ethereum",
        "symbol": "STETH",
        "product_id": "lido:ethereum:steth",
        "strategy": "staking",
        "venue": "defi",
        "apy_pct": 2.9,
        "underlying_tokens": ["0xae7ab96520de3a18e5e111b5eaab095312d7fe84"],
    }


def test_a_raw_record_survives_the_round_trip_with_its_payload_as_text() -> None:
    record = raw("lido", b'{"apr": NaN, "timeUnix": 1}', endpoint="/apr/last")
    value = wire.encode_raw(record)
    assert orjson.loads(value)["payload"] == '{"apr": NaN, "timeUnix": 1}'
    assert wire.decode_raw(value) == record


def test_an_observation_is_plain_json_and_decodes_to_an_equal_observation() -> None:
    observation = make_observation(steth())
    value = wire.encode_observation(observation)
    as_json = orjson.loads(value)
    assert as_json["type"] == "observation"
    assert as_json["schema_version"] == wire.SCHEMA_VERSION
    assert as_json["observed_at"] == "2026-03-01T12:00:00Z"
    decoded = wire.decode_downstream(value)
    assert isinstance(decoded, wire.ObservationMessage)
    fields = list(observation.__struct_fields__)
    assert [getattr(decoded, f) for f in fields] == [getattr(observation, f) for f in fields]


def test_a_rejection_keeps_its_original_bytes() -> None:
    rejection = Rejection(
        source="lido",
        endpoint="/apr/last",
        stage="validate",
        reason="apr is NaN",
        native_id="last",
        payload=b"\xff\x00 not text",
        rejected_at=FETCHED_AT,
        raw_id="abc:last",
    )
    decoded = wire.decode_downstream(wire.encode_rejection(rejection))
    assert isinstance(decoded, wire.RejectionMessage)
    assert wire.rejection_of(decoded) == rejection
    assert decoded.payload_sha256 == rejection.payload_sha256


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\x00\xff", "JSON is malformed"),
        (b'{"type": "observation"}', "missing required field"),
        (b'{"type": "bogus"}', "Invalid value 'bogus'"),
        (None, "Input data was truncated"),
    ],
)
def test_what_is_not_a_message_is_a_wire_error_with_the_reason(
    value: bytes | None, reason: str
) -> None:
    with pytest.raises(wire.WireError, match=reason):
        wire.decode_downstream(value)


def test_a_newer_schema_version_is_refused_with_what_to_do() -> None:
    newer = orjson.loads(wire.encode_observation(make_observation(steth())))
    newer["schema_version"] = wire.SCHEMA_VERSION + 1
    with pytest.raises(wire.WireError, match="upgrade the consumers before the producers"):
        wire.decode_downstream(orjson.dumps(newer))


def test_kafka_bootstrap_servers_is_read_below_the_yieldstream_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("YIELDSTREAM_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-a:9092")
    monkeypatch.setenv("YIELDSTREAM_KAFKA__IDEMPOTENCE", "false")
    assert load().kafka.bootstrap_servers == "kafka-a:9092"
    monkeypatch.setenv("YIELDSTREAM_KAFKA__BOOTSTRAP_SERVERS", "kafka-b:9092")
    assert load().kafka.bootstrap_servers == "kafka-b:9092"
    # --kafka on the command line wins, and keeps the other kafka settings.
    settings = load(kafka={"bootstrap_servers": "kafka-c:9092"})
    assert settings.kafka.bootstrap_servers == "kafka-c:9092"
    assert settings.kafka.idempotence is False


def test_the_sasl_password_is_never_shown() -> None:
    settings = KafkaSettings(sasl_mechanism="PLAIN", sasl_username="u", sasl_password="hunter2")
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())


def observations(count: int) -> list[Observation]:
    """``count`` observations of different pools; a few fields vary, some are null."""
    return [
        make_observation(
            {
                **steth(),
                "pool_id": f"pool-{i}",
                "product_id": f"lido:ethereum:pool-{i}",
                "observed_at": datetime(2026, 3, 1, i % 24, tzinfo=UTC),
                "apy_pct": 2.5 + i,
                "tvl_usd": None if i % 3 else 1e6 * i,
                "reward_tokens": ["0xabc"] if i % 2 else None,
            }
        )
        for i in range(count)
    ]


def by_pool(table: pa.Table) -> pa.Table:
    return table.sort_by([("pool_id", "ascending"), ("observed_at", "ascending")])


def test_observations_go_as_columns_that_decode_to_the_same_table() -> None:
    given = observations(2_500)
    messages = wire.encode_observations(given, Placement(3), 64 * 1024)
    decoded = []
    for partition, key, value in messages:
        assert key == b"lido"
        assert len(value) <= 64 * 1024
        as_json = orjson.loads(value)
        assert (as_json["type"], as_json["schema_version"]) == ("observations", 1)
        assert "apy_gross_pct" not in as_json  # null in every row: left out
        message = wire.decode_downstream(value)
        assert isinstance(message, wire.ObservationsMessage)
        assert len(message.pool_id) <= wire.CHUNK_ROWS
        # Each row is on the partition its pool's key maps to, as one message a row was.
        assert {Placement(3)(f"lido:{pool}".encode()) for pool in message.pool_id} == {partition}
        decoded.append(columns_table(message.source, message.columns()))
    assert len({partition for partition, _, _ in messages}) == 3
    assert by_pool(pa.concat_tables(decoded)).equals(by_pool(observations_table(given)))


def test_a_table_of_two_sources_goes_as_columns_of_each_and_decodes_to_itself() -> None:
    lido = observations(300)
    beefy = [
        make_observation(
            {
                **steth(),
                "source": "beefy",
                "pool_id": f"vault-{i}",
                "observed_at": datetime(2026, 3, 1, 12, 0, i % 60, 250_000, tzinfo=UTC),
                "tvl_tokens": 0.5 * i,
                "tvl_token": "ETH",
            }
        )
        for i in range(200)
    ]
    mixed = [o for pair in zip(lido, beefy, strict=False) for o in pair] + lido[200:]
    table = observations_table(mixed)
    messages = wire.encode_table(table, Placement(2), 16 * 1024)
    decoded = []
    for partition, key, value in messages:
        message = wire.decode_downstream(value)
        assert isinstance(message, wire.ObservationsMessage)
        assert key == message.source.encode()
        places = {Placement(2)(f"{message.source}:{p}".encode()) for p in message.pool_id}
        assert places == {partition}
        decoded.append(columns_table(message.source, message.columns()))
    assert {key for _, key, _ in messages} == {b"lido", b"beefy"}
    assert by_pool(pa.concat_tables(decoded)).equals(by_pool(table))
    assert wire.encode_table(table.slice(0, 0), Placement(2), 16 * 1024) == []


def test_the_columns_message_holds_each_observation_field_as_a_list_of_its_type() -> None:
    columns = {f.name: f for f in msgspec.structs.fields(wire.ObservationsMessage)}
    fields = msgspec.structs.fields(Observation)
    assert list(columns) == ["schema_version", *(f.name for f in fields)]
    assert columns["source"].type == fields[0].type  # once a message
    for field in fields[1:]:
        column = columns[field.name]
        if field.default is None:
            assert column.type == list[field.type] | None
            assert column.default is None
        else:
            assert column.type == list[field.type]


def test_a_bad_row_of_an_observations_message_is_rejected_alone_with_its_reason() -> None:
    [value] = [v for _, _, v in wire.encode_observations(observations(3), Placement(1), 1 << 20)]
    message = orjson.loads(value)
    message["apy_pct"][1] = "high"
    broken = orjson.dumps(message)
    with pytest.raises(wire.WireError, match=r"Expected `float \| null`, got `str`"):
        wire.decode_downstream(broken)
    salvaged = wire.observation_rows(broken)
    assert salvaged is not None
    source, rows = salvaged
    assert source == "lido"
    first, bad, last = rows
    assert isinstance(first, Observation)
    assert isinstance(last, Observation)
    assert (first.pool_id, last.pool_id) == ("pool-0", "pool-2")
    assert isinstance(bad, wire.RowError)
    assert str(bad) == "row 1: Expected `float | null`, got `str` - at `$.apy_pct`"
    assert (bad.index, bad.pool_id) == (1, "pool-1")
    assert orjson.loads(bad.payload)["apy_pct"] == "high"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"pool_id": ["a"]}, r"columns of lengths \[1, 3\]"),
        ({"schema_version": wire.SCHEMA_VERSION + 1}, "upgrade the consumers"),
        ({"chain": None}, "Expected `array`, got `null` - at `\\$.chain`"),
    ],
)
def test_an_observations_message_not_read_row_by_row_is_rejected_whole(
    change: dict[str, object], reason: str
) -> None:
    [value] = [v for _, _, v in wire.encode_observations(observations(3), Placement(1), 1 << 20)]
    broken = orjson.dumps({**orjson.loads(value), **change})
    with pytest.raises(wire.WireError, match=reason):
        wire.decode_downstream(broken)
    assert wire.observation_rows(broken) is None
