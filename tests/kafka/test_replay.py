"""replay --from-kafka: a transform fix applied to what yields.raw holds, no duplicates."""

from __future__ import annotations

import subprocess
from pathlib import Path

import msgspec
import orjson

from tests.conftest import recorded, store_created
from tests.kafka.conftest import kafka_config, running
from tests.kafka.test_end_to_end import stored, wait_for
from tests.kafka.test_kill import store_counts
from tests.kafka.test_roles import pool_record
from tests.sinks import yieldstream_exe
from tests.yieldstream.test_replay import (
    POOLS,
    apy_in_basis_points,
    stored_apys,
    with_pools_transform,
)
from transforms import Context, Result
from yieldstream.bus import RAW
from yieldstream.contracts import RawRecord
from yieldstream.kafka import KafkaBus
from yieldstream.replay import replay_kafka
from yieldstream.settings import Settings
from yieldstream.transformer import RawBatch


def fixed_and_doubled(record: RawRecord, ctx: Context) -> Result:
    """Two changes at once: basis points fixed, and every APY doubled."""
    result = apy_in_basis_points(record, ctx)
    if isinstance(result, list):
        return [
            msgspec.structs.replace(o, apy_pct=None if o.apy_pct is None else o.apy_pct * 2)
            for o in result
        ]
    return result


async def test_replay_from_kafka_applies_a_fix_to_history_without_duplicates(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", kafka=kafka_config(kafka_bootstrap))
    records = [pool_record(f"pool-{i}", 3.0 + i) for i in range(20)]
    item = orjson.loads(recorded(POOLS, "pools-stablecoin_quant.json"))["data"][0]
    bps = msgspec.structs.replace(
        records[0],
        native_id="bps-pool",
        payload=orjson.dumps({**item, "pool": "bps-pool", "apy": 45_000_000.0}),
    )
    async with running(settings, frozenset({"transform", "sink"})):
        bus = KafkaBus(settings.kafka, batch_size=1000)
        await bus.start(produce=True, follow_reference=False)
        try:
            await bus.publish(RAW, POOLS, RawBatch("b1", POOLS, [*records, bps]))
        finally:
            await bus.aclose()

        def stored_all() -> bool:
            if not store_created(settings.data_dir):
                return False
            return bool(stored(settings, "SELECT count(*) FROM rejections")[0][0] == 1) and (
                store_counts(settings.data_dir)[1] == 20
            )

        await wait_for(stored_all, 60, "20 observations and the bps pool's rejection")
    before = stored_apys(settings.data_dir)
    fixed = with_pools_transform(fixed_and_doubled)

    dry = await replay_kafka(settings, only=[POOLS], dry_run=True, sources=fixed)
    assert (dry.records, dry.added, dry.changed) == (21, 1, 20)
    assert (dry.rejections_before, dry.rejections_after) == (1, 0)
    assert stored_apys(settings.data_dir) == before  # a dry run writes nothing

    done = await replay_kafka(settings, only=[POOLS], sources=fixed)
    assert (done.added, done.changed) == (1, 20)
    after = stored_apys(settings.data_dir)
    assert after == {
        **{k: v * 2 for k, v in before.items() if v is not None},
        "bps-pool": 900_000.0,
    }
    assert store_counts(settings.data_dir) == (21, 21)  # no duplicates
    assert stored(settings, "SELECT count(*) FROM rejections")[0][0] == 0

    again = await replay_kafka(settings, only=[POOLS], sources=fixed)
    assert (again.added, again.changed) == (0, 0)  # replaying twice changes nothing more
    assert store_counts(settings.data_dir) == (21, 21)


def test_from_offset_without_from_kafka_says_what_is_missing(tmp_path: Path) -> None:
    result = subprocess.run(
        [yieldstream_exe(), "-d", str(tmp_path), "replay", "--from-offset", "3"],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.decode().strip() == "error: --from-offset reads Kafka: add --from-kafka"
