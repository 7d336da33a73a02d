"""A daemon's /healthz, /readyz and /metrics on its metrics port (yieldstream.health)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import FIRST_SOURCES
from tests.sinks import daemon, daemon_env, tail
from tests.yieldstream.test_app import free_port
from yieldstream.app import run_pipeline
from yieldstream.loopback import Reply, Route, recorded_routes
from yieldstream.settings import Settings

StartServer = Callable[[Mapping[str, Route] | None], tuple[str, dict[str, int]]]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of a Prometheus exposition: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def until(
    check: Callable[[], Any], timeout_s: float, what: str, proc: Any = None, log: Path | None = None
) -> Any:
    """Poll ``check`` until it returns something true; that value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None:
            assert proc.poll() is None, tail(log) if log else "the daemon exited"
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def get(url: str) -> httpx.Response | None:
    """The response, or None while nothing answers there yet."""
    try:
        return httpx.get(url, timeout=3)
    except httpx.TransportError:
        return None


def held(route: Route, release: threading.Event) -> Callable[[], Reply]:
    """``route``, answered only once ``release`` is set (an upstream still answering)."""

    def answer() -> Reply:
        assert release.wait(30), "the test never released the upstream"
        return route() if callable(route) else route

    return answer


def test_a_daemon_is_ready_once_its_store_is_open_and_every_source_fetched(
    loopback: StartServer, tmp_path: Path, steady_hour: None
) -> None:
    """``yieldstream run``: /healthz at once, /readyz 503 while a first fetch is
    outstanding, 200 once it finished; the gauges and timings have values."""
    release = threading.Event()
    routes = recorded_routes()
    url, _ = loopback({**routes, "/pools": held(routes["/pools"], release)})
    port = free_port()
    env = daemon_env(url, tmp_path / "data", interval_s=3600)
    env["YIELDSTREAM_METRICS_PORT"] = str(port)
    env["YIELDSTREAM_SOURCES__DEFILLAMA_YIELDS__DEADLINE_S"] = "60"
    log = tmp_path / "daemon.log"
    base = f"http://127.0.0.1:{port}"
    started = time.time()
    with daemon(env, log) as proc:
        up = until(lambda: get(f"{base}/healthz"), 30, "/healthz", proc, log)
        assert up.status_code == 200
        assert up.json() == {"status": "ok"}

        def waiting_for_pools() -> dict[str, str] | None:
            answer = get(f"{base}/readyz")
            assert answer is not None
            assert answer.status_code == 503, answer.text
            waiting: dict[str, str] = answer.json()["waiting"]
            # The store opens and the other sources finish; /pools is still held.
            return waiting if set(waiting) == {"source:defillama-yields"} else None

        waiting = until(waiting_for_pools, 30, "only /pools outstanding", proc, log)
        assert waiting == {"source:defillama-yields": "first fetch not finished yet"}
        release.set()

        def ready() -> bool:
            answer = get(f"{base}/readyz")
            assert answer is not None
            return answer.status_code == 200 and answer.json() == {"status": "ready"}

        until(ready, 30, "/readyz 200", proc, log)

        def all_stored() -> Samples | None:
            found = samples(httpx.get(f"{base}/metrics").text)
            stored = [
                value(found, "yieldstream_observations_stored_total", source=name) or 0
                for name in FIRST_SOURCES
            ]
            return found if sum(stored) == 23 else None

        found = until(all_stored, 30, "the 23 observations stored", proc, log)
        for name in FIRST_SOURCES:
            last_ok = value(found, "yieldstream_source_last_success_timestamp_seconds", source=name)
            assert last_ok is not None
            assert started < last_ok <= time.time()
            assert value(found, "yieldstream_source_consecutive_failures", source=name) == 0
            assert value(found, "yieldstream_fetch_duration_seconds_count", source=name) == 1
            assert (value(found, "yieldstream_fetch_duration_seconds_sum", source=name) or 0) > 0
        assert (value(found, "yieldstream_sink_commit_seconds_count") or 0) >= 3
        assert value(found, "yieldstream_observations_stored_total", source="lido") == 8
        print(sorted(k for k in found if "reject" in k[0]))
        missing = get(f"{base}/nothing-here")
        assert missing is not None
        assert missing.status_code == 404

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, tail(log)
    assert get(f"{base}/healthz") is None  # the port is closed with the daemon


async def test_a_source_without_a_success_for_its_stale_threshold_makes_the_daemon_unready(
    loopback: StartServer, make_settings: Callable[..., Settings]
) -> None:
    """Stale as the stale_source alert judges it: no successful fetch for
    ``alerts.stale_after_h``; the failures in a row are a gauge."""
    down = Reply(503, b"down")
    url, _ = loopback({f"/v1/protocol/steth/apr/{path}": down for path in ("last", "sma")})
    port = free_port()
    settings = make_settings(
        url,
        enabled=("lido",),
        metrics_port=port,
        alerts={"stale_after_h": 1 / 3600},  # one second
        source_overrides={"lido": {"interval_s": 0.2, "attempts": 1}},
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_pipeline(settings, once=False, stop=stop, handle_signals=False))
    base = f"http://127.0.0.1:{port}"
    try:

        async def stale() -> dict[str, str]:
            answer = await asyncio.to_thread(get, f"{base}/readyz")
            if answer is None or answer.status_code != 503:
                return {}
            waiting: dict[str, str] = answer.json()["waiting"]
            return waiting if "stale" in waiting.get("source:lido", "") else {}

        deadline = time.monotonic() + 20
        while not (waiting := await stale()):
            assert not task.done(), task
            assert time.monotonic() < deadline, "lido never went stale"
            await asyncio.sleep(0.1)
        assert waiting["source:lido"].startswith("stale: no successful fetch for ")
        assert "(stale after 0.000277778 h; " in waiting["source:lido"]
        text = (await asyncio.to_thread(httpx.get, f"{base}/metrics")).text
        found = samples(text)
        failures = value(found, "yieldstream_source_consecutive_failures", source="lido")
        assert failures is not None
        assert failures >= 2
        assert value(found, "yieldstream_fetches_total", source="lido", outcome="failed")
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
