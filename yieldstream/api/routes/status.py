"""How the sources and the API are doing: ``/v1/sources``, ``/healthz``, ``/readyz``.

A source is fresh when it fetched successfully within ``alerts.stale_after_h`` (the
``stale_source`` alert's threshold). ``/readyz`` is ready when the store answers and
no enabled source that has fetched is stale (a source never fetched here may run
elsewhere, and does not count), and at least one source has fetched.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from yieldstream.api.csv import CSV_RESPONSE, csv_response, wants_csv
from yieldstream.api.deps import V1, Config, Store
from yieldstream.api.models import Health, Ready, Sources, SourceStatus
from yieldstream.api.store import Readers, StoreUnavailable
from yieldstream.registry import sources as registered
from yieldstream.settings import Settings
from yieldstream.sourcestats import SourceStats, source_stats

router = APIRouter(prefix=V1, tags=["sources"])
health = APIRouter(tags=["operators"])


async def statuses(store: Readers, settings: Settings) -> list[SourceStatus]:
    """Every registered source, with what the store knows of its fetches."""
    stats = await store.run(source_stats)
    stale_after = timedelta(hours=settings.alerts.stale_after_h)
    now = datetime.now(UTC)
    found = []
    for name in registered():
        cfg = settings.source_config(name)
        got = stats.get(name, SourceStats())
        success = got.last_success
        found.append(
            SourceStatus(
                source=name,
                enabled=cfg.enabled,
                interval_s=cfg.interval_s,
                last_fetch=got.last_fetch,
                last_ok=got.last_ok,
                last_success=success,
                consecutive_failures=got.consecutive_failures,
                failed_fetches=got.failed_fetches,
                rows_stored=got.rows_stored,
                rejected=got.rejected,
                fresh=success is not None and now - success <= stale_after,
            )
        )
    return found


@router.get("/sources", response_model=Sources, responses=CSV_RESPONSE)
async def sources(
    store: Store, settings: Config, csv: Annotated[bool, Depends(wants_csv)] = False
) -> Sources | Response:
    """Each source: its last fetch and success, failures in a row, rows stored, freshness."""
    items = await statuses(store, settings)
    if csv:
        return csv_response(SourceStatus, items)
    return Sources(items=items)


@health.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up (it does not ask the store)."""
    return Health(status="ok")


@health.get("/readyz", response_model=Ready, responses={503: {"model": Ready}})
async def readyz(store: Store, settings: Config) -> Ready | JSONResponse:
    """Ready when the store answers and the sources that fetched are fresh; else 503."""
    try:
        items = await statuses(store, settings)
    except StoreUnavailable as exc:
        return _not_ready(Ready(status="not_ready", store=str(exc), stale_sources=[]))
    fetched = [s for s in items if s.last_fetch is not None and s.enabled]
    stale = [s.source for s in fetched if not s.fresh]
    if not fetched:
        detail = "no source has fetched yet"
    elif stale:
        detail = f"no successful fetch within {settings.alerts.stale_after_h:g} h"
    else:
        return Ready(status="ready", store="readable", stale_sources=[])
    return _not_ready(
        Ready(status="not_ready", store="readable", stale_sources=stale, detail=detail)
    )


def _not_ready(body: Ready) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json"), status_code=503)
