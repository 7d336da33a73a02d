"""Every error yieldstream raises on purpose, grouped by what the runner does next.

::

    YieldstreamError
     ├── RetriableError      try the same call again later (``retry_after`` seconds, if known)
     │    └── UpstreamUnavailable   429, 5xx, timeouts, connection failures
     ├── FatalError          retrying will not help; stop this fetch (or the process)
     │    ├── UpstreamRejected      other 4xx, a redirect that may not be followed
     │    ├── BadResponse           200 but not usable as a whole (HTML, truncated, too big)
     │    ├── ConfigError           bad settings or CLI input (one line, says how to fix it)
     │    └── StageFailed           a pipeline stage failed unforeseen (a bug, a broken store)
     └── SkippableRecord     one record is bad; reject it and go on
          └── UnsafeId              an id that cannot be a URL path segment (``..``, ``/``)

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


class StageFailed(FatalError):
    """A pipeline stage (collect, archive, transform, store) raised what nothing foresaw.

    The message is one line: the stage, the error's type and its first line.
    """

    def __init__(self, stage: str, cause: BaseException) -> None:
        reason = next(iter(str(cause).strip().splitlines()), "") or "no message"
        super().__init__(f"{stage} failed: {type(cause).__name__}: {reason}")
        self.stage = stage


class SkippableRecord(YieldstreamError):
    """One record cannot be used; it is rejected and the rest go on."""


class UnsafeId(SkippableRecord):
    """An upstream id that cannot be one URL path segment (``..``, ``/``, empty)."""


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
