"""structlog setup: JSON lines when not a TTY, a readable console otherwise.

Events are snake_case with key/value fields; per-record context (``source``,
``run_id``, ``batch_id``) is bound with ``structlog.contextvars.bound_contextvars``.
Logs go to stderr so that command output on stdout stays machine-readable.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import orjson
import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _current_stderr(*args: Any) -> structlog.PrintLogger:
    """A logger writing to ``sys.stderr`` as it is now, not as it was at configure time.

    A live rich progress bar (``yieldstream backfill`` on a terminal) swaps
    ``sys.stderr`` for a proxy that prints lines above the bar; a line written to the
    terminal past it ended up glued to the bar's last frame.
    """
    return structlog.PrintLogger(sys.stderr)


def configure(
    fmt: Literal["auto", "json", "console"] = "auto",
    level: Literal["debug", "info", "warning", "error"] = "info",
) -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor
    if use_json:
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory: structlog.typing.WrappedLogger = structlog.BytesLoggerFactory(sys.stderr.buffer)
    else:
        renderer = structlog.dev.ConsoleRenderer()
        factory = _current_stderr
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
