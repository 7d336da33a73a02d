"""``yieldstream serve`` as a process: binds loopback, answers, stops on SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.sinks import process, stop, tail, yieldstream_exe


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_serve_answers_and_stops_on_sigterm(store_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    env = {"PATH": "/usr/bin:/bin", "YIELDSTREAM_LOG_FORMAT": "json"}
    argv = [yieldstream_exe(), "-d", str(store_dir), "serve", "--port", str(port)]
    with process(argv, env, log) as server:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, tail(log)
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, tail(log)
            time.sleep(0.2)
        products = httpx.get(f"{base}/v1/products", params={"limit": 5}, timeout=10)
        docs = httpx.get(f"{base}/docs", timeout=10)
        assert products.status_code == 200
        assert len(products.json()["items"]) == 5
        assert docs.status_code == 200
        with socket.socket() as other:  # loopback only by default
            other.settimeout(1)
            assert other.connect_ex((_outward_address(), port)) != 0
        assert stop(server, signal.SIGTERM) == 0
    assert '"api_serving"' in log.read_text()


def _outward_address() -> str:
    """This machine's address on its network (not loopback), or one that is never served."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET: no packet is sent
            return str(probe.getsockname()[0])
        except OSError:
            return "192.0.2.1"


def test_bad_api_settings_are_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [yieldstream_exe(), "serve"],
        env={"PATH": "/usr/bin:/bin", "YIELDSTREAM_API__RATE_LIMIT": "lots"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "api.rate_limit" in done.stderr
    assert "YIELDSTREAM_API__RATE_LIMIT" in done.stderr
