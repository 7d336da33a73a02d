"""The daemon on a full disk: it logs, stops fetching, keeps what it holds, resumes when
space returns, and stops on request (ENOSPC injected into the Parquet writer)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.conftest import query
from tests.sinks.test_space import FullDisk
from yieldstream.app import run_pipeline
from yieldstream.loopback import Route
from yieldstream.settings import Settings

StartServer = Callable[[Mapping[str, Route] | None], tuple[str, dict[str, int]]]
NAMES = ("defillama-yields", "defillama-protocols", "lido")


def _settings(
    loopback: StartServer, make_settings: Callable[..., Settings]
) -> tuple[Settings, dict[str, int]]:
    url, hits = loopback(None)
    fast = {name: {"interval_s": 0.05} for name in NAMES}
    return make_settings(url, source_overrides=fast, queue_batches=1, transform_processes=0), hits


async def _until(condition: Callable[[], bool]) -> None:
    """Poll ``condition``: what it watches (a patched writer, captured logs) has no event."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - nothing to wait on but the condition
            await asyncio.sleep(0.05)


def _stored(logs: Sequence[Mapping[str, Any]]) -> int:
    return sum(int(e["stored"]) for e in logs if e["event"] == "batch_stored")


async def test_a_full_disk_stops_fetching_and_the_daemon_resumes_with_space(
    loopback: StartServer,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    steady_hour: None,
) -> None:
    settings, hits = _settings(loopback, make_settings)
    disk = FullDisk(monkeypatch)
    stop = asyncio.Event()
    with capture_logs() as logs:
        daemon = asyncio.create_task(
            run_pipeline(settings, once=False, stop=stop, handle_signals=False)
        )
        await _until(lambda: disk.failed >= 2)
        await asyncio.sleep(1.0)  # the queues fill up: polling stops
        fetched = sum(hits.values())
        await asyncio.sleep(1.0)
        assert sum(hits.values()) == fetched, "it kept fetching on a full disk"
        assert not daemon.done()
        disk.free()
        # Every source's held batch is stored before the stop: which comes first is a race.
        await _until(lambda: _stored(logs) >= 23)
        stop.set()
        stats = await asyncio.wait_for(daemon, timeout=10)
    events = [e["event"] for e in logs]
    assert events.count("store_disk_full") == 1
    assert "store_disk_space_back" in events
    assert stats.stored == 23
    data_dir = settings.data_dir
    assert query(data_dir, "SELECT count(*) FROM observations") == [(23,)]
    # Nothing archived is left unstored.
    pending = "SELECT count(*) FROM (SELECT batch_id FROM batches WHERE stage = 'archived' "
    pending += "EXCEPT SELECT batch_id FROM batches WHERE stage = 'stored')"
    assert query(data_dir, pending) == [(0,)]


async def test_a_daemon_waiting_for_space_stops_on_request(
    loopback: StartServer, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _ = _settings(loopback, make_settings)
    disk = FullDisk(monkeypatch)
    stop = asyncio.Event()
    daemon = asyncio.create_task(
        run_pipeline(settings, once=False, stop=stop, handle_signals=False)
    )
    await _until(lambda: disk.failed >= 1)
    started = time.monotonic()
    stop.set()  # what SIGTERM does
    await asyncio.wait_for(daemon, timeout=15)
    assert time.monotonic() - started < 11  # the drain's 9 s, then the wait is interrupted
