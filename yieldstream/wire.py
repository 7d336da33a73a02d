"""What travels over Kafka: plain JSON, one message per record, with a schema version.

Every value is a JSON object with ``type`` and ``schema_version`` fields, so any Kafka
client can read the topics (the README documents the fields):

``yields.raw``           ``type: "raw"``: one upstream item as fetched (``payload`` is
                         its JSON text, a string), key ``<source>:<native id>``
``yields.observations``  ``type: "observation"``: one validated observation, key
                         ``<source>:<pool id>``; ``type: "fetch"``: one fetch run's
                         report, key ``<source>``
``yields.dlq``           ``type: "rejection"``: what failed, why, and the original
                         bytes (``payload``, base64), key ``<source>:<native id>``
``yields.reference``     ``type: "reference"``: one key's value of a source's
                         reference data (e.g. a protocol's category), key
                         ``<source>:<key>`` (a compacted topic)

Decoding is strict: a value that is not such an object, nests deeper than
:data:`yieldstream.items.MAX_DEPTH`, has a native id that is not storable text, or
has a newer ``schema_version`` than this code reads, is a :class:`WireError` and
becomes a rejection, never a crash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, TypeVar

import msgspec

from yieldstream.contracts import (
    FetchReport,
    Observation,
    RawRecord,
    RecordKind,
    Rejection,
    Stage,
)
from yieldstream.items import MAX_DEPTH, id_problem, too_deep

SCHEMA_VERSION: Final = 1
M = TypeVar("M")


class WireError(ValueError):
    """A message value is not one this code can read; the message says why."""


class RawMessage(msgspec.Struct, kw_only=True, tag="raw", tag_field="type"):
    schema_version: int = SCHEMA_VERSION
    source: str
    endpoint: str
    fetched_at: datetime
    run_id: str
    kind: RecordKind
    native_id: str
    payload: str  # the upstream item's JSON text, as fetched


class ObservationMessage(Observation, kw_only=True, frozen=True, tag="observation"):
    """An :class:`Observation` with its wire fields; usable wherever one is."""

    schema_version: int = SCHEMA_VERSION


class FetchMessage(msgspec.Struct, kw_only=True, tag="fetch", tag_field="type"):
    schema_version: int = SCHEMA_VERSION
    source: str
    run_id: str
    started_at: datetime
    ok: bool
    records: int
    error: str | None = None


class RejectionMessage(msgspec.Struct, kw_only=True, tag="rejection", tag_field="type"):
    schema_version: int = SCHEMA_VERSION
    source: str
    endpoint: str
    stage: Stage
    reason: str
    native_id: str | None
    payload: bytes  # base64 in JSON: the original bytes may not be text
    payload_sha256: str
    rejected_at: datetime
    raw_id: str


class ReferenceMessage(msgspec.Struct, kw_only=True, tag="reference", tag_field="type"):
    schema_version: int = SCHEMA_VERSION
    source: str  # the source that provides it
    key: str
    value: str


Downstream = ObservationMessage | FetchMessage | RejectionMessage

_encoder = msgspec.json.Encoder()
_raw_decoder = msgspec.json.Decoder(RawMessage)
_downstream_decoder = msgspec.json.Decoder(Downstream)
_reference_decoder = msgspec.json.Decoder(ReferenceMessage)
# The tag and version an encoded Observation lacks; prepended to its object.
_OBSERVATION_HEAD: Final = b'{"type":"observation","schema_version":%d,' % SCHEMA_VERSION


def encode_raw(record: RawRecord) -> bytes:
    return _encoder.encode(
        RawMessage(
            source=record.source,
            endpoint=record.endpoint,
            fetched_at=record.fetched_at,
            run_id=record.run_id,
            kind=record.kind,
            native_id=record.native_id,
            payload=record.payload.decode("utf-8", "replace"),
        )
    )


def encode_observation(observation: Observation) -> bytes:
    """An observation as its wire object, without copying it into another struct."""
    if isinstance(observation, ObservationMessage):
        return _encoder.encode(observation)
    return _OBSERVATION_HEAD + _encoder.encode(observation)[1:]


def encode_row(row: dict[str, Any]) -> bytes:
    """An observation given as a row (column name -> value) as its wire object."""
    return _encoder.encode({"type": "observation", "schema_version": SCHEMA_VERSION, **row})


def encode_fetch(report: FetchReport) -> bytes:
    return _encoder.encode(
        FetchMessage(
            source=report.source,
            run_id=report.run_id,
            started_at=report.started_at,
            ok=report.ok,
            records=report.records,
            error=report.error,
        )
    )


def encode_rejection(rejection: Rejection) -> bytes:
    return _encoder.encode(
        RejectionMessage(
            source=rejection.source,
            endpoint=rejection.endpoint,
            stage=rejection.stage,
            reason=rejection.reason,
            native_id=rejection.native_id,
            payload=rejection.payload,
            payload_sha256=rejection.payload_sha256,
            rejected_at=rejection.rejected_at,
            raw_id=rejection.raw_id,
        )
    )


def encode_reference(source: str, key: str, value: str) -> bytes:
    return _encoder.encode(ReferenceMessage(source=source, key=key, value=value))


def _check_version(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise WireError(
            f"schema_version {version} is newer than this yieldstream reads "
            f"({SCHEMA_VERSION}); upgrade the consumers before the producers"
        )


def _decoded(decoder: msgspec.json.Decoder[M], value: bytes | None, what: str) -> M:
    """``value`` decoded, or WireError: undecodable, the wrong shape or nested too deep."""
    if value and too_deep(value):
        raise WireError(f"not {what}: nested deeper than {MAX_DEPTH} levels")
    try:
        return decoder.decode(value or b"")
    except msgspec.DecodeError as exc:
        raise WireError(f"not {what}: {exc}") from None


def decode_raw(value: bytes | None) -> RawRecord:
    """A ``yields.raw`` value back to the record the collector fetched."""
    message = _decoded(_raw_decoder, value, "a raw record message")
    _check_version(message.schema_version)
    if (problem := id_problem(message.native_id)) is not None:
        raise WireError(f"not a raw record message: native_id: {problem}")
    return RawRecord(
        source=message.source,
        endpoint=message.endpoint,
        fetched_at=message.fetched_at,
        run_id=message.run_id,
        kind=message.kind,
        native_id=message.native_id,
        payload=message.payload.encode(),
    )


def decode_downstream(value: bytes | None) -> Downstream:
    """A ``yields.observations`` or ``yields.dlq`` value, validated."""
    message: Downstream = _decoded(
        _downstream_decoder, value, "an observation, fetch or rejection message"
    )
    _check_version(message.schema_version)
    return message


def decode_reference(value: bytes | None) -> ReferenceMessage:
    message = _decoded(_reference_decoder, value, "a reference message")
    _check_version(message.schema_version)
    return message


def rejection_of(message: RejectionMessage) -> Rejection:
    return Rejection(
        source=message.source,
        endpoint=message.endpoint,
        stage=message.stage,
        reason=message.reason,
        native_id=message.native_id,
        payload=message.payload,
        rejected_at=message.rejected_at,
        raw_id=message.raw_id,
    )
