"""The Kafka message formats: round trips, and what a consumer refuses to read."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from tests.conftest import FETCHED_AT, raw
from yieldstream import wire
from yieldstream.contracts import Rejection, make_observation
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
    # The same message from a row (what an Arrow table gives) decodes the same.
    assert wire.decode_downstream(wire.encode_row(steth())) == decoded


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
