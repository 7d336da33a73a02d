"""Fetching JSON from upstream APIs: deadlines, size caps, retries, error mapping.

Every collector fetches through :func:`fetch_json`. It gives each request a total
deadline (connect + headers + whole body, not only a read timeout), caps the decoded
body size while decoding (:mod:`ingest._decode`), follows redirects only within the
URL's origin (or to the origins a source lists), maps HTTP statuses through
:func:`yieldstream.errors.error_for_status`, and retries what is retriable with
stamina (exponential backoff with jitter, or the server's ``Retry-After`` when it
sends one). Rate limiting is the client's job: see :class:`RateLimitedTransport`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import msgspec
import orjson
import stamina
from aiolimiter import AsyncLimiter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from ingest._decode import ACCEPT_ENCODING, DecodeError, decoded
from yieldstream.errors import (
    BadResponse,
    RetriableError,
    UpstreamRejected,
    UpstreamUnavailable,
    error_for_status,
)

PREVIEW_BYTES = 64 * 1024  # what a rejection keeps of an unusable body
MIB = 1024 * 1024

# Constraints live in the type, so a source that overrides a default keeps them.
Seconds = Annotated[float, Field(gt=0, le=7 * 24 * 3600)]
HEADERS = {"Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING}
DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: httpx.URL) -> str:
    """``scheme://host:port`` of a URL, the port always written (for comparing)."""
    return f"{url.scheme}://{url.host}:{url.port or DEFAULT_PORTS.get(url.scheme, 0)}"


def _origin_setting(value: str) -> str:
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        url = httpx.URL()
    if url.scheme not in DEFAULT_PORTS or not url.host or url.raw_path not in (b"", b"/"):
        raise ValueError("expected an origin, http(s)://host or http(s)://host:port, no path")
    return _origin(url)


Origin = Annotated[str, AfterValidator(_origin_setting)]


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
    max_redirects: int = Field(5, ge=0, le=20, description="redirects followed per request")
    follow_redirects_to: tuple[Origin, ...] = Field(
        (), description="other origins a redirect may lead to (https://host[:port])"
    )
    # `yieldstream backfill` fetches one history per entity: thousands of requests.
    history_rate_per_s: float = Field(
        5.0, gt=0, description="backfill: history requests per second at most"
    )
    history_concurrency: int = Field(
        4, ge=1, le=256, description="backfill: history requests in flight at most"
    )

    @field_validator("follow_redirects_to", mode="before")
    @classmethod
    def _origins_from_text(cls, value: Any) -> Any:
        """An environment variable's text: a JSON list, or origins separated by commas."""
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("["):
            return orjson.loads(value)
        return [part.strip() for part in value.split(",") if part.strip()]


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
    read: bool = False  # ``body`` is what the request's ``read`` made of it, not parsed JSON


def _backoff_within(budget_s: float) -> Callable[[BaseException], bool | float]:
    """Retry what is retriable, but give up when ``Retry-After`` outlasts the budget.

    stamina checks its timeout before each wait, not against it: a ``Retry-After:
    3600`` would otherwise park the poller for an hour past ``retry_timeout_s``.
    """
    deadline = time.monotonic() + budget_s

    def backoff(exc: BaseException) -> bool | float:
        if not isinstance(exc, RetriableError):
            return False
        if exc.retry_after is None:
            return True
        return exc.retry_after if exc.retry_after <= deadline - time.monotonic() else False

    return backoff


# A check of a parsed body (see :func:`fetch_json`): raises when the body says the
# request failed although its status was 200. Arguments: body, url, head.
Check = Callable[[Any, str, bytes], None]


@dataclass(frozen=True, slots=True)
class Request:
    """What to ask for beyond the URL: query parameters, or a POST with a JSON body."""

    params: tuple[tuple[str, str], ...] = ()
    method: str = "GET"
    json: Any = None  # the JSON body of a POST (a GraphQL query and its variables)
    check: Check | None = None
    # A faster reading of the body than parsing it as JSON, for the shapes it knows
    # (ingest._timed): its value, or None to parse the body. ``check`` is not given
    # what it read.
    read: Callable[[bytes], Any] | None = None


async def fetch_json(
    client: httpx.AsyncClient,
    url: str,
    cfg: SourceConfig,
    *,
    request: Request | None = None,
) -> Fetched:
    """Fetch ``url`` and parse JSON, retrying 429/5xx/timeouts; raise BadResponse otherwise.

    ``request`` adds query parameters, makes it a POST with a JSON body (GraphQL),
    and names a :data:`Check` of the parsed body: APIs that answer an error with
    status 200 (``{"code": "50011"}``, ``{"retCode": 10006}``, ``["error", ...]``,
    GraphQL ``errors``) raise from it; what it raises retriable is retried too.
    """
    request = request or Request()
    async for attempt in stamina.retry_context(
        on=_backoff_within(cfg.retry_timeout_s),
        attempts=cfg.attempts,
        timeout=cfg.retry_timeout_s,
        wait_initial=cfg.wait_initial_s,
        wait_max=cfg.wait_max_s,
        wait_jitter=min(1.0, cfg.wait_initial_s),
    ):
        with attempt:
            fetched = await _fetch_once(client, url, cfg, request)
            if request.check is not None and not fetched.read:
                request.check(fetched.body, fetched.url, fetched.head)
            return fetched
    raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover


