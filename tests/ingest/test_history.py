"""History URLs built from upstream ids: one escaped path segment, or no request at all."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import httpx
import orjson
import pytest

from ingest._history import Window, fetch_history
from ingest.defillama_yields import HISTORY, Config
from tests.conftest import recorded
from yieldstream.backfill import LogReporter, backfill
from yieldstream.errors import UnsafeId
from yieldstream.loopback import Reply, Route, recorded_routes
from yieldstream.settings import Settings

StartServer = Callable[[Mapping[str, Route] | None], tuple[str, dict[str, int]]]
CHART = recorded("defillama-yields", "chart-d829b642-from-cn-doc.json")
SECRET = Reply(body=b'{"status":"success","data":[{"timestamp":"2026-01-01T00:00:00Z"}]}')


async def history_of(base: str, entity: str) -> int:
    async with httpx.AsyncClient() as client:
        records = await fetch_history(
            client,
            Config(base_url=base, attempts=1),
            HISTORY,
            source="defillama-yields",
            entity=entity,
            run_id="r",
            window=Window(),
        )
    return len(records)


@pytest.mark.parametrize(
    "entity", ["../../admin", "..", ".", "", "a/b", "a\\b", "%2e%2e/admin", "a\x00b", "\udfff"]
)
async def test_an_id_that_would_change_the_path_is_never_requested(
    loopback: StartServer, entity: str
) -> None:
    base, hits = loopback({"/admin": SECRET, "/chart/admin": SECRET})
    with pytest.raises(UnsafeId, match="entity not requested"):
        await history_of(base, entity)
    assert hits == {}


async def test_other_characters_are_percent_encoded_in_one_segment(loopback: StartServer) -> None:
    base, hits = loopback({"/chart/a%20b%3Fc%23d%25e%C3%A9": Reply(body=CHART)})
    assert await history_of(base, "a b?c#d%eé") == 8
    assert hits == {"/chart/a%20b%3Fc%23d%25e%C3%A9": 1}


def test_a_listed_pool_named_to_climb_the_path_fails_and_requests_nothing_else(
    loopback: StartServer, make_settings: Callable[..., Settings]
) -> None:
    pools = orjson.loads(recorded_routes()["/pools"].body)  # type: ignore[union-attr]
    good = pools["data"][0]["pool"]
    pools["data"] = [pools["data"][0], {**pools["data"][1], "pool": "../../admin"}]
    routes = {
        **recorded_routes(),
        "/pools": Reply(body=orjson.dumps(pools)),
        f"/chart/{good}": Reply(body=CHART),
        "/admin": SECRET,
    }
    base, hits = loopback(routes)
    summary = asyncio.run(
        backfill(make_settings(base), "defillama-yields", reporter=LogReporter(every_s=3600))
    )
    assert (summary.done, summary.failed) == (1, 1)
    reason = dict(summary.failures)["../../admin"]
    assert "would change the path" in reason
    assert "/admin" not in hits
    assert sorted(p for p in hits if p.startswith("/chart")) == [f"/chart/{good}"]
