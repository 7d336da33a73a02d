"""The Kafka bus: the pipeline's stages as separate processes, over Kafka topics.

This is the only module that imports aiokafka. :class:`KafkaBus` implements the same
:class:`~yieldstream.bus.Bus` Protocol as the in-process queues, so the pipeline code
is the same in both modes; what changes is what a publish and a commit mean:

* **publish** returns once the broker acknowledged every message (``acks=all``). A
  raw batch becomes one message per record on ``yields.raw``; an outcome becomes
  messages of up to 1,000 observations as columns on ``yields.observations`` (each
  on the partition its pools' keys map to) and one per rejection on ``yields.dlq``
  (formats in :mod:`yieldstream.wire`). Messages are built into
  per-partition batches directly (the partitioner is Kafka's murmur2 on the key, so
  one pool's records stay in order on one partition), compressed, and sent; the
  whole send is bounded by ``send_timeout_s`` and retried with backoff while the
  broker is unreachable. A retried send may duplicate messages: the sink is
  idempotent on the natural key, so correctness never depends on the producer.
* **subscribe** joins the role's consumer group and yields what was polled, grouped
  into batches of up to ``batch_size`` records; only the last message of a poll
  carries its offsets. The sink's batches hold their observations as one Arrow table
  per source, decoded from the columns without an Observation per row.
* **commit** commits those offsets, and is called by the pipeline only once the
  downstream step succeeded (outputs acknowledged, or the store's transaction
  committed). Before partitions are revoked in a rebalance, the listener waits for
  the messages in flight to be committed; a commit that fails anyway because the
  group moved on is logged and counted, and the messages are processed again by
  their new owner (the idempotent sink absorbs it).

Every call that could wait on the broker forever (start, send, commit, stop) has a
deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import pyarrow as pa
import stamina
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import DefaultPartitioner, murmur2

from sinks.tables import columns_table, observations_table
from yieldstream import alerts, metrics, wire
from yieldstream.bus import OBSERVATIONS, RAW, Message
from yieldstream.contracts import FetchReport, Observation, RawRecord, Rejection
from yieldstream.errors import ConfigError, RetriableError
from yieldstream.registry import sources as registered_sources
from yieldstream.settings import KafkaSettings
from yieldstream.transformer import Encoded, Outcome, RawBatch, WireOut

log = structlog.get_logger(__name__)

TOPIC_EXISTS: Final = 36  # Kafka's TOPIC_ALREADY_EXISTS error code
# Keep this much of an undecodable value in its rejection.
PAYLOAD_KEEP: Final = 64 * 1024
UNKNOWN_SOURCE: Final = "unknown"
PLACED_KEYS: Final = 500_000  # partitions remembered per topic (~100 MB at most)

Headers = list[tuple[str, bytes]]
Outgoing = tuple[bytes, bytes, Headers, int | None]  # key, value, headers, partition


class KafkaUnavailable(RetriableError):
    """The broker did not answer in time; the same call may succeed later."""


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Connection options shared by producers, consumers and the admin client."""
    if not settings.bootstrap_servers:
        raise ConfigError(
            "Kafka mode needs a broker: pass --kafka HOST:PORT or set KAFKA_BOOTSTRAP_SERVERS"
        )
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
        "request_timeout_ms": int(settings.send_timeout_s * 1000),
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = _ssl_context(settings)
    if settings.sasl_mechanism is not None:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options


def _ssl_context(settings: KafkaSettings) -> ssl.SSLContext:
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=settings.ssl_cafile and str(settings.ssl_cafile),
            certfile=settings.ssl_certfile and str(settings.ssl_certfile),
            keyfile=settings.ssl_keyfile and str(settings.ssl_keyfile),
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the Kafka TLS files ({exc}); check kafka.ssl_cafile, "
            "kafka.ssl_certfile and kafka.ssl_keyfile"
        ) from None
    return context


@dataclass(frozen=True, slots=True)
class Placement:
    """The partition of a key among ``partitions``, as Kafka's default partitioner
    places it (murmur2); picklable, for the transform worker."""

    partitions: int

    def __call__(self, key: bytes) -> int:
        return _partition_of(key, self.partitions)


