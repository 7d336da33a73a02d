"""Over Kafka, hostile items are rejections on the DLQ, as in the embedded pipeline."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import orjson

from sinks.lake import Store
from tests.kafka.conftest import kafka_config, running
from tests.kafka.test_end_to_end import stored, wait_for
from tests.test_failures import POOLS_BODY
from yieldstream.items import MAX_DEPTH
from yieldstream.loopback import Reply, Route, recorded_routes
from yieldstream.settings import Settings

StartServer = Callable[[Mapping[str, Route] | None], tuple[str, dict[str, int]]]


def hostile_pools() -> bytes:
    """The recorded /pools with a deep item, a lone-surrogate id and a repeat added."""
    items = orjson.loads(POOLS_BODY)["data"]
    texts = [orjson.dumps(item) for item in items]
    deep = orjson.dumps({**items[0], "pool": "deep"})[:-1] + b',"x":' + b"[" * 1000
    deep += b"]" * 1000 + b"}"
    surrogate = orjson.dumps({**items[0], "pool": "X"}).replace(b'"X"', b'"\\udfff"')
    texts = [deep, surrogate, *texts, texts[0]]
    return b'{"status":"success","data":[' + b",".join(texts) + b"]}"


async def test_hostile_items_reach_the_store_as_decode_rejections(
    loopback: StartServer,
    make_settings: Callable[..., Settings],
    kafka_bootstrap: str,
    tmp_path: Path,
    steady_hour: None,
) -> None:
    url, _ = loopback({**recorded_routes(), "/pools": Reply(body=hostile_pools())})
    settings = make_settings(url, kafka=kafka_config(kafka_bootstrap), data_dir=tmp_path / "k")
    query = "SELECT stage, reason FROM rejections WHERE source = 'defillama-yields' ORDER BY 2"
    async with running(settings) as daemon:

        def complete() -> bool:
            assert not daemon.done(), daemon.exception() if daemon.done() else None
            if not Store(settings.data_dir).exists:
                return False
            rows = stored(settings, "SELECT count(*) FROM observations")[0][0]
            return bool(rows == 23 and len(stored(settings, query)) == 3)

        await wait_for(complete, 60, "23 observations and 3 rejections")
    reasons = stored(settings, query)
    assert [stage for stage, _ in reasons] == ["decode"] * 3
    assert reasons[0][1].startswith("duplicate id in one response")
    assert "lone surrogate" in reasons[1][1]
    assert reasons[2][1] == f"item nested deeper than {MAX_DEPTH} levels"
