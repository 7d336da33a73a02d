"""docker-compose.yml and deploy/prometheus.yml, read (no Docker engine needed).

The health-check command of the roles runs for real, against a daemon's metrics
server (yieldstream.health), so a probe that passes on a 503 fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.yieldstream.test_app import free_port
from yieldstream.health import Health, Server

ROOT = Path(__file__).parents[1]
ROLES = ("collect", "transform", "sink")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="module")
def scrape() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    return loaded


def probe(service: dict[str, Any]) -> list[str]:
    """The service's health-check command (exec form: no shell in between)."""
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD", test
    return list(test[1:])


def metrics_port(service: dict[str, Any]) -> int:
    return int(service["environment"]["YIELDSTREAM_METRICS_PORT"])


def test_every_role_checks_readyz_on_its_metrics_port(compose: dict[str, Any]) -> None:
    for role in ROLES:
        service = compose["services"][role]
        assert service["command"] == [role]
        port = metrics_port(service)
        assert service["environment"]["YIELDSTREAM_METRICS_HOST"] == "0.0.0.0"
        command = probe(service)
        assert command[:2] == ["python", "-c"]  # the image has Python, not curl
        assert f"http://127.0.0.1:{port}/readyz" in command[2]
        check = service["healthcheck"]
        assert {"interval", "timeout", "retries", "start_period"} <= set(check)


@pytest.mark.parametrize("ready", [False, True])
def test_the_roles_probe_fails_on_503_and_passes_on_200(
    compose: dict[str, Any], ready: bool
) -> None:
    service = compose["services"]["sink"]
    command = probe(service)
    health = Health()
    if not ready:
        health.waiting("store", "not opened yet")
    port = free_port()
    server = Server("127.0.0.1", port, health)
    try:
        code = command[2].replace(f":{metrics_port(service)}/", f":{port}/")
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, timeout=30, check=False
        )
    finally:
        server.close()
    assert (done.returncode == 0) is ready, done.stderr.decode()
    if not ready:
        assert b"HTTP Error 503" in done.stderr


def test_the_api_serves_on_all_interfaces_published_on_loopback(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    command = api["command"]
    assert command[0] == "serve"
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "8000"
    assert api["ports"] == ["127.0.0.1:8000:8000"]
    assert "http://127.0.0.1:8000/healthz" in probe(api)[2]
    # The lake the sinks write, with their catalog.
    sink = compose["services"]["sink"]
    assert api["volumes"] == sink["volumes"]
    assert api["environment"]["YIELDSTREAM_CATALOG"] == sink["environment"]["YIELDSTREAM_CATALOG"]


def test_prometheus_runs_with_the_scrape_config(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:v")
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert prometheus["ports"] == ["127.0.0.1:9090:9090"]


def test_the_scrape_config_names_every_role_metrics_port_and_the_api(
    compose: dict[str, Any], scrape: dict[str, Any]
) -> None:
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    assert set(jobs) == {*ROLES, "api"}
    for role in ROLES:
        # Every replica: a DNS lookup of the service answers one address per container.
        (found,) = jobs[role]["dns_sd_configs"]
        assert found == {
            "names": [role],
            "type": "A",
            "port": metrics_port(compose["services"][role]),
        }
        assert jobs[role].get("metrics_path", "/metrics") == "/metrics"
    assert jobs["api"]["static_configs"] == [{"targets": ["api:8000"]}]
    assert jobs["api"]["metrics_path"] == "/metrics"


def test_nothing_is_published_beyond_loopback(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
