"""The sink's alert passes: when they run, and what a failed one does.

After each commit the sink hands the pools it stored to :meth:`AlertPasses.stored`;
they wait for the next pass, which runs at most every ``alerts.evaluate_every_s``
over all the pools stored since (each judged on its newest stored rows, so how the
batches were split does not matter), and once more before the sink stops
(:meth:`AlertPasses.flush`). :meth:`AlertPasses.tick` runs the stale check every
``alerts.stale_check_s`` when no batch comes. A pass opens and clears alerts in a
write transaction of its own (:mod:`sinks.alerts`) and publishes them over a durable
bus once committed. A failure is logged and counted, never raised: the batches are
stored, and their offsets go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import pyarrow as pa
import structlog

from sinks.alerts import Alerting, pools_of
from yieldstream import metrics
from yieldstream.alerts import Alerts
from yieldstream.bus import ALERTS, Bus

log = structlog.get_logger(__name__)

# Runs the alerting's pass over these pools (None: none) on the store's thread.
OnStore = Callable[[pa.Table | None], Awaitable[Alerts]]


class AlertPasses:
    def __init__(self, alerting: Alerting, on_store: OnStore, bus: Bus) -> None:
        self.rules = alerting.rules
        self._on_store = on_store
        self._bus = bus
        self._waiting: list[pa.Table] = []  # pools stored since the last pass
        self._due = 0.0  # monotonic time of the next pass
        self._stale_checked = 0.0

    async def stored(self, observations: Any) -> None:
        """After a commit: the pools of ``observations`` (None: a fetch report) wait
        for the next pass, which runs now if it is due."""
        if observations is not None:
            self._waiting.append(pools_of(observations))
        if time.monotonic() >= self._due:
            await self.run()

    async def flush(self) -> None:
        """The pass over what is still waiting, before the sink stops."""
        if self._waiting:
            await self.run()

    async def tick(self, stop: asyncio.Event) -> None:
        """A pass when pools wait for one, and the stale check every ``stale_check_s``,
        batches or not, until ``stop``."""
        stale_every = self.rules.stale_check_s
        every = min(self.rules.evaluate_every_s or stale_every, stale_every)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            stale_due = time.monotonic() - self._stale_checked >= stale_every
            if not stop.is_set() and (self._waiting or stale_due):
                await self.run()

    async def run(self) -> None:
        """One pass: alerts for the waiting pools, and the stale check."""
        waiting, self._waiting = self._waiting, []
        self._due = time.monotonic() + self.rules.evaluate_every_s
        self._stale_checked = time.monotonic()
        try:
            pools = pa.concat_tables(waiting) if waiting else None
            changed = await self._on_store(pools)
        except Exception as exc:  # noqa: BLE001 - logged, counted; the batch is stored all the same
            _failed("evaluate", exc)
            return
        for alert in changed:
            metrics.ALERTS.labels(alert.kind, alert.event).inc()
            log.warning(
                "alert_opened" if alert.event == "opened" else "alert_cleared",
                kind=alert.kind,
                alert_source=alert.source,
                pool_id=alert.pool_id,
                product_id=alert.product_id,
                severity=alert.severity,
                evidence=alert.evidence,
            )
        if not changed or not self._bus.durable:
            return
        try:
            await self._bus.publish(ALERTS, changed[0].key, changed)
        except Exception as exc:  # noqa: BLE001 - logged, counted; the alerts are in the store
            _failed("publish", exc, alerts=len(changed))


def _failed(step: str, exc: BaseException, **fields: Any) -> None:
    """One line and where, as a stage failure is logged (no traceback)."""
    metrics.ALERT_FAILURES.labels(step).inc()
    frames = traceback.extract_tb(exc.__traceback__)
    at = f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else None
    event = "alert_evaluation_failed" if step == "evaluate" else "alert_publish_failed"
    log.error(event, error=f"{type(exc).__name__}: {exc}", at=at, **fields)