async def _fetch_once(
    client: httpx.AsyncClient, url: str, cfg: SourceConfig, request: Request
) -> Fetched:
    try:
        async with asyncio.timeout(cfg.deadline_s):
            body, content_type = await _get(client, url, cfg, request)
    except TimeoutError:
        raise UpstreamUnavailable(
            f"no complete response from {url} within {cfg.deadline_s:g} s"
        ) from None
    except httpx.DecodingError as exc:  # a response built in memory, decoded by httpx
        raise BadResponse(f"undecodable body from {url}: {exc}", url=url) from None
    except httpx.TransportError as exc:
        raise UpstreamUnavailable(f"{type(exc).__name__} from {url}: {exc}") from None
    raw = bytes(body)
    value, lenient = None, False
    if request.read is not None and "html" not in content_type.lower():
        value = request.read(raw)
    read = value is not None
    if not read:
        value, lenient = parse_json(raw, content_type, url)
    return Fetched(
        url=url,
        fetched_at=datetime.now(UTC),
        body=value,
        nbytes=len(raw),
        lenient=lenient,
        head=raw[:PREVIEW_BYTES],
        read=read,
    )


async def _get(
    client: httpx.AsyncClient, url: str, cfg: SourceConfig, request: Request
) -> tuple[bytearray, str]:
    """The decoded body and content type of ``url``, following redirects we may follow.

    A POST is repeated at the target of a 307/308 redirect only; after a 301-303 the
    target is fetched with a GET, as browsers and httpx do.
    """
    target: httpx.URL | str = url
    method = request.method
    for hop in range(cfg.max_redirects + 1):
        sent = client.build_request(
            method,
            target,
            params=None if hop else (request.params or None),
            json=request.json if method == "POST" else None,
            headers=HEADERS,
        )
        resp = await _send(client, sent, url)
        try:
            if resp.has_redirect_location:
                target = _redirect_target(url, resp, cfg)
                if resp.status_code not in (307, 308):
                    method = "GET"
                continue
            error = error_for_status(resp.status_code, url, resp.headers.get("Retry-After"))
            if error is not None:
                raise error
            return await _read_body(resp, url, cfg), resp.headers.get("content-type", "")
        finally:
            await resp.aclose()
    raise UpstreamRejected(f"{url} redirected more than {cfg.max_redirects} times (max_redirects)")


async def _send(client: httpx.AsyncClient, request: httpx.Request, url: str) -> httpx.Response:
    """Send without following redirects; a Location httpx cannot resolve is fatal."""
    try:
        return await client.send(request, stream=True, follow_redirects=False)
    except httpx.InvalidURL as exc:  # "data:..." resolved against the request's host
        raise UpstreamRejected(
            f"redirect from {url} refused: only http and https are followed "
            f"(its Location is no http(s) URL: {exc})"
        ) from None
    except httpx.RemoteProtocolError as exc:
        if not str(exc).startswith("Invalid URL in location header"):
            raise
        raise UpstreamRejected(f"redirect from {url} refused: {exc}") from None


def _redirect_target(url: str, resp: httpx.Response, cfg: SourceConfig) -> httpx.URL:
    """Where a redirect leads, or UpstreamRejected (fatal) when it may not be followed.

    Only http(s), and only to the origin of ``url`` or one in ``follow_redirects_to``:
    a collector's requests stay with the hosts its settings name.
    """
    location = resp.headers["Location"]
    shown = location if len(location) <= 200 else location[:200] + "..."
    # httpx resolves it (relative, or absolute without a host) even when not following.
    target = resp.next_request.url if resp.next_request else resp.url.join(location)
    if target.scheme not in DEFAULT_PORTS:
        raise UpstreamRejected(
            f"redirect from {url} to {shown!r} refused: only http and https are followed"
        )
    there = _origin(target)
    if there != _origin(httpx.URL(url)) and there not in cfg.follow_redirects_to:
        raise UpstreamRejected(
            f"redirect from {url} to {shown!r} refused: another origin "
            f"(add {there.removesuffix(f':{DEFAULT_PORTS[target.scheme]}')!r} "
            "to follow_redirects_to for this source to follow it)"
        )
    return target


async def _read_body(resp: httpx.Response, url: str, cfg: SourceConfig) -> bytearray:
    """The body, decoded in bounded pieces and stopped as soon as it passes the cap."""
    cap = int(cfg.max_body_mib * MIB)
    body = bytearray()
    raw, encoding = resp.aiter_raw(), resp.headers.get("content-encoding", "")
    if resp.is_stream_consumed:  # built in memory (httpx.MockTransport): httpx decoded it
        raw, encoding = _in_memory(resp.content), ""
    try:
        async with aclosing(decoded(raw, encoding)) as pieces:
            async for piece in pieces:
                body += piece
                if len(body) > cap:
                    raise BadResponse(
                        f"body of {url} exceeds the {cfg.max_body_mib:g} MiB cap after decoding "
                        "(raise max_body_mib for this source if it is genuine)",
                        url=url,
                        body=bytes(body[:PREVIEW_BYTES]),
                    )
    except DecodeError as exc:  # an UnsupportedEncoding too
        raise BadResponse(f"undecodable body from {url}: {exc}", url=url) from None
    return body


async def _in_memory(content: bytes) -> AsyncIterator[bytes]:
    yield content


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
            return _lenient_loads(body), True
        except (ValueError, RecursionError):
            kind = "empty" if not body.strip() else "malformed or truncated"
            raise BadResponse(
                f"{kind} JSON from {url} ({len(body)} bytes): {strict_error}",
                url=url,
                body=body[:PREVIEW_BYTES],
            ) from None


# orjson reads up to 1,024 levels; the lenient parser is given as many (the stdlib
# parser recurses, and stops at the recursion limit), so that one item nested deep
# is rejected on its own (ingest._items) instead of losing the whole response.
ORJSON_DEPTH = 1024


def _lenient_loads(body: bytes) -> Any:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(limit + ORJSON_DEPTH)
    try:
        return json.loads(body)
    finally:
        sys.setrecursionlimit(limit)


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
