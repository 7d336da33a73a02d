"""The embedded daemon wired by yieldstream.app: metrics, stop signal, sources."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Mapping

import httpx
import pytest
from prometheus_client import REGISTRY

from yieldstream.app import run_pipeline
from yieldstream.errors import ConfigError
from yieldstream.loopback import Reply, Route, recorded_routes
from yieldstream.settings import Settings

LIDO = {"source": "lido"}
StartServer = Callable[[Mapping[str, Route] | None], tuple[str, dict[str, int]]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_metrics_count_fetched_stored_and_rejected(
    loopback: StartServer, make_settings: Callable[..., Settings]
) -> None:
    url, _ = loopback(None)
    port = free_port()
    settings = make_settings(url, metrics_port=port)
    stop = asyncio.Event()
    daemon = asyncio.create_task(
        run_pipeline(settings, once=False, stop=stop, handle_signals=False)
    )
    # The counters are the process's: other tests in it may have counted lido rows.
    before = REGISTRY.get_sample_value("yieldstream_observations_stored_total", LIDO) or 0.0
    lido = f'yieldstream_observations_stored_total{{source="lido"}} {before + 8}'
    text = ""
    try:
        async with httpx.AsyncClient() as client, asyncio.timeout(30):
            while lido not in text:
                assert not daemon.done(), daemon
                await asyncio.sleep(0.1)
                with contextlib.suppress(httpx.TransportError):
                    text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    finally:
        stop.set()
        stats = await asyncio.wait_for(daemon, 15)
    assert stats.stored == 23
    assert 'yieldstream_fetches_total{outcome="ok",source="defillama-yields"}' in text


async def test_daemon_polls_again_after_its_interval_and_stops_on_request(
    loopback: StartServer, make_settings: Callable[..., Settings], steady_hour: None
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    routes = recorded_routes()
    pools = routes["/pools"]
    assert isinstance(pools, Reply)
    calls = 0

    def third_poll_stops() -> Reply:
        nonlocal calls
        calls += 1
        if calls == 3:
            loop.call_soon_threadsafe(stop.set)
        return pools

    url, _ = loopback({**routes, "/pools": third_poll_stops})
    names = ("defillama-yields", "defillama-protocols", "lido")
    settings = make_settings(url, source_overrides={n: {"interval_s": 0.2} for n in names})
    stats = await asyncio.wait_for(
        run_pipeline(settings, once=False, stop=stop, handle_signals=False), timeout=10
    )
    assert calls == 3
    assert stats.fetch_failures == 0
    assert stats.stored == 23  # later polls within the same hour add nothing
    assert stats.duplicates >= 2 * 9


async def test_a_metrics_port_in_use_is_a_config_error(
    make_settings: Callable[..., Settings],
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = make_settings("http://127.0.0.1:9", metrics_port=port)
        with pytest.raises(ConfigError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            await run_pipeline(settings, once=True, handle_signals=False)
