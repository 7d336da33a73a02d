"""fetch_json against bad upstreams: statuses, retries, unusable bodies, hangs, rate limits.

Bodies are the recorded real responses in tests/fixtures, served through
``httpx.MockTransport`` (or a 127.0.0.1 socket where the transport matters).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from aiolimiter import AsyncLimiter

from ingest._http import PREVIEW_BYTES, RateLimitedTransport, SourceConfig, dump_item, fetch_json
from tests.conftest import recorded
from yieldstream.app import client_for
from yieldstream.errors import (
    BadResponse,
    UpstreamRejected,
    UpstreamUnavailable,
    error_for_status,
    parse_retry_after,
)
from yieldstream.loopback import Reply, serve

URL = "https://yields.llama.fi/pools"
POOLS = recorded("defillama-yields", "pools-stablecoin_quant.json")  # 3,535 bytes, 5 pools
HTML = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center></body></html>"
)


def config(**overrides: Any) -> SourceConfig:
    """Fast retries, short deadline: every failure test runs in well under a second."""
    settings: dict[str, Any] = {
        "base_url": "https://yields.llama.fi",
        "attempts": 3,
        "wait_initial_s": 0.01,
        "wait_max_s": 0.05,
        "deadline_s": 2.0,
        "retry_timeout_s": 10.0,
    }
    return SourceConfig(**{**settings, **overrides})


class Upstream:
    """A MockTransport handler answering with scripted replies; the last one repeats."""

    def __init__(self, *replies: Callable[[], httpx.Response]) -> None:
        self.replies = replies
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.replies[min(len(self.requests), len(self.replies)) - 1]()

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


def answer(
    status: int = 200, body: bytes = POOLS, content_type: str = "application/json", **headers: str
) -> Callable[[], httpx.Response]:
    """A fresh response per request (a stream cannot be read twice)."""
    hdrs = {"Content-Type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}}
    return lambda: httpx.Response(status, headers=hdrs, content=body)


async def fetch(upstream: Upstream, cfg: SourceConfig | None = None) -> Any:
    async with upstream.client() as client:
        return await fetch_json(client, URL, cfg or config())


# --- statuses and retries ------------------------------------------------------------


async def test_429_waits_for_retry_after_then_succeeds() -> None:
    upstream = Upstream(answer(429, b'{"error":"rate limited"}', Retry_After="1"), answer())
    started = time.monotonic()
    fetched = await fetch(upstream)
    elapsed = time.monotonic() - started
    assert len(upstream.requests) == 2
    assert elapsed >= 0.95  # the server's Retry-After, not the 0.01 s backoff
    assert elapsed < 3
    assert fetched.body["data"][0]["pool"] == "66985a81-9c51-46ca-9977-42b4fe7bc6df"
    assert fetched.nbytes == len(POOLS)
    assert not fetched.lenient


async def test_retry_after_beyond_the_retry_budget_gives_up_at_once() -> None:
    upstream = Upstream(answer(429, b"", Retry_After="3600"), answer())
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable, match="HTTP 429") as caught:
        await fetch(upstream, config(retry_timeout_s=5.0))
    assert time.monotonic() - started < 1
    assert len(upstream.requests) == 1
    assert caught.value.retry_after == 3600


async def test_503_twice_then_success_after_three_attempts() -> None:
    upstream = Upstream(answer(503, b"busy"), answer(503, b"busy"), answer())
    fetched = await fetch(upstream)
    assert len(upstream.requests) == 3
    assert len(fetched.body["data"]) == 5


@pytest.mark.parametrize("attempts", [1, 4])
async def test_500_forever_gives_up_after_the_configured_attempts(attempts: int) -> None:
    upstream = Upstream(answer(500, b'{"message":"Internal server error"}'))
    with pytest.raises(UpstreamUnavailable, match=f"HTTP 500 from {URL}"):
        await fetch(upstream, config(attempts=attempts))
    assert len(upstream.requests) == attempts


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
async def test_other_4xx_is_rejected_without_retrying(status: int) -> None:
    upstream = Upstream(answer(status, b'{"error":"nope"}'), answer())
    with pytest.raises(UpstreamRejected, match=f"HTTP {status}"):
        await fetch(upstream)
    assert len(upstream.requests) == 1


async def test_connection_failures_are_retried_then_reported() -> None:
    calls = 0

    def refuse(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(UpstreamUnavailable, match=r"ConnectError .*Connection refused"):
            await fetch_json(client, URL, config())
    assert calls == 3


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1", 1.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("99999", 3600.0),
        (None, None),
        ("-1", None),
        ("nan", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (200, None),
        (204, None),
        (429, UpstreamUnavailable),
        (500, UpstreamUnavailable),
        (502, UpstreamUnavailable),
        (503, UpstreamUnavailable),
        (404, UpstreamRejected),
        (304, UpstreamRejected),
    ],
)
def test_error_for_status(status: int, error: type[Exception] | None) -> None:
    got = error_for_status(status, URL, "7")
    assert (None if got is None else type(got)) is error
    if isinstance(got, UpstreamUnavailable):
        assert got.retry_after == 7.0


# --- bodies that cannot be used as a whole ---------------------------------------------


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/json"])
async def test_html_error_page_with_status_200_is_a_bad_response(content_type: str) -> None:
    upstream = Upstream(answer(200, HTML, content_type))
    with pytest.raises(BadResponse, match="expected JSON") as caught:
        await fetch(upstream)
    assert "text/html" in str(caught.value) or "<!DOCTYPE html>" in str(caught.value)
    assert caught.value.body == HTML  # kept for the rejection
    assert caught.value.url == URL
    assert len(upstream.requests) == 1  # not retried: the same page would come again


async def test_html_error_page_names_its_content_type() -> None:
    with pytest.raises(BadResponse, match="got text/html"):
        await fetch(Upstream(answer(200, HTML, "text/html")))


async def test_truncated_json_is_a_bad_response_keeping_what_came() -> None:
    half = POOLS[: len(POOLS) // 2]
    upstream = Upstream(answer(200, half))
    message = rf"malformed or truncated JSON from .* \({len(half)} bytes\)"
    with pytest.raises(BadResponse, match=message) as caught:
        await fetch(upstream)
    assert caught.value.body == half
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("body", [b"", b"  \r\n"])
async def test_empty_body_is_a_bad_response(body: bytes) -> None:
    with pytest.raises(BadResponse, match="empty JSON"):
        await fetch(Upstream(answer(200, body)))


async def test_body_above_the_cap_is_a_bad_response_naming_the_cap() -> None:
    upstream = Upstream(answer(200, POOLS))  # 3,535 bytes against a 1,048-byte cap
    with pytest.raises(BadResponse, match=r"exceeds the 0\.001 MiB cap") as caught:
        await fetch(upstream, config(max_body_mib=0.001))
    assert 0 < len(caught.value.body) <= len(POOLS)
    assert POOLS.startswith(caught.value.body)
    assert len(upstream.requests) == 1


async def test_body_above_the_cap_stops_streaming() -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"data": ['
        while True:
            sent += 1
            yield b'{"pool": "x", "apy": 1.0},' * 40  # ~1 KiB

    upstream = Upstream(lambda: httpx.Response(200, content=endless()))
    with pytest.raises(BadResponse, match="MiB cap") as caught:
        await fetch(upstream, config(max_body_mib=0.01))  # 10,485 bytes
    assert sent <= 12  # stopped just past the cap, not read to the end (it has none)
    assert len(caught.value.body) <= PREVIEW_BYTES


async def test_gzip_body_counts_its_decoded_size() -> None:
    items = [{"pool": f"p{i}", "apy": 1.5, "tvlUsd": 1e6, "chain": "Ethereum"} for i in range(4000)]
    plain = orjson.dumps({"data": items})  # ~240 KB, compresses ~50x
    packed = gzip.compress(plain)
    assert len(packed) < 0.05 * 1024 * 1024 < 0.2 * 1024 * 1024 < len(plain)

    def gz() -> httpx.Response:
        return httpx.Response(
            200,
            content=packed,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    with pytest.raises(BadResponse, match=r"exceeds the 0\.2 MiB cap"):
        await fetch(Upstream(gz), config(max_body_mib=0.2))
    fetched = await fetch(Upstream(gz), config(max_body_mib=1))
    assert fetched.nbytes == len(plain)
    assert len(fetched.body["data"]) == 4000


async def test_undecodable_gzip_is_a_bad_response() -> None:
    garbage = answer(200, b"\x1f\x8b not gzip at all", Content_Encoding="gzip")
    with pytest.raises(BadResponse, match="undecodable body"):
        await fetch(Upstream(garbage))


# --- hangs: a total deadline, not a read timeout ---------------------------------------


async def test_upstream_that_never_answers_fails_within_the_deadline() -> None:
    calls = 0

    async def hang(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        await asyncio.sleep(60)
        return httpx.Response(200, content=POOLS)

    started = time.monotonic()
    async with httpx.AsyncClient(transport=httpx.MockTransport(hang)) as client:
        with pytest.raises(UpstreamUnavailable, match=r"no complete response .* within 0\.3 s"):
            await fetch_json(client, URL, config(deadline_s=0.3, attempts=2))
    elapsed = time.monotonic() - started
    assert calls == 2  # a timeout is retriable
    assert 0.6 <= elapsed < 1.5


async def test_slow_drip_body_is_cut_off_at_the_total_deadline() -> None:
    dripped = 0

    async def drip() -> AsyncIterator[bytes]:
        nonlocal dripped
        yield b'{"data": ['
        while True:  # a byte every 20 ms: no single read ever waits long
            await asyncio.sleep(0.02)
            dripped += 1
            yield b" "

    upstream = Upstream(lambda: httpx.Response(200, content=drip()))
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable, match=r"within 0\.4 s"):
        await fetch(upstream, config(deadline_s=0.4, attempts=1))
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 1.2
    assert dripped >= 5  # bytes kept coming: only a total deadline stops this


@pytest.fixture
async def drip_server() -> AsyncIterator[str]:
    """A 127.0.0.1 HTTP server that sends headers, then one body byte every 20 ms forever."""
    handlers: list[asyncio.Task[Any]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100000000\r\n\r\n{"data": ['
            )
            while not writer.is_closing():
                await writer.drain()
                await asyncio.sleep(0.02)
                writer.write(b" ")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up: its deadline passed
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()
    for task in handlers:
        task.cancel()
    await asyncio.gather(*handlers, return_exceptions=True)
    await server.wait_closed()


async def test_slow_drip_over_a_real_socket_is_cut_off_at_the_total_deadline(
    drip_server: str,
) -> None:
    started = time.monotonic()
    # httpx's own read timeout is 30 s here: each byte arrives long before it.
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as client:
        with pytest.raises(UpstreamUnavailable, match=r"within 0\.5 s"):
            await fetch_json(client, f"{drip_server}/pools", config(deadline_s=0.5, attempts=1))
    assert 0.5 <= time.monotonic() - started < 1.5


async def test_loopback_server_that_answers_too_late_fails_within_the_deadline() -> None:
    with serve({"/pools": Reply(body=POOLS, delay_s=1.0)}) as (base, hits):
        cfg = config(base_url=base, deadline_s=0.3, attempts=2, rate_per_s=100.0)
        started = time.monotonic()
        async with client_for(cfg, None) as client:
            with pytest.raises(UpstreamUnavailable, match=r"within 0\.3 s"):
                await fetch_json(client, f"{base}/pools", cfg)
        elapsed = time.monotonic() - started
    assert hits["/pools"] == 2
    assert 0.6 <= elapsed < 1.5


# --- lenient parsing: one bad item must not lose the response ----------------------------


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
async def test_non_finite_literal_parses_leniently_and_stays_in_its_item(literal: str) -> None:
    body = POOLS.replace(b'"apy": 9.31466', f'"apy": {literal}'.encode(), 1)
    assert body != POOLS
    fetched = await fetch(Upstream(answer(200, body)))
    assert fetched.lenient
    items = fetched.body["data"]
    assert len(items) == 5
    assert f'"apy":{literal}'.encode() in dump_item(items[0], fetched.lenient)
    assert b"NaN" not in dump_item(items[1], fetched.lenient)
    assert json.loads(dump_item(items[1], fetched.lenient)) == json.loads(POOLS)["data"][1]


def test_lone_surrogate_in_a_lenient_item_is_kept_as_an_escape() -> None:
    item = json.loads(b'{"pool": "\\ud800", "apy": NaN}')
    payload = dump_item(item, lenient=True)
    assert payload == b'{"pool":"\\ud800","apy":NaN}'
    accented = {"symbol": "stETH\u00e9"}
    assert dump_item(accented, lenient=True) == '{"symbol":"stETH\u00e9"}'.encode()


# --- rate limiting ------------------------------------------------------------------------


async def test_rate_limited_transport_really_limits() -> None:
    upstream = Upstream(answer(200, b"[]"))
    transport = RateLimitedTransport(httpx.MockTransport(upstream), AsyncLimiter(5, 1.0))
    started = time.monotonic()
    async with httpx.AsyncClient(transport=transport) as client:
        await asyncio.gather(*(fetch_json(client, URL, config()) for _ in range(10)))
    elapsed = time.monotonic() - started
    assert len(upstream.requests) == 10
    assert elapsed >= 0.9  # 5 at once (the bucket), then 5 more at 5 per second


async def test_client_for_applies_the_source_rate() -> None:
    upstream = Upstream(answer(200, b"[]"))
    cfg = config(rate_per_s=20.0)
    started = time.monotonic()
    async with client_for(cfg, httpx.MockTransport(upstream)) as client:
        for _ in range(30):
            await fetch_json(client, URL, cfg)
    assert time.monotonic() - started >= 0.45  # 20 in the bucket, then 10 at 20/s
    assert upstream.requests[0].headers["user-agent"].startswith("yieldstream/")
