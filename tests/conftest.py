"""Shared test fixtures: recorded responses, a loopback server, settings in tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from yieldstream.contracts import RawRecord
from yieldstream.loopback import Route, recorded_routes, serve
from yieldstream.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
FETCHED_AT = datetime(2026, 3, 12, 12, 34, 56, tzinfo=UTC)


def recorded(source: str, name: str) -> bytes:
    """A recorded real response from tests/fixtures/<source>/<name>."""
    return (FIXTURES / source / name).read_bytes()


def raw(
    source: str,
    payload: bytes,
    *,
    endpoint: str = "/x",
    native_id: str = "n1",
    fetched_at: datetime = FETCHED_AT,
) -> RawRecord:
    return RawRecord(
        source=source,
        endpoint=endpoint,
        fetched_at=fetched_at,
        run_id="test",
        kind="snapshot",
        native_id=native_id,
        payload=payload,
    )


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings with the store in tmp_path and every source pointed at ``base_url``.

    Retries are fast (short waits) so that failure tests run in seconds.
    """

    def factory(
        base_url: str,
        *,
        data_dir: Path | None = None,
        source_overrides: Mapping[str, Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> Settings:
        sources = {}
        for name in ("defillama-yields", "defillama-protocols", "lido"):
            sources[name] = {
                "base_url": base_url,
                "rate_per_s": 100.0,
                "wait_initial_s": 0.01,
                "wait_max_s": 0.2,
                "deadline_s": 5.0,
                "attempts": 3,
                **(source_overrides or {}).get(name, {}),
            }
        return Settings(data_dir=data_dir or tmp_path / "data", sources=sources, **kwargs)

    return factory


@pytest.fixture
def loopback() -> Iterator[Callable[[Mapping[str, Route] | None], tuple[str, dict[str, int]]]]:
    """Start loopback servers; by default serving every recorded response at its real path."""
    from contextlib import ExitStack

    with ExitStack() as stack:

        def start(routes: Mapping[str, Route] | None = None) -> tuple[str, dict[str, int]]:
            return stack.enter_context(serve(recorded_routes() if routes is None else routes))

        yield start


@pytest.fixture
def steady_hour() -> None:
    """DefiLlama rows are keyed by fetch hour: start a test well inside one hour."""
    import time

    now = datetime.now(UTC)
    if now.minute == 59 and now.second >= 45:
        time.sleep(61 - now.second)
