"""No stage dies silently: a failure ends ``run --once`` at once, a daemon goes on.

A failure nothing foresaw (a bug, a store that cannot read its own files) is
injected into each stage: ``run --once`` must exit 1 within seconds with the reason
in one line, never hang or print a traceback; the daemon logs it, counts it, backs
off, and goes on with the other sources and the next batches; a batch archived and
not stored is stored at the next start.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
import structlog
from structlog.testing import capture_logs

from sinks.writer import LakeWriter
from tests.conftest import query
from tests.test_cli import SOURCES, env_for
from yieldstream import pipeline
from yieldstream.app import run_pipeline
from yieldstream.errors import StageFailed
from yieldstream.loopback import Route
from yieldstream.settings import Settings, store_of
from yieldstream.transformer import Transformer

StartServer = Callable[[Mapping[str, Route] | None], tuple[str, dict[str, int]]]
BOUND_S = 30.0  # what "promptly" must mean at worst; the runs below take a few seconds

# Runs the CLI with one stage made to fail: patched before anything is imported.
INJECT = """
import sys

stage = sys.argv.pop(1) if __name__ == "__main__" else "none"


def boom(*args, **kwargs):
    raise RuntimeError(f"injected {stage} failure")


async def aboom(*args, **kwargs):
    boom()


async def collect_boom(client, cfg, run_id):
    boom()
    yield


if stage == "archive":
    from sinks.writer import LakeWriter
    LakeWriter.archive = boom
elif stage == "store":
    from sinks.writer import LakeWriter
    LakeWriter.store = boom
elif stage == "fetch-log":
    from sinks.writer import LakeWriter
    LakeWriter.record_fetch = boom
elif stage == "transform":
    from yieldstream.transformer import Transformer
    Transformer.run = aboom
elif stage == "collect":
    import ingest.lido
    ingest.lido.collect = collect_boom

if __name__ == "__main__":  # not in the transform worker, which spawn starts from here
    from yieldstream.cli import main

    main()
"""

# What run --once's last line says, per stage.
REASONS = {
    "archive": "error: archive failed: RuntimeError: injected archive failure",
    "store": "error: store failed: RuntimeError: injected store failure",
    "fetch-log": "error: store failed: RuntimeError: injected fetch-log failure",
    "transform": "error: transform failed: RuntimeError: injected transform failure",
    # A collector's failure is a failed fetch: the source's summary line says why.
    "collect": "lido: fetched 0 records: 0 observations stored, 0 already stored, "
    "0 rejected, 1 failed fetches; FAILED: collector failed: RuntimeError: "
    "injected collect failure",
}


def run_cli(
    tmp_path: Path, env: Mapping[str, str], *args: str, inject: str | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    """``yieldstream ARGS`` in its own process (a stage failing if ``inject``), timed."""
    script = tmp_path / "inject.py"
    script.write_text(INJECT)
    command = [sys.executable, str(script), inject or "none", *args]
    began = time.monotonic()
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=BOUND_S + 30,  # a hang fails the test below, not with TimeoutExpired
        env={**os.environ, "YIELDSTREAM_LOG_FORMAT": "json", **env},
        cwd=tmp_path,
        check=False,
    )
    return result, time.monotonic() - began


def not_json(stderr: str) -> list[str]:
    """The stderr lines that are not log lines."""
    return [line for line in stderr.splitlines() if not line.startswith("{")]


@pytest.mark.parametrize("stage", REASONS)
def test_run_once_ends_at_once_with_the_reason_when_a_stage_fails(
    loopback: StartServer, tmp_path: Path, stage: str
) -> None:
    url, _ = loopback(None)
    result, took = run_cli(tmp_path, env_for(url, tmp_path / "data"), "run", "--once", inject=stage)
    assert took < BOUND_S, result.stderr
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in "\n".join(not_json(result.stderr)), result.stderr
    assert REASONS[stage] in not_json(result.stderr), result.stderr
    if stage != "collect":
        assert '"event":"stage_failed"' in result.stderr
        assert f'"error":"{REASONS[stage].removeprefix("error: ")}"' in result.stderr


def test_a_clean_run_once_still_exits_0(loopback: StartServer, tmp_path: Path) -> None:
    url, _ = loopback(None)
    result, _ = run_cli(tmp_path, env_for(url, tmp_path / "data"), "run", "--once")
    assert result.returncode == 0, result.stderr
    assert "stage_failed" not in result.stderr


# --- a store that cannot read its own files ----------------------------------------


@pytest.fixture
def broken_store(loopback: StartServer, tmp_path: Path) -> dict[str, str]:
    """A store filled by ``run --once``, then one live observations file truncated."""
    url, _ = loopback(None)
    env = env_for(url, tmp_path / "data")
    filled, _ = run_cli(tmp_path, env, "run", "--once")
    assert filled.returncode == 0, filled.stderr
    lake = tmp_path / "data" / "lake"
    files = sorted(lake.glob("main/observations/**/*.parquet"), key=lambda f: f.stat().st_mtime)
    with files[-1].open("r+b") as data:  # the newest: the next batch's hour reads it
        data.truncate(100)
    env["DAMAGED"] = str(files[-1])
    return env


@pytest.mark.parametrize("args", [("run", "--once"), ("sources",), ("replay",)], ids=" ".join)
def test_a_truncated_data_file_is_a_one_line_error(
    broken_store: dict[str, str], tmp_path: Path, args: tuple[str, ...]
) -> None:
    result, took = run_cli(tmp_path, broken_store, *args)
    assert took < BOUND_S, result.stderr
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in not_json(result.stderr) if line.startswith("error:")]
    assert broken_store["DAMAGED"].rpartition("/")[2] in line, result.stderr  # names it
    assert not_json(result.stderr)[-1] == line


# --- the daemon goes on -------------------------------------------------------------


def failures(stage: str) -> float:
    value = prometheus_client.REGISTRY.get_sample_value(
        "yieldstream_stage_failures_total", {"stage": stage}
    )
    return value or 0.0


def fail_first(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` (a method) made to raise on its first call only."""
    calls = itertools.count()

    if inspect.iscoroutinefunction(original):

        async def failing_async(*args: Any, **kwargs: Any) -> Any:
            if next(calls) == 0:
                raise RuntimeError("injected failure")
            return await original(*args, **kwargs)

        return failing_async

    def failing(*args: Any, **kwargs: Any) -> Any:
        if next(calls) == 0:
            raise RuntimeError("injected failure")
        return original(*args, **kwargs)

    return failing


