"""Run the API on uvicorn until SIGINT or SIGTERM, then exit 0 once it has shut down."""

from __future__ import annotations

import signal
from types import FrameType

import structlog
import uvicorn

from yieldstream.api.app import create_app
from yieldstream.settings import Settings

log = structlog.get_logger(__name__)


class _Server(uvicorn.Server):
    """uvicorn's server, whose shutdown on SIGINT or SIGTERM is the end: a clean exit.

    uvicorn shuts down gracefully on either, then raises the signal again, which
    killed the process by it (exit -15) after its clean shutdown.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if sig in (signal.SIGINT, signal.SIGTERM):
            self._captured_signals.remove(sig)


def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Serve on ``host``:``port`` (default: the settings', loopback) until stopped."""
    host = host or settings.api.host
    port = port or settings.api.port
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,  # structlog is the project's logging; uvicorn's stays quiet
        log_level="warning",
        access_log=False,  # /metrics counts requests; an access log would log query text
        server_header=False,
    )
    log.info("api_serving", url=f"http://{host}:{port}", docs=f"http://{host}:{port}/docs")
    _Server(config).run()
    log.info("api_stopped")
