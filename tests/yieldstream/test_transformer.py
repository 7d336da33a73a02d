"""The transform stage in its worker process: results, and a worker that dies."""

from __future__ import annotations

import os
import signal

import pyarrow as pa
import structlog

from sinks.tables import observations_table
from tests.conftest import FETCHED_AT, raw, recorded
from transforms import Context
from yieldstream.contracts import Rejection
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
    ctx = Context({"maple": "Lending"})
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
    assert table.equals(observations_table(b.observations))
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