async def until(check: Callable[[], bool], seen: list[Any], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return
        assert time.monotonic() < deadline, seen
        await asyncio.sleep(0.05)


@pytest.fixture
def daemon_settings(
    make_settings: Callable[..., Settings],
    loopback: StartServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    monkeypatch.setattr(pipeline, "BACKOFF_FIRST_S", 0.05)
    url, _ = loopback(None)
    fast = {"interval_s": 0.3}
    return make_settings(url, source_overrides=dict.fromkeys(SOURCES, fast))


async def run_daemon(
    settings: Settings, logs: list[MutableMapping[str, Any]], done: Callable[[], bool]
) -> None:
    """The daemon until ``done()`` holds of its logs; then stopped as SIGTERM would."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_pipeline(settings, once=False, stop=stop, handle_signals=False))
    try:
        await until(lambda: done() or task.done(), logs)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


@pytest.mark.parametrize(
    ("stage", "target", "name"),
    [
        ("archive", LakeWriter, "archive"),
        ("store", LakeWriter, "store"),
        ("transform", Transformer, "run"),
    ],
    ids=["archive", "store", "transform"],
)
async def test_the_daemon_logs_counts_backs_off_and_goes_on(
    daemon_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    stage: str,
    target: type,
    name: str,
) -> None:
    monkeypatch.setattr(target, name, fail_first(getattr(target, name)))
    before = failures(stage)
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        # Goes on: every source's cycles after the failure are stored.
        await run_daemon(
            daemon_settings, logs, lambda: len(events(logs, "batch_stored")) >= 3 * len(SOURCES)
        )
    [failed] = events(logs, "stage_failed")
    assert failed["stage"] == stage
    assert failed["error"] == f"{stage} failed: RuntimeError: injected failure"
    assert failed["at"].endswith(" in failing" if stage != "transform" else " in failing_async")
    assert failed["backoff_s"] == pytest.approx(0.05)
    assert failures(stage) == before + 1
    # The cycle whose batch it was heard why; the next batches went on.
    [lost] = events(logs, "batches_not_stored")
    assert lost["reason"] == failed["error"]
    assert len(events(logs, "batch_stored")) >= 3 * len(SOURCES)
    fetched = {e["source"] for e in events(logs, "fetch_finished")}
    assert fetched == set(SOURCES)


@pytest.mark.parametrize(
    ("target", "name"), [(LakeWriter, "store"), (Transformer, "run")], ids=["store", "transform"]
)
async def test_a_batch_archived_and_not_stored_is_stored_at_the_next_start(
    daemon_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    target: type,
    name: str,
) -> None:
    # Only the first fetch: what it archived is stored by no later cycle.
    settings = daemon_settings.model_copy(
        update={
            "sources": {
                n: {**cfg, "interval_s": 3600.0} for n, cfg in daemon_settings.sources.items()
            }
        }
    )
    monkeypatch.setattr(target, name, fail_first(getattr(target, name)))
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        await run_daemon(settings, logs, lambda: len(events(logs, "fetch_finished")) == 3)
    [lost] = events(logs, "batches_not_stored")
    assert lost["log_level"] == "warning"
    writer = LakeWriter(store_of(settings))
    try:
        pending = writer.pending()
    finally:
        writer.close()
    assert len(pending) == 1  # the failed batch, archived, not stored
    monkeypatch.undo()
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        await run_pipeline(settings, once=True, handle_signals=False)
    recovered = {entry["batch_id"] for entry in events(logs, "batch_recovered")}
    assert recovered == set(pending)
    assert recovered <= {entry.get("batch_id") for entry in events(logs, "batch_stored")}
    ((stored,),) = query(settings.data_dir, "SELECT count(*) FROM observations")
    assert stored == 23  # every recorded observation, once
    writer = LakeWriter(store_of(settings))
    try:
        assert writer.pending() == []
    finally:
        writer.close()


async def test_run_once_raises_stage_failed_promptly(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process: the error ``run --once`` reports, within the bound."""

    def boom(*args: Any) -> None:
        raise RuntimeError("no space left on device")

    monkeypatch.setattr(LakeWriter, "store", boom)
    began = time.monotonic()
    with pytest.raises(StageFailed, match=r"^store failed: RuntimeError: no space left"):
        await asyncio.wait_for(
            run_pipeline(daemon_settings, once=True, handle_signals=False), BOUND_S
        )
    assert time.monotonic() - began < 10
