"""Fetching JSON from upstream APIs: deadlines, size caps, retries, error mapping.

Every collector fetches through :func:`fetch_json`. It gives each request a total
deadline (connect + headers + whole body, not only a read timeout), caps the decoded
body size, maps HTTP statuses through :func:`yieldstream.errors.error_for_status`,
and retries what is retriable with stamina (exponential backoff with jitter, or the
server's ``Retry-After`` when it sends one). Rate limiting is the client's job: see
:class:`RateLimitedTransport`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import msgspec
import orjson
import stamina
from aiolimiter import AsyncLimiter
from pydantic import BaseModel, ConfigDict, Field

from yieldstream.errors import BadResponse, RetriableError, UpstreamUnavailable, error_for_status

PREVIEW_BYTES = 64 * 1024  # what a rejection keeps of an unusable body
MIB = 1024 * 1024

# Constraints live in the type, so a source that overrides a default keeps them.
Seconds = Annotated[float, Field(gt=0, le=7 * 24 * 3600)]


class SourceConfig(BaseModel):
    """Settings every source has; a source module subclasses it to set its defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    base_url: str
    interval_s: Seconds = Field(3600.0, description="seconds between polls")
    deadline_s: float = Field(120.0, gt=0, description="total time for one request")
    attempts: int = Field(5, ge=1, description="tries per request, the first included")
    retry_timeout_s: float = Field(600.0, gt=0, description="total time for all tries")
    wait_initial_s: float = Field(1.0, ge=0)
    wait_max_s: float = Field(60.0, ge=0)
    rate_per_s: float = Field(2.0, gt=0, description="requests per second at most")
    max_body_mib: float = Field(64.0, gt=0, description="decoded body size cap")
    # `yieldstream backfill` fetches one history per entity: thousands of requests.
    history_rate_per_s: float = Field(
        5.0, gt=0, description="backfill: history requests per second at most"
    )
    history_concurrency: int = Field(
        4, ge=1, le=256, description="backfill: history requests in flight at most"
    )


class RateLimitedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that waits for an aiolimiter slot before each request."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limiter: AsyncLimiter) -> None:
        self._inner = inner
        self._limiter = limiter

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async with self._limiter:
            return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass(frozen=True, slots=True)
class Fetched:
    """A usable JSON response."""

    url: str
    fetched_at: datetime
    body: Any
    nbytes: int
    lenient: bool  # needed the lenient parser (NaN/Infinity literals or huge integers)
    head: bytes = b""  # the body's first PREVIEW_BYTES, for a rejection of its shape


def _backoff_within(budget_s: float) -> Callable[[Exception], bool | float]:
    """Retry what is retriable, but give up when ``Retry-After`` outlasts the budget.

    stamina checks its timeout before each wait, not against it: a ``Retry-After:
    3600`` would otherwise park the poller for an hour past ``retry_timeout_s``.
    """
    deadline = time.monotonic() + budget_s

    def backoff(exc: Exception) -> bool | float:
        if not isinstance(exc, RetriableError):
            return False
        if exc.retry_after is None:
            return True
        return exc.retry_after if exc.retry_after <= deadline - time.monotonic() else False

    return backoff


async def fetch_json(
    client: httpx.AsyncClient,
    url: str,
    cfg: SourceConfig,
    *,
    params: dict[str, str] | None = None,
) -> Fetched:
    """GET ``url`` and parse JSON, retrying 429/5xx/timeouts; raise BadResponse otherwise."""
    async for attempt in stamina.retry_context(
        on=_backoff_within(cfg.retry_timeout_s),
        attempts=cfg.attempts,
        timeout=cfg.retry_timeout_s,
        wait_initial=cfg.wait_initial_s,
        wait_max=cfg.wait_max_s,
        wait_jitter=min(1.0, cfg.wait_initial_s),
    ):
        with attempt:
            return await _fetch_once(client, url, cfg, params)
    raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover


async def _fetch_once(
    client: httpx.AsyncClient, url: str, cfg: SourceConfig, params: dict[str, str] | None
) -> Fetched:
    cap = int(cfg.max_body_mib * MIB)
    body = bytearray()
    try:
        async with asyncio.timeout(cfg.deadline_s):
            async with client.stream(
                "GET", url, params=params, headers={"Accept": "application/json"}
            ) as resp:
                error = error_for_status(resp.status_code, url, resp.headers.get("Retry-After"))
                if error is not None:
                    raise error
                content_type = resp.headers.get("content-type", "")
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > cap:
                        raise BadResponse(
                            f"body of {url} exceeds the {cfg.max_body_mib:g} MiB cap "
                            "(raise max_body_mib for this source if it is genuine)",
                            url=url,
                            body=bytes(body[:PREVIEW_BYTES]),
                        )
    except TimeoutError:
        raise UpstreamUnavailable(
            f"no complete response from {url} within {cfg.deadline_s:g} s"
        ) from None
    except httpx.DecodingError as exc:
        raise BadResponse(f"undecodable body from {url}: {exc}", url=url) from None
    except httpx.TransportError as exc:
        raise UpstreamUnavailable(f"{type(exc).__name__} from {url}: {exc}") from None
    parsed, lenient = parse_json(bytes(body), content_type, url)
    return Fetched(
        url=url,
        fetched_at=datetime.now(UTC),
        body=parsed,
        nbytes=len(body),
        lenient=lenient,
        head=bytes(body[:PREVIEW_BYTES]),
    )


def parse_json(body: bytes, content_type: str, url: str) -> tuple[Any, bool]:
    """Parse a response body; strict JSON first, then the lenient stdlib parser.

    The lenient pass accepts ``NaN``/``Infinity`` literals and integers beyond 64 bits
    so that one bad item is rejected on its own instead of losing the whole response.
    Returns ``(value, lenient)``; raises :class:`BadResponse` when neither parses.
    """
    head = body[:512].lstrip().lower()
    if "html" in content_type.lower() or head.startswith((b"<!doctype", b"<html", b"<")):
        snippet = body[:120].decode("utf-8", "replace").replace("\n", " ")
        raise BadResponse(
            f"expected JSON from {url}, got {content_type or 'no content type'}: {snippet!r}",
            url=url,
            body=body[:PREVIEW_BYTES],
        )
    try:
        return orjson.loads(body), False
    except orjson.JSONDecodeError as strict_error:
        try:
            return json.loads(body), True
        except (ValueError, RecursionError):
            kind = "empty" if not body.strip() else "malformed or truncated"
            raise BadResponse(
                f"{kind} JSON from {url} ({len(body)} bytes): {strict_error}",
                url=url,
                body=body[:PREVIEW_BYTES],
            ) from None


_encode = msgspec.json.Encoder().encode


def dump_item(item: Any, lenient: bool) -> bytes:
    """One upstream item back to JSON text, keeping NaN/Infinity literals if it had them."""
    if not lenient:
        # Not orjson.dumps: its bytes keep a 4 KiB allocation each (orjson 3.x), so a
        # batch of 20,000 small items held 80 MiB; msgspec's are sized to fit.
        return _encode(item)
    try:
        return json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): keep it as an escape
        return json.dumps(item, separators=(",", ":")).encode()
