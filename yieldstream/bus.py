"""The bus between stages: one small Protocol, an in-process implementation here.

Topics (ARCHITECTURE.md): ``yields.raw`` carries raw record batches from collectors,
``yields.observations`` carries transform outcomes (observations, rejections and
fetch reports) to the sink; ``yields.alerts`` carries the alerts the sink opened or
cleared (Kafka mode only). The embedded bus is a set of bounded asyncio queues:
a full queue makes the producer wait (back-pressure), and :meth:`MemoryBus.close`
lets consumers drain what is queued before they stop, so a clean shutdown loses
nothing. Messages are committed once the consumer's downstream step is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Protocol

RAW: Final = "yields.raw"
OBSERVATIONS: Final = "yields.observations"
# Alerts the sink opened or cleared, published after the store committed them. Only
# a durable bus carries them: in one process the store's alerts table is the feed.
ALERTS: Final = "yields.alerts"


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    key: str
    value: Any
    receipt: Any = None  # what the bus needs to commit it (Kafka: offsets)


class Bus(Protocol):
    @property
    def durable(self) -> bool:
        """True when an acknowledged publish survives this process (Kafka)."""

    async def publish(self, topic: str, key: str, value: Any) -> None:
        """Hand a message to the bus; returns once the bus has accepted it."""

    def subscribe(self, topic: str) -> AsyncIterator[Message]:
        """Messages of ``topic`` in order, until the topic is closed."""

    async def commit(self, message: Message) -> None:
        """Mark ``message`` done: its downstream effects are durable."""

    async def close(self, topic: str) -> None:
        """No more messages will be published to ``topic``."""

    async def share_reference(self, source: str, values: Mapping[str, str]) -> None:
        """Make reference data of ``source`` learned here known to every transform worker."""

    def known_reference(self) -> Mapping[str, Mapping[str, str]]:
        """Reference data other workers shared, by the source that provides it."""


_CLOSED: Final = object()


class MemoryBus:
    """Bounded in-process queues, one per topic."""

    durable: Final = False

    def __init__(self, maxsize: int = 4) -> None:
        self._maxsize = maxsize
        self._queues: dict[str, asyncio.Queue[Any]] = {}

    def _queue(self, topic: str) -> asyncio.Queue[Any]:
        if topic not in self._queues:
            self._queues[topic] = asyncio.Queue(self._maxsize)
        return self._queues[topic]

    async def publish(self, topic: str, key: str, value: Any) -> None:
        await self._queue(topic).put(Message(topic, key, value))

    async def subscribe(self, topic: str) -> AsyncIterator[Message]:
        queue = self._queue(topic)
        while True:
            item = await queue.get()
            if item is _CLOSED:
                return
            yield item

    async def commit(self, message: Message) -> None:
        self._queue(message.topic).task_done()

    async def close(self, topic: str) -> None:
        await self._queue(topic).put(_CLOSED)

    async def share_reference(self, source: str, values: Mapping[str, str]) -> None:
        """One process: the transformer that learned them is the only one."""

    def known_reference(self) -> Mapping[str, Mapping[str, str]]:
        return _NONE


_NONE: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType({})
