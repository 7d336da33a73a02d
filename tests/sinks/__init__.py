"""Store tests on the real DuckDB/DuckLake engine, and what the process tests share.

The process tests (``test_kill``, ``test_readers``) run the daemon as a real process
against a loopback server whose ``/pools`` answers a new snapshot on every call:
recorded real pool records under new pool ids, so every fetch creates new keys.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from sinks.lake import Store
from sinks.writer import LakeWriter
from tests.conftest import FIRST_SOURCES, others_disabled
from yieldstream.contracts import Observation, make_observation
from yieldstream.loopback import Reply, Route, recorded_routes

FIXTURES = Path(__file__).parents[1] / "fixtures"
StartServer = Callable[[Mapping[str, Route] | None], tuple[str, dict[str, int]]]
SOURCES = FIRST_SOURCES
POOLS_PER_RESPONSE = 5_000

# Raw /pools records and stored observations, keyed the way the transform keys them:
# DefiLlama's observed_at is the fetch time floored to the hour.
RAW_POOL_KEYS = """
    SELECT DISTINCT source, native_id AS pool_id, date_trunc('hour', fetched_at) AS observed_at
    FROM raw_records WHERE source = 'defillama-yields' AND endpoint = '/pools'
"""
STORED_POOL_KEYS = """
    SELECT source, pool_id, observed_at FROM observations WHERE source = 'defillama-yields'
"""


def lido_observations(prefix: str, n: int, moment: datetime) -> list[Observation]:
    """``n`` minimal stETH observations at ``moment``, pool ids ``<prefix>-<i>``."""
    return [
        make_observation(
            {
                "source": "lido",
                "pool_id": f"{prefix}-{i}",
                "observed_at": moment,
                "protocol": "lido",
                "chain": "Ethereum",
                "symbol": "stETH",
                "product_id": "lido:ethereum:steth",
                "strategy": "staking",
                "venue": "defi",
                "apy_pct": 3.1,
            }
        )
        for i in range(n)
    ]


def recorded_pools() -> list[dict[str, Any]]:
    """Every recorded real ``/pools`` item."""
    items: list[dict[str, Any]] = []
    for name in ("pools-stablecoin_quant.json", "pools-2records-from-cn-doc.json"):
        items.extend(orjson.loads((FIXTURES / "defillama-yields" / name).read_bytes())["data"])
    return items


class FreshPools:
    """A ``/pools`` route answering ``size`` recorded items under new pool ids each call."""

    def __init__(self, size: int = POOLS_PER_RESPONSE) -> None:
        self.size = size
        self.calls = 0
        self._template = recorded_pools()
        self._next = itertools.count()
        self._lock = threading.Lock()

    def __call__(self) -> Reply:
        with self._lock:
            snapshot = next(self._next)
            self.calls += 1
        items = [
            {**self._template[i % len(self._template)], "pool": f"fresh-{snapshot:05d}-{i:05d}"}
            for i in range(self.size)
        ]
        return Reply(body=orjson.dumps({"status": "success", "data": items}))


def routes_with(pools: FreshPools) -> dict[str, Route]:
    """Every recorded response at its real path, with ``/pools`` answering ``pools``."""
    return {**recorded_routes(), "/pools": pools}


def daemon_env(base_url: str, data_dir: Path, *, interval_s: float = 0.3) -> dict[str, str]:
    """The environment of a daemon polling every source at ``base_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIELDSTREAM_")}
    env.update(
        YIELDSTREAM_DATA_DIR=str(data_dir),
        YIELDSTREAM_LOG_FORMAT="json",
        YIELDSTREAM_BATCH_SIZE="2000",  # several batches per fetch: more places to die
        YIELDSTREAM_COMPACT_EVERY="8",  # compactions get killed too
    )
    env.update(others_disabled(SOURCES))
    for name in SOURCES:
        key = f"YIELDSTREAM_SOURCES__{name.upper().replace('-', '_')}"
        env[f"{key}__BASE_URL"] = base_url
        env[f"{key}__INTERVAL_S"] = str(interval_s)
        env[f"{key}__RATE_PER_S"] = "100"
    return env


def yieldstream_exe() -> str:
    """The installed ``yieldstream`` script of the running interpreter's environment."""
    return str(Path(sys.executable).with_name("yieldstream"))


