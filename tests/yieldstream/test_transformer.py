"""The transform stage in its worker process: results, and a worker that dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import cast

import pyarrow as pa
import pytest
import structlog

from sinks.tables import observations_table
from tests.conftest import FETCHED_AT, raw, recorded
from transforms import Context
from yieldstream.contracts import Observation, Rejection
from yieldstream.registry import sources
from yieldstream.transformer import RawBatch, Transformer

POOLS = "defillama-yields"


def pools_batch(batch_id: str) -> RawBatch:
    import orjson

    items = orjson.loads(recorded(POOLS, "pools-stablecoin_quant.json"))["data"]
    bad = {**items[0], "pool": "bad", "apy": 2e6}
    records = [
        raw(POOLS, orjson.dumps(item), endpoint="/pools", native_id=item["pool"])
        for item in [*items, bad]
    ]
    return RawBatch(batch_id, POOLS, records)


async def test_worker_process_gives_the_same_outcome_as_a_thread() -> None:
    source = sources()[POOLS]
    ctx = Context({"defillama-protocols": {"maple": "Lending"}})
    in_process = Transformer(processes=1)
    on_thread = Transformer(processes=0)
    try:
        a = await in_process.run(pools_batch("b1"), source, ctx)
        b = await on_thread.run(pools_batch("b1"), source, ctx)
    finally:
        in_process.close()
        on_thread.close()
    table = a.observations
    assert isinstance(table, pa.Table)
    on_thread_table = b.observations  # a list, or a table from a columnar transform
    if not isinstance(on_thread_table, pa.Table):
        on_thread_table = observations_table(cast(list[Observation], on_thread_table))
    assert table.equals(on_thread_table)
    assert table.num_rows == 5

    def same(r: Rejection) -> tuple[str, str, str, bytes]:
        return (r.raw_id, r.stage, r.reason, r.payload)

    assert [same(r) for r in a.rejections] == [same(r) for r in b.rejections]
    assert [r.native_id for r in a.rejections] == ["bad"]
    strategies = dict(
        zip(
            table["protocol"].to_pylist(),
            table["strategy"].to_pylist(),
            strict=True,
        )
    )
    assert strategies["maple"] == "lending"
    assert table["observed_at"][0].as_py() == FETCHED_AT.replace(minute=0, second=0)


async def test_a_killed_worker_is_replaced_and_the_batch_retried() -> None:
    source = sources()[POOLS]
    transformer = Transformer(processes=1)
    try:
        first = await transformer.run(pools_batch("b1"), source, Context())
        pool = transformer._pool
        for pid in list(pool._processes):  # type: ignore[attr-defined]
            os.kill(pid, signal.SIGKILL)
        with structlog.testing.capture_logs() as logs:
            again = await transformer.run(pools_batch("b2"), source, Context())
    finally:
        transformer.close()
    assert again.observations.equals(first.observations)
    assert transformer._pool is not pool
    assert [e["event"] for e in logs] == ["transform_worker_died"]


async def test_a_worker_started_from_a_thread_that_ended_lives_on() -> None:
    """The parent-death signal follows the thread that started a worker: started
    from another thread, the worker must not die when that thread ends."""
    made: list[Transformer] = []

    def start() -> None:
        made.append(Transformer(processes=1))
        made[0]._pool.submit(os.getpid).result(timeout=60)  # the worker is up

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    transformer = made[0]
    pool = transformer._pool
    try:
        with structlog.testing.capture_logs() as logs:
            outcome = await transformer.run(pools_batch("b1"), sources()[POOLS], Context())
    finally:
        transformer.close()
    assert isinstance(outcome.observations, pa.Table)
    assert outcome.observations.num_rows == 5
    assert transformer._pool is pool
    assert logs == []


@pytest.mark.parametrize("pdeathsig", [True, False])
def test_a_worker_whose_parent_died_before_it_started_exits(pdeathsig: bool) -> None:
    """The worker compares its parent with the pid its parent gave it: another one
    (the parent died while the worker was starting) and it exits at once."""
    code = (
        "from yieldstream.transformer import _start_worker; "
        f"_start_worker({os.getpid() + 10**6}, {pdeathsig}); print('still running')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 1, done.stderr
    assert "still running" not in done.stdout
