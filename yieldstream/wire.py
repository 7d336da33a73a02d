"""What travels over Kafka: plain JSON objects, each with a schema version.

Every value is a JSON object with ``type`` and ``schema_version`` fields, so any Kafka
client can read the topics (the README documents the fields):

``yields.raw``           ``type: "raw"``: one upstream item as fetched (``payload`` is
                         its JSON text, a string), key ``<source>:<native id>``
``yields.observations``  ``type: "observations"``: up to :data:`CHUNK_ROWS`
                         observations of one source as columns (``source`` once, then
                         one list per other :class:`Observation` field; an optional
                         field null in every row is left out), key ``<source>``, all
                         on the partition their pools' keys ``<source>:<pool id>``
                         map to; ``type: "observation"``: one observation, key
                         ``<source>:<pool id>`` (what versions before the columns
                         sent; still read); ``type: "fetch"``: one fetch run's
                         report, key ``<source>``
``yields.dlq``           ``type: "rejection"``: what failed, why, and the original
                         bytes (``payload``, base64), key ``<source>:<native id>``
``yields.reference``     ``type: "reference"``: one key's value of a source's
                         reference data (e.g. a protocol's category), key
                         ``<source>:<key>`` (a compacted topic)

Decoding is strict: a value that is not such an object, nests too deep to read, has
a native id that is not storable text, or has a newer ``schema_version`` than this
code reads, is a :class:`WireError` and becomes a rejection, never a crash. In an
``observations`` message whose columns are all lists of one length, only the rows
that are not valid observations are rejected (:func:`observation_rows`), each with
its reason.

The columns decode straight into typed lists (msgspec checks every value as it does
for one observation) and from there into Arrow arrays: no Observation per row on
the sink's side. Consumers read both forms; upgrade them before the transform.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
from msgspec import structs

from sinks.tables import column_values, observations_table
from yieldstream.contracts import (
    Amount,
    FetchReport,
    Level,
    NonEmpty,
    Observation,
    Pct,
    RawRecord,
    RecordKind,
    Rejection,
    Share,
    Stage,
    Strategy,
    Usd,
    UtcDatetime,
    Venue,
)
from yieldstream.items import id_problem, too_deep

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


class ObservationsMessage(msgspec.Struct, kw_only=True, tag="observations", tag_field="type"):
    """Observations of one source as columns: one list per :class:`Observation` field.

    The element types are the Observation's (tests/yieldstream/test_wire.py holds them
    to it); an optional column may be left out: null in every row.
    """

    schema_version: int = SCHEMA_VERSION
    source: NonEmpty
    pool_id: list[NonEmpty]
    observed_at: list[UtcDatetime]
    protocol: list[NonEmpty]
    chain: list[NonEmpty]
    symbol: list[str]
    strategy: list[Strategy]
    venue: list[Venue]
    category: list[str | None] | None = None
    apy_pct: list[Pct | None] | None = None
    apy_base_pct: list[Pct | None] | None = None
    apy_reward_pct: list[Pct | None] | None = None
    tvl_usd: list[Usd | None] | None = None
    stablecoin: list[bool | None] | None = None
    il_risk: list[bool | None] | None = None
    exposure: list[str | None] | None = None
    outlier: list[bool | None] | None = None
    pool_meta: list[str | None] | None = None
    underlying_tokens: list[list[str] | None] | None = None
    reward_tokens: list[list[str] | None] | None = None
    level: list[Level]
    product_id: list[NonEmpty | None] | None = None
    strategy_guessed: list[bool | None] | None = None
    apy_gross_pct: list[Pct | None] | None = None
    apy_borrow_pct: list[Pct | None] | None = None
    utilization_pct: list[Share | None] | None = None
    tvl_tokens: list[Amount | None] | None = None
    tvl_token: list[str | None] | None = None

    def columns(self) -> dict[str, list[Any] | None]:
        """Every column but ``source`` by name (None: null in every row)."""
        return {name: getattr(self, name) for name in COLUMNS}


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


Downstream = ObservationsMessage | ObservationMessage | FetchMessage | RejectionMessage
# Observations per ``observations`` message: ~370 bytes a row as JSON, well below
# the producer's batch (kafka.max_batch_bytes); a message over its bound is halved.
CHUNK_ROWS: Final = 1000
_FIELDS: Final = tuple(Observation.__struct_fields__)
COLUMNS: Final = _FIELDS[1:]  # every field but source, which a message holds once
_OPTIONAL: Final = frozenset(f.name for f in structs.fields(Observation) if f.default is None)
_REQUIRED: Final = frozenset(COLUMNS) - _OPTIONAL

_encoder = msgspec.json.Encoder()
_raw_decoder = msgspec.json.Decoder(RawMessage)
_downstream_decoder = msgspec.json.Decoder(Downstream)
_reference_decoder = msgspec.json.Decoder(ReferenceMessage)
_observation_decoder = msgspec.json.Decoder(Observation)
_loose_decoder = msgspec.json.Decoder(dict[str, Any])
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


def encode_observations(
    observations: Sequence[Observation], place: Callable[[bytes], int], max_bytes: int
) -> list[tuple[int, bytes, bytes]]:
    """:func:`encode_table` of observations given one by one."""
    return encode_table(observations_table(observations), place, max_bytes)


def encode_table(
    table: pa.Table, place: Callable[[bytes], int], max_bytes: int
) -> list[tuple[int, bytes, bytes]]:
    """An observations table (:mod:`sinks.tables`) as ``observations`` messages:
    (partition, key, value).

    Rows go where their key ``<source>:<pool id>`` is placed (one pool's observations
    stay on one partition, in order), in messages of at most :data:`CHUNK_ROWS` rows
    and ``max_bytes`` bytes (a single row may exceed it). Each distinct key is placed
    once; the rows are cut as Arrow slices and only each message's own rows become
    Python values.
    """
    if table.num_rows == 0:
        return []
    keys = pc.binary_join_element_wise(table["source"], table["pool_id"], ":")
    distinct = pc.unique(keys)
    placed = pa.array([place(key.encode()) for key in distinct.to_pylist()], pa.int64())
    partitions = pc.take(placed, pc.index_in(keys, value_set=distinct))
    out = []
    for source in pc.unique(table["source"]).to_pylist():
        of_source = pc.equal(table["source"], source)
        key = source.encode()
        for partition in pc.unique(pc.filter(partitions, of_source)).to_pylist():
            rows = table.filter(pc.and_(of_source, pc.equal(partitions, partition)))
            for start in range(0, rows.num_rows, CHUNK_ROWS):
                for value in _bounded(source, rows.slice(start, CHUNK_ROWS), max_bytes):
                    out.append((partition, key, value))
    return out


def _bounded(source: str, rows: pa.Table, max_bytes: int) -> list[bytes]:
    value = _columns_value(source, rows)
    if len(value) <= max_bytes or rows.num_rows == 1:
        return [value]
    half = rows.num_rows // 2
    return [
        *_bounded(source, rows.slice(0, half), max_bytes),
        *_bounded(source, rows.slice(half), max_bytes),
    ]


def _columns_value(source: str, rows: pa.Table) -> bytes:
    message: dict[str, Any] = {
        "type": "observations",
        "schema_version": SCHEMA_VERSION,
        "source": source,
    }
    for name in COLUMNS:
        column = rows[name]
        if name in _OPTIONAL and column.null_count == rows.num_rows:
            continue
        message[name] = column_values(column)
    return _encoder.encode(message)


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
    """``value`` decoded, or WireError: undecodable, the wrong shape or nested too deep.

    A message's own fields nest three levels at most, and msgspec checks each value's
    type as it reads it: a deeper value where a field expects text or a list of text
    fails at its first level. Only a field the message type does not know is read
    further (to skip it), and msgspec stops that at Python's recursion limit with a
    RecursionError. So no depth count runs on messages: on one of 1,000 observations
    as columns it cost three times the decoding.
    """
    try:
        return decoder.decode(value or b"")
    except msgspec.DecodeError as exc:
        raise WireError(f"not {what}: {exc}") from None
    except RecursionError:
        raise WireError(f"not {what}: nested too deep to read") from None


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
    if isinstance(message, ObservationsMessage):
        lengths = {len(c) for c in message.columns().values() if c is not None}
        if len(lengths) > 1:
            raise WireError(f"not an observations message: columns of lengths {sorted(lengths)}")
    return message


class RowError(WireError):
    """One row of an ``observations`` message that is not a valid observation."""

    def __init__(self, index: int, reason: str, payload: bytes, pool_id: str | None) -> None:
        super().__init__(f"row {index}: {reason}")
        self.index = index
        self.payload = payload  # the row as a one-observation JSON object
        self.pool_id = pool_id


def observation_rows(value: bytes | None) -> tuple[str, list[Observation | RowError]] | None:
    """An ``observations`` message that did not decode, row by row: its source and each
    row as an Observation or why it is not one.

    None when it is not such a message with every column a list of one length (a
    newer version, another shape): then the whole message is the rejection.
    """
    if value and too_deep(value):  # read as plain JSON, whatever nests in it
        return None
    try:
        message = _loose_decoder.decode(value or b"")
    except msgspec.DecodeError:
        return None
    source = message.get("source")
    version = message.get("schema_version")
    columns = {name: message[name] for name in COLUMNS if message.get(name) is not None}
    if (
        message.get("type") != "observations"
        or not isinstance(source, str)
        or not isinstance(version, int)
        or version > SCHEMA_VERSION
        or not all(isinstance(column, list) for column in columns.values())
        or not columns.keys() >= _REQUIRED
        or len({len(column) for column in columns.values()}) != 1
    ):
        return None
    rows: list[Observation | RowError] = []
    for i in range(len(next(iter(columns.values())))):
        fields = {"source": source} | {name: column[i] for name, column in columns.items()}
        payload = _encoder.encode(fields)
        try:
            rows.append(_observation_decoder.decode(payload))
        except msgspec.DecodeError as exc:
            pool_id = fields.get("pool_id")
            rows.append(
                RowError(i, str(exc), payload, pool_id if isinstance(pool_id, str) else None)
            )
    return source, rows


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
