"""Every error yieldstream raises on purpose, grouped by what the runner does next.

::

    YieldstreamError
     ├── RetriableError      try the same call again later (``retry_after`` seconds, if known)
     │    └── UpstreamUnavailable   429, 5xx, timeouts, connection failures
     ├── FatalError          retrying will not help; stop this fetch (or the process)
     │    ├── UpstreamRejected      other 4xx
     │    ├── BadResponse           200 but not usable as a whole (HTML, truncated, too big)
     │    └── ConfigError           bad settings or CLI input (one line, says how to fix it)
     └── SkippableRecord     one record is bad; reject it and go on

HTTP statuses map to these in exactly one place, :func:`error_for_status`.
"""

from __future__ import annotations


class YieldstreamError(Exception):
    """Base of every error raised on purpose by yieldstream."""


class RetriableError(YieldstreamError):
    """Transient: the same request may succeed later."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamUnavailable(RetriableError):
    """The upstream API is overloaded, failing or unreachable right now."""


class FatalError(YieldstreamError):
    """Retrying the same call will not help."""


class UpstreamRejected(FatalError):
    """The upstream API refused the request (a 4xx other than 429)."""


class BadResponse(FatalError):
    """A response arrived but cannot be used as a whole; ``body`` keeps what came."""

    def __init__(self, message: str, *, url: str = "", body: bytes = b"") -> None:
        super().__init__(message)
        self.url = url
        self.body = body


class ConfigError(FatalError):
    """Settings or command-line input are wrong; the message says how to fix them."""


class SkippableRecord(YieldstreamError):
    """One record cannot be used; it is rejected and the rest go on."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form), capped at 1 hour."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return min(seconds, 3600.0)


def error_for_status(
    status: int, url: str, retry_after: str | None = None
) -> YieldstreamError | None:
    """Map an HTTP status to the error the runner acts on (None for success)."""
    if 200 <= status < 300:
        return None
    if status == 429 or status >= 500:
        return UpstreamUnavailable(
            f"HTTP {status} from {url}", retry_after=parse_retry_after(retry_after)
        )
    return UpstreamRejected(f"HTTP {status} from {url}")
