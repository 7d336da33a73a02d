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
import prometheus_client
import structlog
from aiolimiter import AsyncLimiter

from ingest._http import RateLimitedTransport, SourceConfig
from sinks.lake import Store
from sinks.writer import LakeWriter
from yieldstream import __version__
from yieldstream.bus import MemoryBus
from yieldstream.errors import ConfigError
from yieldstream.pipeline import Pipeline, RunStats
from yieldstream.registry import Source, source, sources
from yieldstream.settings import Settings
from yieldstream.transformer import Transformer

log = structlog.get_logger(__name__)
USER_AGENT = f"yieldstream/{__version__}"


def store_of(settings: Settings) -> Store:
    return Store(settings.data_dir, settings.catalog)


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


def client_for(cfg: SourceConfig, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    inner = transport or httpx.AsyncHTTPTransport(retries=0)
    limiter = AsyncLimiter(max_rate=cfg.rate_per_s, time_period=1.0)
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
) -> RunStats:
    """Run the embedded pipeline until stopped (or once through every source)."""
    chosen = selected(settings, only)
    configs: Mapping[str, SourceConfig] = {n: settings.source_config(n) for n in chosen}
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    if settings.metrics_port is not None:
        try:
            prometheus_client.start_http_server(settings.metrics_port, addr=settings.metrics_host)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port} "
                f"({exc.strerror or exc}); choose another metrics_port"
            ) from None
    writer = LakeWriter(store_of(settings), compact_every=settings.compact_every)
    try:
        async with AsyncExitStack() as stack:
            clients = {
                name: await stack.enter_async_context(client_for(cfg, transport))
                for name, cfg in configs.items()
            }
            pipeline = Pipeline(
                sources=chosen,
                configs=configs,
                clients=clients,
                writer=writer,
                bus=MemoryBus(settings.queue_batches),
                batch_size=settings.batch_size,
                transformer=Transformer(settings.transform_processes),
            )
            log.info(
                "pipeline_started", sources=list(chosen), once=once, data_dir=str(settings.data_dir)
            )
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
        writer.close()
