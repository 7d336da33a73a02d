"""``create_app(settings)``: the FastAPI app of ``yieldstream serve``.

``/v1/...`` is the read API (keys and rate limit apply there); ``/healthz``,
``/readyz`` and ``/metrics`` are for operators; ``/docs`` and ``/openapi.json``
describe it all. The store's readers are made at start (connections open on first
use) and closed at shutdown; tests pass readers of their own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from yieldstream import __version__
from yieldstream.api.dashboard import mount_dashboard
from yieldstream.api.metrics import RequestMetrics, metrics
from yieldstream.api.routes import alerts, derived, history, products, status
from yieldstream.api.security import Guard
from yieldstream.api.store import Readers, StoreUnavailable
from yieldstream.settings import Settings, store_of

DESCRIPTION = """Yields of staking, lending and farming products, read-only from the
yieldstream store. Units are in the field names: `_pct` percent (3.1 is 3.1 %),
`_usd` US dollars; times are UTC. Lists are paged: pass `next_cursor` back as
`cursor`. Tables come as CSV too (`?format=csv` or `Accept: text/csv`)."""


def create_app(settings: Settings, readers: Readers | None = None) -> FastAPI:
    """The app over the store of ``settings`` (or over ``readers``)."""
    api = settings.api
    pool = readers or Readers.over(
        store_of(settings), size=api.readers, timeout_s=api.query_timeout_s
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(
        title="yieldstream",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.readers = pool
    guard = Guard(api.api_keys, api.rate_limit)
    for module in (products, history, derived, alerts, status):
        app.include_router(module.router, dependencies=[Depends(guard)])
    app.include_router(status.health)
    mount_dashboard(app)
    app.add_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    app.add_exception_handler(StoreUnavailable, _unavailable)
    if api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(api.cors_origins),
            allow_methods=["GET"],
            allow_headers=["X-API-Key", "Accept"],
            expose_headers=["X-Next-Cursor", "Retry-After"],
        )
    app.add_middleware(RequestMetrics)
    return app


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})
