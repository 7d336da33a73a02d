"""Kafka fixtures: one tansu broker per session (or $KAFKA_BOOTSTRAP_SERVERS).

Joining a consumer group takes seconds with this broker, so the broker is shared
and every test gets its own topics and group ids instead.
"""

from __future__ import annotations

import asyncio
import gc
import os
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.kafka.broker import free_port, tansu
from yieldstream.app import run_pipeline
from yieldstream.pipeline import ALL_ROLES, Role
from yieldstream.settings import KafkaSettings, Settings

REAL_KAFKA = bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))


@pytest.fixture(autouse=True)
def _collect_aiokafka_leftovers() -> Iterator[None]:
    """Collect, quietly, the broker connections aiokafka itself leaves unclosed.

    aiokafka 0.14 now and then leaves a connection behind when a group consumer
    stops while its coordinator reconnects (aio-libs/aiokafka#715, #1019, open).
    Collected later, its ``__del__`` warns after the test ended and fails the run;
    collecting here, after each test, keeps that warning out of other tests.
    """
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    if REAL_KAFKA:
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    with tansu(free_port()) as bootstrap:
        yield bootstrap


def kafka_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """Settings for one test: its own topics and groups on the shared broker."""
    tag = uuid.uuid4().hex[:8]
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "topics": {
            "raw": f"raw-{tag}",
            "observations": f"observations-{tag}",
            "dlq": f"dlq-{tag}",
            "reference": f"reference-{tag}",
        },
        "groups": {"transform": f"transform-{tag}", "sink": f"sink-{tag}"},
        "partitions": 4,
        # tansu cannot start an idempotent producer; a real Kafka can.
        "idempotence": REAL_KAFKA,
        "send_timeout_s": 10.0,
    }
    config.update(overrides)
    return config


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings.model_validate(kafka_config(kafka_bootstrap))


def kafka_env(config: dict[str, Any], prefix: str = "YIELDSTREAM_KAFKA") -> dict[str, str]:
    """``config`` as the YIELDSTREAM_KAFKA__* variables a daemon reads."""
    env: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}__{key.upper()}"
        if isinstance(value, dict):
            env.update(kafka_env(value, name))
        else:
            env[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


@asynccontextmanager
async def running(
    settings: Settings, roles: frozenset[Role] = ALL_ROLES
) -> AsyncIterator[asyncio.Task[Any]]:
    """``roles`` over Kafka in this process for the block; stopped (within 15 s) after it."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_pipeline(settings, once=False, stop=stop, handle_signals=False, roles=roles, kafka=True)
    )
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