def sql_cmd(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``yieldstream -d DATA_DIR sql ARGS``, run beside the store, its output captured."""
    return subprocess.run(
        [yieldstream_exe(), "-d", str(data_dir), "sql", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=data_dir.parent,
    )


def daemon(
    env: dict[str, str], log: Path, *args: str, command: str = "run"
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """``yieldstream COMMAND ARGS`` in its own process, logging (JSON lines) to ``log``."""
    return process([yieldstream_exe(), command, *args], env, log)


@contextmanager
def process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` in its own process, its stderr appended to ``log``.

    Killed on the way out if the caller left it running.
    """
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=log.parent,  # no yieldstream.toml of the checkout gets read
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stop(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout: float = 10.0) -> int:
    """Send ``sig``; the exit code, or TimeoutExpired when the process outlives ``timeout``."""
    proc.send_signal(sig)
    return proc.wait(timeout)


# Set in the environment of a daemon a test watches: its descendants inherit it.
LINEAGE = "YIELDSTREAM_TEST_LINEAGE"


def _started(pid: int) -> int | None:
    """A process's start time (clock ticks after boot); None when it is gone or a zombie.

    With the pid, it names one process: a pid reused later has another start time.
    """
    # A process ending while it is read gives an error or a short read: gone, either way.
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return None if fields[0] in "ZX" else int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _children(pid: int) -> list[int]:
    """The children of every thread of ``pid`` (a worker may be started by any thread)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:  # gone
        return found
    for task in tasks:
        try:
            found.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, ValueError):  # the thread or process ended meanwhile
            continue
    return found


def _command(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return command.replace(b"\0", b" ").decode(errors="replace").strip()


@dataclass
class Lineage:
    """The processes a daemon started, and whether any outlives it.

    Two ways to find them, so that none is missed however early the daemon dies:
    the process tree, read from ``/proc`` every few milliseconds while the daemon
    lives (children reparented after its death are recorded already), and a marker
    in the environment every descendant inherits, looked for in every process.
    """

    marker: str = field(default_factory=lambda: uuid.uuid4().hex)
    seen: dict[tuple[int, int], str] = field(default_factory=dict)  # (pid, start) -> argv

    def mark(self, env: Mapping[str, str]) -> dict[str, str]:
        return {**env, LINEAGE: self.marker}

    @contextmanager
    def watching(self, proc: subprocess.Popen[bytes]) -> Iterator[None]:
        """Record ``proc``'s descendants while the block runs."""
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                self._record(proc.pid)
                done.wait(0.005)

        thread = threading.Thread(target=poll, name="lineage", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _record(self, root: int) -> None:
        todo = _children(root)
        while todo:
            pid = todo.pop()
            started = _started(pid)
            if started is not None:  # read again: a child's argv changes when it execs
                self.seen[pid, started] = _command(pid) or self.seen.get((pid, started), "")
            todo.extend(_children(pid))

    def marked(self) -> dict[tuple[int, int], str]:
        """Live processes with the marker in their environment."""
        found: dict[tuple[int, int], str] = {}
        needle = f"{LINEAGE}={self.marker}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            pid = int(entry.name)
            started = _started(pid)
            if needle in environ.split(b"\0") and started is not None:
                found[pid, started] = _command(pid)
        return found

    def alive(self) -> dict[tuple[int, int], str]:
        """The descendants, recorded or marked, still running."""
        alive = {key: argv for key, argv in self.seen.items() if _started(key[0]) == key[1]}
        return {**alive, **self.marked()}

    def left_after(self, timeout_s: float) -> tuple[dict[tuple[int, int], str], float]:
        """Wait up to ``timeout_s`` for every descendant to end: those left, and the wait."""
        started = time.monotonic()
        while (left := self.alive()) and time.monotonic() - started < timeout_s:
            time.sleep(0.05)
        return left, time.monotonic() - started


def tail(log: Path, lines: int = 15) -> str:
    """The end of a daemon log, for assertion messages."""
    text = log.read_text(errors="replace") if log.exists() else "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def pending(data_dir: Path) -> list[str]:
    """The batches archived but not stored, as a restarting daemon would find them."""
    writer = LakeWriter(Store(data_dir))
    try:
        return writer.pending()
    finally:
        writer.close()
