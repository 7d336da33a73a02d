"""The dashboard: one static page at ``/`` drawing from the API (``static/``).

``static/index.html`` with ``dashboard.js`` and ``dashboard.css``, and uPlot vendored
in ``static/vendor/`` (its version and origin in ``vendor/README.md``): no build
step, nothing fetched from elsewhere. The page calls ``/v1/products``, the history
of the product clicked, ``/v1/real-yields`` and ``/v1/compare``, sending the API
key the user typed (kept in the tab's session storage) when the server needs one.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("static")


def mount_dashboard(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files under ``/static/``."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        # Revalidated on every load, so a new version's page is never stale.
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