@functools.lru_cache(maxsize=PLACED_KEYS)  # murmur2 is pure Python; pools come back
def _partition_of(key: bytes, partitions: int) -> int:
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


def _headers(source: str, stage: str, reason: str | None = None) -> Headers:
    headers = [("source", source.encode()), ("stage", stage.encode())]
    if reason is not None:
        headers.append(("reason", reason.encode()[:1024]))
    return headers


def _header(record: ConsumerRecord, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode("utf-8", "replace")
    return None


@dataclass(slots=True)
class _InFlight:
    """Messages handed to the pipeline and not committed yet."""

    count: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self) -> None:
        self.count += 1
        self.idle.clear()

    def done(self) -> None:
        self.count -= 1
        if self.count <= 0:
            self.count = 0
            self.idle.set()


@dataclass(frozen=True, slots=True)
class _Receipt:
    """What committing one message marks done (offsets only on a poll's last message)."""

    consumer: AIOKafkaConsumer
    offsets: Mapping[TopicPartition, int] | None
    in_flight: _InFlight


class _CommitBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Lets the messages in flight be committed before their partitions go."""

    def __init__(self, in_flight: _InFlight, group: str, timeout_s: float) -> None:
        self.in_flight = in_flight
        self.group = group
        self.timeout_s = timeout_s

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        if not revoked:
            return
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.in_flight.idle.wait()
        except TimeoutError:
            log.warning(
                "rebalance_in_flight",
                group=self.group,
                in_flight=self.in_flight.count,
                note="their commits may fail; the new owner processes them again",
            )
        log.info("partitions_revoked", group=self.group, partitions=_names(revoked))
        for tp in revoked:  # its new owner reports its lag
            with contextlib.suppress(KeyError):
                metrics.KAFKA_CONSUMER_LAG.remove(tp.topic, str(tp.partition))

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        log.info("partitions_assigned", group=self.group, partitions=_names(assigned))


def _names(partitions: Iterable[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}/{tp.partition}" for tp in partitions)


class KafkaBus:
    """The :class:`~yieldstream.bus.Bus` over Kafka; see the module docstring."""

    durable: Final = True

    def __init__(self, settings: KafkaSettings, *, batch_size: int, linger_s: float = 0.5) -> None:
        self.settings = settings
        self.batch_size = batch_size
        self.linger_s = linger_s
        self._options = client_options(settings)
        self._producer: AIOKafkaProducer | None = None
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}
        # key -> partition per topic: Kafka's murmur2 is pure Python in aiokafka
        # (~6 us a key), and the same pools come back every poll.
        self._placed: dict[str, dict[bytes, int]] = defaultdict(dict)
        self._closed: set[str] = set()
        self._reference: defaultdict[str, dict[str, str]] = defaultdict(dict)
        self._tail: asyncio.Task[None] | None = None
        # Sources other sources wait for: their records are handed over first.
        self._needed = frozenset(
            name for src in registered_sources().values() for name in src.after
        )

    # --- lifecycle --------------------------------------------------------------

    async def start(self, *, produce: bool, follow_reference: bool) -> None:
        """Create the topics if absent, start the producer, follow the reference data.

        A broker that cannot be reached within ``send_timeout_s`` is a one-line
        error (a daemon's supervisor restarts it; a typo in the address does not
        retry forever).
        """
        servers = self.settings.bootstrap_servers
        try:
            async with asyncio.timeout(self.settings.send_timeout_s):
                await self._retrying(self._ensure_topics)
        except TimeoutError:
            raise ConfigError(
                f"cannot reach Kafka at {servers} within {self.settings.send_timeout_s:g} s; "
                "check --kafka / KAFKA_BOOTSTRAP_SERVERS and that the broker is up"
            ) from None
        if produce:
            self._producer = await self._start_producer()
        if follow_reference:
            caught_up = asyncio.get_running_loop().create_future()
            self._tail = asyncio.create_task(self._follow_reference(caught_up))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.send_timeout_s):
                    await asyncio.shield(caught_up)

    async def _retrying(self, call: Callable[[], Awaitable[None]]) -> None:
        async for attempt in stamina.retry_context(
            on=(KafkaError, OSError), attempts=None, timeout=None, wait_max=5.0
        ):
            with attempt:
                await call()

    async def _ensure_topics(self) -> None:
        cfg = self.settings
        wanted = [
            NewTopic(name, cfg.partitions, cfg.replication_factor)
            for name in (cfg.topics.raw, cfg.topics.observations, cfg.topics.dlq, cfg.topics.alerts)
        ]
        wanted.append(
            NewTopic(
                cfg.topics.reference,
                1,
                cfg.replication_factor,
                topic_configs={"cleanup.policy": "compact"},
            )
        )
        admin = AIOKafkaAdminClient(**self._options)
        try:
            await admin.start()
            response = await admin.create_topics(wanted)
        finally:
            await admin.close()
        for name, code, message in response.topic_errors:
            if code not in (0, TOPIC_EXISTS):
                raise ConfigError(
                    f"cannot create Kafka topic {name!r} (error {code}: {message}); create it "
                    "yourself or fix kafka.partitions / kafka.replication_factor"
                )
            if code == 0:
                log.info("topic_created", topic=name)

    async def _start_producer(self) -> AIOKafkaProducer:
        cfg = self.settings
        producer = AIOKafkaProducer(
            **self._options,
            acks="all",
            enable_idempotence=cfg.idempotence,
            compression_type=None if cfg.compression == "none" else cfg.compression,
            linger_ms=cfg.linger_ms,
            max_batch_size=cfg.max_batch_bytes,
        )
        try:
            async with asyncio.timeout(cfg.send_timeout_s):
                await producer.start()
        except (TimeoutError, KafkaError) as exc:
            await self._stop(producer)
            if cfg.idempotence and not isinstance(exc, TimeoutError | KafkaConnectionError):
                raise ConfigError(
                    f"the Kafka broker at {cfg.bootstrap_servers} refused the idempotent "
                    f"producer ({type(exc).__name__}: {exc}); set kafka.idempotence = false "
                    "(YIELDSTREAM_KAFKA__IDEMPOTENCE=false) for brokers without it"
                ) from None
            raise ConfigError(
                f"cannot start a Kafka producer at {cfg.bootstrap_servers} "
                f"({type(exc).__name__}: {exc}); check --kafka / KAFKA_BOOTSTRAP_SERVERS"
            ) from None
        return producer

    async def _stop(self, client: AIOKafkaProducer | AIOKafkaConsumer) -> None:
        """Stop a client within the deadline (aiokafka's stop can otherwise hang)."""
        try:
            async with asyncio.timeout(self.settings.send_timeout_s):
                await _stopped(client)
        except (TimeoutError, KafkaError) as exc:
            log.warning("kafka_stop_failed", error=str(exc) or type(exc).__name__)

    async def aclose(self) -> None:
        """Stop the producer (flushing what is queued) and the reference follower."""
        if self._tail is not None:
            self._tail.cancel()
            await asyncio.gather(self._tail, return_exceptions=True)
        if self._producer is not None:
            await self._stop(self._producer)
            self._producer = None

    async def close(self, topic: str) -> None:
        """Subscriptions to ``topic`` in this process stop after what they handed out."""
        self._closed.add(topic)

    # --- publishing -------------------------------------------------------------

    async def publish(self, topic: str, key: str, value: Any) -> None:
        """Send what ``value`` holds as messages; returns once the broker acknowledged all."""
        topics = self.settings.topics
        out: dict[str, list[Outgoing]] = defaultdict(list)
        if isinstance(value, RawBatch):
            headers = _headers(value.source, "raw")
            for record in value.records:
                encoded = wire.encode_raw(record)
                if len(encoded) > self.settings.max_batch_bytes:
                    out[topics.dlq].append(self._too_large(record, len(encoded)))
                    continue
                record_key = f"{record.source}:{record.native_id}".encode()
                out[topics.raw].append((record_key, encoded, headers, None))
        elif isinstance(value, FetchReport):
            out[topics.observations].append(
                (
                    value.source.encode(),
                    wire.encode_fetch(value),
                    _headers(value.source, "fetch"),
                    None,
                )
            )
        elif isinstance(value, Outcome):
            out[topics.observations] = await self._observation_messages(value)
            out[topics.dlq] = [self._rejected(r) for r in value.rejections]
        elif isinstance(value, alerts.Alerts):
            out[topics.alerts] = [
                (a.key.encode(), alerts.encode(a), _headers(a.source, f"alert_{a.event}"), None)
                for a in value
            ]
        else:
            raise TypeError(f"cannot publish {type(value).__name__} to {topic}")
        await self._send_retrying(out)

    async def wire_out(self) -> WireOut:
        """How a transform worker encodes observations for ``yields.observations``."""
        topic = self.settings.topics.observations
        return WireOut(Placement(len(await self._partitions_of(topic))), self._message_bytes)

    @property
    def _message_bytes(self) -> int:
        return self.settings.max_batch_bytes // 2  # room for the batch's own framing

    async def _partitions_of(self, topic: str) -> list[int]:
        partitions = self._partitions.get(topic)
        if partitions is None:
            producer = self._producer
            if producer is None:
                raise RuntimeError("KafkaBus.start(produce=True) was not called")
            partitions = self._partitions[topic] = sorted(await producer.partitions_for(topic))
        return partitions

    async def _observation_messages(self, outcome: Outcome) -> list[Outgoing]:
        """An outcome's observations as messages, however the transform handed them over."""
        observations = outcome.observations
        if not isinstance(observations, Encoded):  # transformed on a thread
            topic = self.settings.topics.observations
            place = Placement(len(await self._partitions_of(topic)))
            if isinstance(observations, pa.Table):
                messages = wire.encode_table(observations, place, self._message_bytes)
            else:
                messages = wire.encode_observations(observations, place, self._message_bytes)
            observations = Encoded(messages, outcome.observed)
        headers = _headers(outcome.source, "observations")
        return [(key, value, headers, partition) for partition, key, value in observations]

    def _too_large(self, record: RawRecord, size: int) -> Outgoing:
        reason = (
            f"item is {size} bytes as a message, over kafka.max_batch_bytes "
            f"({self.settings.max_batch_bytes})"
        )
        return self._rejected(
            Rejection(
                source=record.source,
                endpoint=record.endpoint,
                stage="fetch",
                reason=reason,
                native_id=record.native_id,
                payload=record.payload[:PAYLOAD_KEEP],
                rejected_at=datetime.now(UTC),
                raw_id=record.raw_id,
            )
        )

    @staticmethod
    def _rejected(rejection: Rejection) -> Outgoing:
        metrics.DLQ_MESSAGES.labels(rejection.source, rejection.stage).inc()
        return (
            f"{rejection.source}:{rejection.native_id or rejection.raw_id}".encode(),
            wire.encode_rejection(rejection),
            _headers(rejection.source, rejection.stage, rejection.reason),
            None,
        )

    async def share_reference(self, source: str, values: Mapping[str, str]) -> None:
        """Publish reference data of ``source`` learned here for every transform worker."""
        self._reference[source].update(values)
        out: list[Outgoing] = [
            (
                f"{source}:{key}".encode(),
                wire.encode_reference(source, key, value),
                [("source", source.encode()), ("stage", b"reference")],
                None,
            )
            for key, value in values.items()
        ]
        await self._send_retrying({self.settings.topics.reference: out})

    def known_reference(self) -> Mapping[str, Mapping[str, str]]:
        return self._reference

    async def _send_retrying(self, out: Mapping[str, list[Outgoing]]) -> None:
        """Send until acknowledged; an unreachable broker is retried with backoff.

        Each attempt is bounded by ``send_timeout_s``; the retries go on until the
        broker is back or the task is cancelled (at shutdown), so a fetched snapshot
        is not given up while Kafka is only briefly away.
        """
        if not any(out.values()):
            return
        async for attempt in stamina.retry_context(
            on=(KafkaError, KafkaUnavailable), attempts=None, timeout=None, wait_max=10.0
        ):
            with attempt:
                try:
                    await self._send(out)
                except (KafkaError, KafkaUnavailable) as exc:
                    metrics.KAFKA_SEND_FAILURES.inc()
                    log.warning(
                        "kafka_send_failed",
                        error=str(exc) or type(exc).__name__,
                        attempt=attempt.num,
                        note="retrying",
                    )
                    raise

    async def _send(self, out: Mapping[str, list[Outgoing]]) -> None:
        producer = self._producer
        if producer is None:
            raise RuntimeError("KafkaBus.start(produce=True) was not called")
        pending: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(self.settings.send_timeout_s):
                for topic, messages in out.items():
                    if messages:
                        await self._send_topic(producer, topic, messages, pending)
                # Not gather: cancelling it (a timeout, a stop) would cancel aiokafka's
                # shields, and the batch futures behind them would fail unread.
                if pending:
                    done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                    for future in done:
                        future.result()
        except TimeoutError:
            raise KafkaUnavailable(
                f"Kafka did not acknowledge within {self.settings.send_timeout_s:g} s"
            ) from None
        finally:
            # A failed attempt's sends are not awaited: their outcome (an error once
            # the batch expires) is read when it comes, never left for the GC to log.
            for future in pending:
                _read_later(future)
        for topic, messages in out.items():
            metrics.KAFKA_MESSAGES_SENT.labels(topic).inc(len(messages))

    async def _send_topic(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        messages: list[Outgoing],
        futures: list[asyncio.Future[Any]],
    ) -> None:
        """Build per-partition batches straight from the messages and hand them over.

        A message without a partition goes where its key is placed. Each batch's future
        is added to ``futures`` as soon as it is handed over, so that an attempt cut
        short still reads the outcome of those it sent.
        """
        partitions = await self._partitions_of(topic)
        placed = self._placed[topic]
        if len(placed) > PLACED_KEYS:
            placed.clear()
        builders: dict[int, Any] = {}
        for key, value, headers, given in messages:
            if given is not None:  # placed by the worker: kept in range if partitions changed
                partition = partitions[given % len(partitions)]
            else:
                known = placed.get(key)
                if known is None:
                    known = placed[key] = self._partitioner(key, partitions, partitions)
                partition = known
            builder = builders.get(partition)
            if builder is None:
                builder = builders[partition] = producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
                futures.append(await producer.send_batch(builder, topic, partition=partition))
                builder = builders[partition] = producer.create_batch()
                builder.append(key=key, value=value, timestamp=None, headers=headers)
        for partition, builder in builders.items():
            futures.append(await producer.send_batch(builder, topic, partition=partition))

    # --- consuming --------------------------------------------------------------

    async def subscribe(self, topic: str) -> AsyncIterator[Message]:
        """Poll the role's consumer group; yields batches until :meth:`close`."""
        topics = self.settings.topics
        if topic == RAW:
            names, group = [topics.raw], self.settings.groups.transform
        elif topic == OBSERVATIONS:
            names, group = [topics.observations, topics.dlq], self.settings.groups.sink
        else:
            raise ValueError(f"no consumer for topic {topic!r}")
        in_flight = _InFlight()
        in_flight.idle.set()
        listener = _CommitBeforeRevoke(in_flight, group, self.settings.send_timeout_s)
        consumer = await self._join(topic, names, group, listener)
        if consumer is None:  # closed while joining
            return
        log.info("consumer_started", group=group, topics=names)
        try:
            while topic not in self._closed:
                polled = await self._poll(consumer, topic)
                if not polled:
                    continue
                offsets = {tp: records[-1].offset + 1 for tp, records in polled.items()}
                values = self._raw_batches(polled) if topic == RAW else self._downstream(polled)
                for i, value in enumerate(values):
                    in_flight.add()
                    last = i == len(values) - 1
                    receipt = _Receipt(consumer, offsets if last else None, in_flight)
                    yield Message(topic, "", value, receipt)
        finally:
            await self._stop(consumer)

    async def _join(
        self, topic: str, names: list[str], group: str, listener: ConsumerRebalanceListener
    ) -> AIOKafkaConsumer | None:
        """Start a consumer in ``group``, retrying until it joined.

        Joining waits for the group to rebalance, which after a member died lasts
        until that member's session expired: slow is normal, so it is retried (the
        broker was reached when the topics were checked).
        """
        attempt = 0
        while topic not in self._closed:
            attempt += 1
            consumer = AIOKafkaConsumer(
                **self._options,
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                group_instance_id=self.settings.instance_id,
                session_timeout_ms=self.settings.session_timeout_ms,
                heartbeat_interval_ms=self.settings.session_timeout_ms // 3,
                max_poll_interval_ms=300_000,
                max_partition_fetch_bytes=self.settings.fetch_partition_bytes,
                fetch_max_bytes=max(self.settings.fetch_partition_bytes * 4, 50 * 1024 * 1024),
            )
            consumer.subscribe(names, listener=listener)
            try:
                async with asyncio.timeout(
                    self.settings.send_timeout_s + self.settings.session_timeout_ms / 1000
                ):
                    await consumer.start()
            except asyncio.CancelledError:
                await self._stop(consumer)
                raise
            except (TimeoutError, KafkaError) as exc:
                await self._stop(consumer)
                log.warning(
                    "consumer_join_retry",
                    group=group,
                    attempt=attempt,
                    error=str(exc) or type(exc).__name__,
                )
                await asyncio.sleep(min(2.0 * attempt, 10.0))
                continue
            return consumer
        return None

    async def _poll(
        self, consumer: AIOKafkaConsumer, topic: str
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Up to ``batch_size`` records, waiting at most ``linger_s`` for more."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger_s
        polled: dict[TopicPartition, list[ConsumerRecord]] = {}
        count = 0
        while count < self.batch_size and topic not in self._closed:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            got = await consumer.getmany(
                timeout_ms=int(remaining * 1000), max_records=self.batch_size - count
            )
            for tp, records in got.items():
                polled.setdefault(tp, []).extend(records)
                count += len(records)
        await _note_lag(consumer)
        return polled

    async def commit(self, message: Message) -> None:
        """Commit the offsets ``message`` carries; a failure is logged, not raised.

        A commit that fails (the group rebalanced, the broker is away) leaves the
        messages to be processed again, which the idempotent sink absorbs.
        """
        receipt = message.receipt
        if not isinstance(receipt, _Receipt):
            return
        try:
            if receipt.offsets is not None:
                async with asyncio.timeout(self.settings.send_timeout_s):
                    await receipt.consumer.commit(dict(receipt.offsets))
        except (TimeoutError, KafkaError) as exc:
            metrics.KAFKA_COMMIT_FAILURES.inc()
            log.warning(
                "kafka_commit_failed",
                error=str(exc) or type(exc).__name__,
                note="these messages will be processed again",
            )
        finally:
            receipt.in_flight.done()

    def _raw_batches(self, polled: Mapping[TopicPartition, list[ConsumerRecord]]) -> list[Any]:
        """Raw records grouped by source; undecodable values become rejections."""
        by_source: dict[str, list[RawRecord]] = defaultdict(list)
        poison: dict[str, list[Rejection]] = defaultdict(list)
        for records in polled.values():
            for record in records:
                try:
                    raw = wire.decode_raw(record.value)
                except wire.WireError as exc:
                    rejection = _poison(record, exc)
                    poison[rejection.source].append(rejection)
                    continue
                by_source[raw.source].append(raw)
        # Sources others wait for (reference data) first, as the collector sent them.
        batches = [
            RawBatch(uuid.uuid4().hex, source, by_source[source], rejections=poison.pop(source, []))
            for source in sorted(by_source, key=lambda source: source not in self._needed)
        ]
        batches.extend(
            RawBatch(uuid.uuid4().hex, source, [], rejections=rejections)
            for source, rejections in poison.items()
        )
        return batches

    def _downstream(self, polled: Mapping[TopicPartition, list[ConsumerRecord]]) -> list[Any]:
        """Observations (a table per source) and rejections grouped by source, and fetch
        reports. Of an ``observations`` message that does not decode, the valid rows
        are kept and each other row is a rejection."""
        observations: dict[str, _Parts] = defaultdict(_Parts)
        rejections: dict[str, list[Rejection]] = defaultdict(list)
        reports: list[Any] = []
        count: dict[str, int] = defaultdict(int)
        for records in polled.values():
            for record in records:
                try:
                    value = wire.decode_downstream(record.value)
                except wire.WireError as exc:
                    if (rows := wire.observation_rows(record.value)) is not None:
                        source, salvaged = rows
                        for row in salvaged:
                            if isinstance(row, wire.RowError):
                                rejections[source].append(_poison_row(record, source, row))
                            else:
                                observations[source].add(row)
                        count[source] += len(salvaged)
                        continue
                    rejection = _poison(record, exc)
                    rejections[rejection.source].append(rejection)
                    count[rejection.source] += 1
                    continue
                if isinstance(value, wire.ObservationsMessage):
                    table = columns_table(value.source, value.columns())
                    observations[value.source].parts.append(table)
                    count[value.source] += table.num_rows
                    continue
                if isinstance(value, wire.ObservationMessage):
                    observations[value.source].add(value)
                elif isinstance(value, wire.RejectionMessage):
                    rejections[value.source].append(wire.rejection_of(value))
                else:
                    reports.append(
                        FetchReport(
                            value.source,
                            value.run_id,
                            value.started_at,
                            value.ok,
                            value.records,
                            value.error,
                        )
                    )
                    continue
                count[value.source] += 1
        outcomes = [
            Outcome(
                uuid.uuid4().hex,
                source,
                count[source],
                observations[source].table() if source in observations else [],
                rejections.get(source, []),
            )
            for source in count
        ]
        return [*reports, *outcomes]

    # --- replay -----------------------------------------------------------------

    async def read_raw(
        self, *, since: datetime | None = None, from_offset: int | None = None, idle_s: float = 3.0
    ) -> AsyncIterator[list[RawBatch]]:
        """Read ``yields.raw`` as it is now, outside any group: batches per poll.

        From the first message at or after ``since`` (the messages' timestamps), or
        from ``from_offset`` in every partition, or from the beginning; until a poll
        finds nothing new for ``idle_s``. Commits nothing: the live groups are not
        disturbed.
        """
        topic = self.settings.topics.raw
        consumer = AIOKafkaConsumer(**self._options, group_id=None, enable_auto_commit=False)
        try:
            async with asyncio.timeout(self.settings.send_timeout_s):
                await consumer.start()
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            if not partitions:
                raise ConfigError(f"Kafka has no topic {topic!r}; check kafka.topics.raw")
            consumer.assign(partitions)
            await self._seek(consumer, partitions, since, from_offset)
            loop = asyncio.get_running_loop()
            quiet_since = loop.time()
            while loop.time() - quiet_since < idle_s:
                polled = await consumer.getmany(timeout_ms=500, max_records=self.batch_size)
                if polled:
                    quiet_since = loop.time()
                    yield self._raw_batches(polled)
        except (TimeoutError, KafkaError) as exc:
            raise ConfigError(
                f"cannot read {topic!r} from Kafka at {self.settings.bootstrap_servers} "
                f"({type(exc).__name__}: {exc}); check --kafka / KAFKA_BOOTSTRAP_SERVERS"
            ) from None
        finally:
            await self._stop(consumer)

    @staticmethod
    async def _seek(
        consumer: AIOKafkaConsumer,
        partitions: list[TopicPartition],
        since: datetime | None,
        from_offset: int | None,
    ) -> None:
        if since is not None:
            found = await consumer.offsets_for_times(
                {tp: int(since.timestamp() * 1000) for tp in partitions}
            )
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                at = found.get(tp)
                consumer.seek(tp, at.offset if at is not None else ends[tp])
        elif from_offset is not None:
            for tp in partitions:
                consumer.seek(tp, from_offset)
        else:
            await consumer.seek_to_beginning(*partitions)

    # --- reference data -------------------------------------------------------------

    async def _follow_reference(self, caught_up: asyncio.Future[None]) -> None:
        """Keep every source's reference data from the compacted reference topic."""
        topic = self.settings.topics.reference
        consumer = AIOKafkaConsumer(**self._options, group_id=None, enable_auto_commit=False)
        try:
            await consumer.start()
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            while True:
                got = await consumer.getmany(timeout_ms=1000)
                for records in got.values():
                    for record in records:
                        try:
                            message = wire.decode_reference(record.value)
                        except wire.WireError as exc:
                            log.warning("reference_message_invalid", error=str(exc))
                            continue
                        self._reference[message.source][message.key] = message.value
                if not caught_up.done() and await _reached(consumer, ends):
                    caught_up.set_result(None)
                    log.info(
                        "reference_loaded",
                        keys={source: len(values) for source, values in self._reference.items()},
                    )
        except KafkaError as exc:
            log.warning("reference_follow_failed", error=str(exc) or type(exc).__name__)
        finally:
            if not caught_up.done():
                caught_up.set_result(None)
            await self._stop(consumer)


async def _stopped(client: AIOKafkaProducer | AIOKafkaConsumer) -> None:
    """``client.stop()``, past a cancellation aiokafka 0.14 raises on its own.

    A consumer's fetcher cancels its fetch tasks at stop and awaits them; a task
    cancelled while it sleeps after a failed fetch (the broker away) re-raises the
    CancelledError, out of ``stop()``, in a task nobody cancelled. That ended a
    daemon stopped during an outage with a traceback. Here the rest of the stop is
    done (the other fetch tasks, the connections) and the stop is complete; a
    cancellation of the caller's own task is raised as usual.
    """
    try:
        await client.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise
        fetcher = getattr(client, "_fetcher", None)
        for fetch in list(getattr(fetcher, "_pending_tasks", ())):
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fetch
        connections = getattr(client, "_client", None)
        if connections is not None:
            await connections.close()
        log.info("kafka_consumer_stopped", note="aiokafka raised a stray cancellation; ignored")


def _read_later(future: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a send nobody waits for any more, once it comes."""
    if future.done():
        _read(future)
    else:
        future.add_done_callback(_read)


def _read(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def _note_lag(consumer: AIOKafkaConsumer) -> None:
    """Each assigned partition's lag: its high watermark less the consumer's position.

    The high watermark comes with fetch responses: a partition not fetched yet has none.
    """
    for tp in list(consumer.assignment()):
        if tp not in consumer.assignment():  # revoked while the one before was read
            continue
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        try:
            position = await consumer.position(tp)
        except KafkaError:  # no longer assigned
            continue
        metrics.KAFKA_CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(
            max(0, highwater - position)
        )


async def _reached(consumer: AIOKafkaConsumer, ends: Mapping[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


@dataclass(slots=True)
class _Parts:
    """One source's observations of a poll, in arrival order: tables, and runs of
    one-observation messages."""

    parts: list[pa.Table | list[Observation]] = field(default_factory=list)

    def add(self, observation: Observation) -> None:
        if not self.parts or isinstance(self.parts[-1], pa.Table):
            self.parts.append([])
        last = self.parts[-1]
        assert isinstance(last, list)
        last.append(observation)

    def table(self) -> pa.Table:
        tables = [p if isinstance(p, pa.Table) else observations_table(p) for p in self.parts]
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def _poison_row(record: ConsumerRecord, source: str, row: wire.RowError) -> Rejection:
    """A row of an ``observations`` message that is not a valid observation."""
    return Rejection(
        source=source,
        endpoint=f"kafka:{record.topic}",
        stage="decode",
        reason=str(row),
        native_id=row.pool_id,
        payload=row.payload[:PAYLOAD_KEEP],
        rejected_at=datetime.now(UTC),
        raw_id=f"kafka:{record.topic}/{record.partition}/{record.offset}/{row.index}",
    )


def _poison(record: ConsumerRecord, exc: Exception) -> Rejection:
    """A message nobody can decode, as a rejection that names where it was."""
    value = bytes(record.value or b"")
    return Rejection(
        source=_header(record, "source") or UNKNOWN_SOURCE,
        endpoint=f"kafka:{record.topic}",
        stage="decode",
        reason=str(exc),
        native_id=bytes(record.key).decode("utf-8", "replace") if record.key else None,
        payload=value[:PAYLOAD_KEEP],
        rejected_at=datetime.now(UTC),
        # Where the message is: the same message is the same rejection, once.
        raw_id=f"kafka:{record.topic}/{record.partition}/{record.offset}",
    )
