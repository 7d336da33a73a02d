"""The broker unreachable for 30 seconds: nothing crashes or hangs, work resumes."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import query, store_created
from tests.kafka.broker import Proxy, free_port, tansu
from tests.kafka.conftest import kafka_config, kafka_env
from tests.kafka.test_end_to_end import StartServer
from tests.sinks import daemon, daemon_env, tail

pytestmark = pytest.mark.slow

OUTAGE_S = 30


def fetches(data_dir: Path) -> int:
    if not store_created(data_dir):
        return 0
    ((count,),) = query(data_dir, "SELECT count(*) FROM fetches")
    return int(count)


def wait_until(
    check: Callable[[], bool], timeout_s: float, log: Path, proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert proc.poll() is None, tail(log)
        assert time.monotonic() < deadline, tail(log)
        time.sleep(0.25)


@contextmanager
def behind_a_proxy(
    url: str, tmp_path: Path
) -> Iterator[tuple[Proxy, subprocess.Popen[bytes], Path, Path]]:
    """``run --kafka`` (Lido only) to a broker reached through a proxy the test can cut;
    yields the proxy, the daemon, its data directory and its log."""
    broker_port, proxy_port = free_port(), free_port()
    proxy = Proxy(proxy_port, broker_port)
    with tansu(broker_port, advertised_port=proxy_port) as bootstrap:
        proxy.start()
        data_dir = tmp_path / "data"
        config = kafka_config(bootstrap, send_timeout_s=5.0, session_timeout_ms=6000)
        env = {**daemon_env(url, data_dir, interval_s=1.0), **kafka_env(config)}
        log = tmp_path / "run.log"
        with daemon(env, log, "--kafka", bootstrap, "--source", "lido") as proc:
            yield proxy, proc, data_dir, log


@pytest.mark.timeout(240)
def test_broker_away_30_s_then_back_every_role_recovers(
    report: Callable[[str], None], loopback: StartServer, tmp_path: Path
) -> None:
    url, _ = loopback(None)
    with behind_a_proxy(url, tmp_path) as (proxy, proc, data_dir, log):
        wait_until(lambda: fetches(data_dir) >= 2, 60, log, proc)
        proxy.cut()
        cut_at = time.monotonic()
        before = fetches(data_dir)
        while time.monotonic() - cut_at < OUTAGE_S:
            assert proc.poll() is None, tail(log)
            time.sleep(0.5)
        during = fetches(data_dir) - before
        proxy.start()
        # Fetch reports flow collector -> Kafka -> sink again.
        wait_until(lambda: fetches(data_dir) >= before + during + 3, 90, log, proc)
        resumed_after = time.monotonic() - cut_at - OUTAGE_S
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, tail(log)
        stop_s = time.monotonic() - stopped_at
    text = log.read_text()
    assert '"event":"kafka_send_failed"' in text  # the outage was seen, and retried
    report(
        f"broker away {OUTAGE_S} s: fetch reports stored before {before}, during {during}; "
        f"new ones stored {resumed_after:.1f} s after it came back; SIGTERM exit in {stop_s:.1f} s"
    )
    assert during <= 1  # at most one that was on its way when the proxy was cut


# What an asyncio task or future left with an exception nobody read logs at exit.
UNREAD = ("Future exception was never retrieved", "Task exception was never retrieved")


@pytest.mark.timeout(180)
def test_sigterm_during_an_outage_exits_0_without_a_traceback(
    report: Callable[[str], None], loopback: StartServer, tmp_path: Path
) -> None:
    url, _ = loopback(None)
    with behind_a_proxy(url, tmp_path) as (proxy, proc, data_dir, log):
        wait_until(lambda: fetches(data_dir) >= 2, 90, log, proc)
        proxy.cut()
        # Stopped while sends fail and are retried, consumers reconnect.
        wait_until(lambda: "kafka_send_failed" in log.read_text(), 30, log, proc)
        time.sleep(2.0)
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
        stop_s = time.monotonic() - stopped_at
    text = log.read_text(errors="replace")
    assert code == 0, tail(log, 40)
    assert "Traceback" not in text, tail(log, 40)
    for unread in UNREAD:
        assert unread not in text, tail(log, 40)
    report(f"SIGTERM during a broker outage: exit {code} in {stop_s:.1f} s")
