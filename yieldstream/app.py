"""Entry-point wiring: settings -> HTTP clients, store writer, bus, pipeline.

This is the only place that builds ``httpx.AsyncClient`` objects; collectors get
theirs handed in (tests pass a transport of their own).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping
from contextlib import AsyncExitStack

import httpx
import structlog
from aiolimiter import AsyncLimiter

from ingest._http import RateLimitedTransport, SourceConfig
from sinks.alerts import Alerting
from sinks.writer import LakeWriter
from yieldstream import __version__, heap
from yieldstream.bus import Bus, MemoryBus
from yieldstream.errors import ConfigError
from yieldstream.health import Health, Server
from yieldstream.pipeline import ALL_ROLES, Pipeline, Role, RunStats
from yieldstream.registry import Source, source, sources
from yieldstream.settings import Settings, store_of
from yieldstream.transformer import Transformer

log = structlog.get_logger(__name__)
USER_AGENT = f"yieldstream/{__version__}"


def selected(settings: Settings, only: list[str] | None) -> dict[str, Source]:
    """The enabled sources (or exactly ``only``), validated against the registry."""
    known = sources()
    for name in only or ():
        source(name)  # a ConfigError naming the known sources
    if only:
        chosen = {name: src for name, src in known.items() if name in only}
    else:
        chosen = {n: s for n, s in known.items() if settings.source_config(n).enabled}
    if not chosen:
        raise ConfigError("no source is enabled; enable one in yieldstream.toml or pass --source")
    return chosen


def client_for(
    cfg: SourceConfig,
    transport: httpx.AsyncBaseTransport | None,
    *,
    rate_per_s: float | None = None,
) -> httpx.AsyncClient:
    inner = transport or httpx.AsyncHTTPTransport(retries=0)
    limiter = AsyncLimiter(max_rate=rate_per_s or cfg.rate_per_s, time_period=1.0)
    return httpx.AsyncClient(
        transport=RateLimitedTransport(inner, limiter),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
        timeout=httpx.Timeout(cfg.deadline_s),
    )


async def run_pipeline(
    settings: Settings,
    *,
    once: bool,
    only: list[str] | None = None,
    stop: asyncio.Event | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    handle_signals: bool = True,
    roles: frozenset[Role] = ALL_ROLES,
    kafka: bool = False,
) -> RunStats:
    """Run the pipeline until stopped (or once through every source).

    Embedded (the default): every role in this process over in-memory queues.
    With ``kafka``: the given ``roles`` over the Kafka topics in ``settings.kafka``.
    """
    collects = "collect" in roles
    chosen = selected(settings, only) if collects else {}
    configs: Mapping[str, SourceConfig] = {n: settings.source_config(n) for n in chosen}
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    try:
        async with AsyncExitStack() as stack:
            health = _health(settings, roles, chosen, kafka=kafka)
            if settings.metrics_port is not None:
                stack.callback(_serve_metrics(settings, settings.metrics_port, health).close)
            writer = None
            if "sink" in roles:
                # A daemon waits out a full disk: it stops fetching, resumes with space.
                writer = LakeWriter(
                    store_of(settings), compact_every=settings.compact_every, wait_for_space=True
                )
                stack.callback(writer.close)
            alerting = None
            if writer is not None and settings.alerts.enabled:
                alerting = Alerting(settings.alerts, _expected(settings, chosen))
            bus: Bus
            wire_out = None  # how a transform encodes for Kafka
            if kafka:
                from yieldstream.kafka import KafkaBus  # the one module importing aiokafka

                kafka_bus = KafkaBus(settings.kafka, batch_size=settings.batch_size)
                stack.push_async_callback(kafka_bus.aclose)
                await kafka_bus.start(
                    # A sink publishes the alerts it opened.
                    produce=bool(roles & {"collect", "transform"}) or alerting is not None,
                    follow_reference="transform" in roles,
                )
                health.ready("bus")
                bus = kafka_bus
                if "transform" in roles:
                    wire_out = await kafka_bus.wire_out()
            else:
                bus = MemoryBus(settings.queue_batches)
            clients = {
                name: await stack.enter_async_context(client_for(cfg, transport))
                for name, cfg in configs.items()
            }
            pipeline = Pipeline(
                sources=chosen,
                configs=configs,
                clients=clients,
                writer=writer,
                bus=bus,
                batch_size=settings.batch_size,
                transformer=Transformer(
                    settings.transform_processes,
                    wire_out=wire_out,
                )
                if "transform" in roles
                else None,
                roles=roles,
                alerting=alerting,
                health=health,
            )
            log.info(
                "pipeline_started",
                roles=sorted(roles),
                mode="kafka" if kafka else "embedded",
                sources=list(chosen),
                once=once,
                data_dir=str(settings.data_dir) if writer else None,
            )
            if kafka and not once:  # a long-lived role: measured in bench/kafka.py
                heap.settle()
            stats = await pipeline.run(once=once, stop=stop)
            log.info(
                "pipeline_stopped",
                fetched=stats.fetched,
                stored=stats.stored,
                duplicates=stats.duplicates,
                rejected=stats.rejected,
                fetch_failures=stats.fetch_failures,
            )
            return stats
    finally:
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def _expected(settings: Settings, polled: Mapping[str, Source]) -> tuple[str, ...]:
    """The sources whose fetches the stale check expects: those this process polls,
    else (a sink on its own) every enabled one."""
    if polled:
        return tuple(polled)
    return tuple(name for name in sources() if settings.source_config(name).enabled)


def _health(
    settings: Settings, roles: frozenset[Role], polled: Mapping[str, Source], *, kafka: bool
) -> Health:
    """What ``/readyz`` waits for in these roles (:mod:`yieldstream.health`)."""
    health = Health(stale_after_s=settings.alerts.stale_after_h * 3600)
    if "sink" in roles:
        health.waiting("store", "not opened yet")
    if kafka:
        health.waiting("bus", "Kafka not reached yet")
    health.polls(polled)
    return health


def _serve_metrics(settings: Settings, port: int, health: Health) -> Server:
    """``/metrics``, ``/healthz`` and ``/readyz`` on the metrics port (close it after)."""
    try:
        server = Server(settings.metrics_host, port, health)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {settings.metrics_host}:{port} "
            f"({exc.strerror or exc}); choose another metrics_port"
        ) from None
    log.info("metrics_serving", host=server.host, port=server.port)
    return server
