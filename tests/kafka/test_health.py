"""The three roles' /readyz and /metrics over a real Kafka-protocol broker."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.conftest import store_created
from tests.kafka.broker import Proxy, free_port
from tests.kafka.conftest import kafka_config, kafka_env
from tests.kafka.test_end_to_end import StartServer, stored
from tests.sinks import daemon, daemon_env, tail
from tests.yieldstream.test_health import Samples, get, samples, until, value
from yieldstream.settings import Settings


def lags(found: Samples, topic: str) -> dict[str, float]:
    """The consumer lag of each partition of ``topic``, by partition."""
    return {
        dict(labels)["partition"]: got
        for (name, labels), got in found.items()
        if name == "yieldstream_kafka_consumer_lag" and dict(labels)["topic"] == topic
    }


@pytest.mark.timeout(120)
def test_each_role_is_ready_when_its_parts_are_and_reports_its_consumer_lag(
    loopback: StartServer, kafka_bootstrap: str, tmp_path: Path, steady_hour: None
) -> None:
    url, _ = loopback(None)
    config = kafka_config(kafka_bootstrap, send_timeout_s=30.0)
    env = {**daemon_env(url, tmp_path / "data", interval_s=3600), **kafka_env(config)}
    ports = {role: free_port() for role in ("collect", "transform", "sink")}
    # The transform daemon reaches the broker through a proxy not started yet.
    proxy = Proxy(free_port(), int(kafka_bootstrap.rsplit(":", 1)[1]))
    behind = {**env, "YIELDSTREAM_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{proxy.port}"}
    log = tmp_path / "daemons.log"
    base = {role: f"http://127.0.0.1:{port}" for role, port in ports.items()}

    def on_port(env: dict[str, str], role: str) -> dict[str, str]:
        return {**env, "YIELDSTREAM_METRICS_PORT": str(ports[role])}

    def ready(role: str) -> bool:
        answer = get(f"{base[role]}/readyz")
        return answer is not None and answer.status_code == 200

    try:
        with (
            daemon(on_port(behind, "transform"), log, command="transform") as transform,
            daemon(on_port(env, "sink"), log, command="sink") as sink,
        ):

            def unready_transform() -> dict[str, str] | None:
                answer = get(f"{base['transform']}/readyz")
                return answer.json() if answer is not None else None

            answer = until(unready_transform, 30, "transform /readyz", transform, log)
            assert answer == {"status": "not ready", "waiting": {"bus": "Kafka not reached yet"}}
            proxy.start()
            until(lambda: ready("transform"), 30, "transform ready", transform, log)
            until(lambda: ready("sink"), 30, "sink ready", sink, log)
            with daemon(on_port(env, "collect"), log, command="collect") as collect:
                until(lambda: ready("collect"), 60, "collect ready", collect, log)
                found = samples(httpx.get(f"{base['collect']}/metrics").text)
                for source in ("defillama-yields", "defillama-protocols", "lido"):
                    assert value(
                        found, "yieldstream_source_last_success_timestamp_seconds", source=source
                    )
                    assert (
                        value(found, "yieldstream_source_consecutive_failures", source=source) == 0
                    )

                settings = Settings(data_dir=tmp_path / "data")

                def complete() -> bool:
                    return (
                        store_created(settings.data_dir)
                        and stored(settings, "SELECT count(*) FROM observations")[0][0] == 23
                    )

                until(complete, 60, "the store to fill", sink, log)
                topics = config["topics"]

                def caught_up(role: str, topic: str) -> Samples | None:
                    """The role's metrics once it polled every message of ``topic``."""
                    found = samples(httpx.get(f"{base[role]}/metrics").text)
                    partitions = lags(found, topic)
                    return found if partitions and set(partitions.values()) == {0.0} else None

                found = until(
                    lambda: caught_up("transform", topics["raw"]), 30, "transform lag", transform
                )
                assert set(lags(found, topics["raw"])) <= {"0", "1", "2", "3"}
                found = until(
                    lambda: caught_up("sink", topics["observations"]), 30, "sink lag", sink
                )
                assert set(lags(found, topics["observations"])) <= {"0", "1", "2", "3"}
                assert (value(found, "yieldstream_sink_commit_seconds_count") or 0) >= 1
                for proc in (collect, transform, sink):
                    proc.send_signal(signal.SIGTERM)
                    assert proc.wait(15) == 0, tail(log)
    finally:
        proxy.cut()
