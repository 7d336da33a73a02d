"""Every registered source, end to end: one poll against the recorded responses."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tests.conftest import ALL, query
from yieldstream.app import run_pipeline
from yieldstream.loopback import Route
from yieldstream.registry import sources
from yieldstream.settings import Settings

StartServer = Callable[[Mapping[str, Route] | None], tuple[str, dict[str, int]]]


async def test_run_once_stores_rows_from_every_source(
    loopback: StartServer, make_settings: Callable[..., Settings]
) -> None:
    url, _ = loopback(None)
    settings = make_settings(url, enabled=ALL)
    stats = await run_pipeline(settings, once=True, handle_signals=False)
    assert stats.fetch_failures == 0
    assert stats.rejected == 0
    data_dir = settings.data_dir
    stored = dict(query(data_dir, "SELECT source, count(*) FROM observations GROUP BY source"))
    assert set(stored) == set(sources())
    assert all(count > 0 for count in stored.values())
    fetches = query(data_dir, "SELECT source, bool_and(ok) FROM fetches GROUP BY source")
    assert dict(fetches) == dict.fromkeys(sources(), True)
    # Staking, lending and farming, DeFi and CeFi, side by side.
    kinds = {
        tuple(r) for r in query(data_dir, "SELECT DISTINCT strategy, venue FROM latest_yields")
    }
    assert {
        ("staking", "defi"),
        ("lending", "cefi"),
        ("lending", "defi"),
        ("farming", "defi"),
    } <= kinds
    assert ("staking", "cefi") in kinds
