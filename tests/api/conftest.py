"""One store for the API tests, built once: ``yieldstream demo``'s (every source's
recorded responses through the real pipeline), plus a product with three days of
half-hourly history under an id that needs encoding, and a few alerts.

Clients talk to the app in-process (httpx over ASGI); the store is real.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sinks.lake import Store
from sinks.writer import LakeWriter
from tests.sinks import yieldstream_exe
from yieldstream.api import create_app
from yieldstream.api.store import Readers
from yieldstream.contracts import Observation, make_observation
from yieldstream.settings import ApiSettings, Settings

# A product of its own: 3 days, two observations an hour (at :10 and :40).
SOURCE, POOL = "lido", "vault/a:b c"
PRODUCT = f"{SOURCE}:{POOL}"
START = datetime(2026, 3, 1, tzinfo=UTC)
HOURS = 72
H = timedelta(hours=1)
ALERTS = [
    ("a1", "apy_spike", "warning", "defillama-yields", "p1", START + H, None),
    ("a2", "stale_source", "critical", "okx", None, START + 5 * H, None),
    ("a3", "tvl_drawdown", "warning", "curve", "p2", START + 9 * H, START + 30 * H),
]


def history_observations() -> list[Observation]:
    rows = []
    for hour in range(HOURS):
        for minute in (10, 40):
            rows.append(
                make_observation(
                    {
                        "source": SOURCE,
                        "pool_id": POOL,
                        "observed_at": START + timedelta(hours=hour, minutes=minute),
                        "protocol": "lido",
                        "chain": "Ethereum",
                        "symbol": "stETH",
                        "product_id": "lido:ethereum:steth:test-vault",
                        "strategy": "staking",
                        "venue": "defi",
                        # The hour's last observation says hour + 0.5 (checked in tests).
                        "apy_pct": hour + minute / 80,
                        "tvl_usd": 1e6 + hour,
                    }
                )
            )
    return rows


def build(data_dir: Path) -> None:
    done = subprocess.run(
        [yieldstream_exe(), "demo", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=data_dir.parent,
    )
    assert done.returncode == 0, done.stderr
    writer = LakeWriter(Store(data_dir))
    try:
        observations = history_observations()
        writer.store(None, SOURCE, len(observations), observations, [])
        con = writer.con
        con.execute("BEGIN")
        for alert_id, kind, severity, source, pool, opened, cleared in ALERTS:
            con.execute(
                "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [alert_id, kind, source, pool, None, opened, json.dumps({"apy_pct": 9.5}),
                 severity, cleared, opened],
            )  # fmt: skip
        con.execute("COMMIT")
    finally:
        writer.close()


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data directory of the API tests' store (built once per test session)."""
    data_dir = tmp_path_factory.mktemp("api") / "data"
    build(data_dir)
    return data_dir


Client = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def make_client(store_dir: Path) -> Client:
    """``async with make_client(**api_settings) as client``: an app over the store."""

    @asynccontextmanager
    async def open_client(
        data_dir: Path | None = None,
        readers: Readers | None = None,
        alerts: dict[str, Any] | None = None,
        **api: Any,
    ) -> AsyncIterator[httpx.AsyncClient]:
        settings = Settings(
            data_dir=data_dir or store_dir, api=ApiSettings(**api), alerts=alerts or {}
        )
        app = create_app(settings, readers)
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client
        finally:
            app.state.readers.close()

    return open_client


@pytest.fixture
async def client(make_client: Client) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as opened:
        yield opened


@pytest.fixture
def everything(store_dir: Path) -> Iterator[Callable[[str], list[tuple[Any, ...]]]]:
    """Queries straight on the store (read-only), to compare the API's answers with."""
    import yieldstream

    con = yieldstream.connect(store_dir)
    try:
        yield lambda sql: con.execute(sql).fetchall()
    finally:
        con.close()
