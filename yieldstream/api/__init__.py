"""``yieldstream serve``: a read-only HTTP API over the store (FastAPI on uvicorn).

:func:`create_app` builds the app (``app.py``); :func:`serve` runs it. The store
is read through a pool of read-only connections (``store.py``), the endpoints are
under ``routes/``, their models in ``models.py``.
"""

from __future__ import annotations

from yieldstream.api.app import create_app
from yieldstream.api.server import serve

__all__ = ["create_app", "serve"]
