"""Bounded decoding: compression bombs over a real socket stop at the cap, in bounded
memory, with the event loop running; unsupported encodings are named.

The bombs are real: a ~2.5 KB ``gzip, gzip`` body that decodes to 1 GiB, built in a
fraction of a second from one fully flushed deflate block repeated (no GiB is ever
compressed, nor held).
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import os
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import AsyncIterator, Callable
from functools import cache
from pathlib import Path

import httpx
import orjson
import pytest

from ingest._decode import PIECE, DecodeError, UnsupportedEncoding, decoded
from ingest._http import PREVIEW_BYTES, Fetched, SourceConfig, fetch_json
from tests.conftest import recorded
from yieldstream.app import client_for
from yieldstream.errors import BadResponse
from yieldstream.loopback import Reply, serve

MIB = 1024 * 1024
GIB_IN_MIB = 1024
POOLS = recorded("defillama-yields", "pools-stablecoin_quant.json")
ROOT = Path(__file__).resolve().parents[2]


def _deflate_of_zeros(mib: int) -> bytes:
    """A raw deflate stream of ``mib`` MiB of zeros: one flushed block, repeated."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(bytes(MIB)) + packer.flush(zlib.Z_FULL_FLUSH)
    return block * mib + b"\x03\x00"  # a final empty block ends it


@cache
def gzip_bomb(mib: int) -> bytes:
    """A gzip member of ``mib`` MiB of zeros (~1 KB per MiB)."""
    crc, zeros = 0, bytes(MIB)
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + _deflate_of_zeros(mib) + struct.pack("<II", crc, (mib * MIB) & 0xFFFFFFFF)


@cache
def zlib_bomb(mib: int) -> bytes:
    """A zlib-wrapped deflate stream (Content-Encoding: deflate) of ``mib`` MiB of zeros."""
    adler, zeros = 1, bytes(MIB)
    for _ in range(mib):
        adler = zlib.adler32(zeros, adler)
    return b"\x78\xda" + _deflate_of_zeros(mib) + struct.pack(">I", adler)


BOMBS = {  # Content-Encoding -> a body of that encoding that decodes to 1 GiB
    "gzip, gzip": lambda: gzip.compress(gzip_bomb(GIB_IN_MIB)),
    "gzip": lambda: gzip_bomb(GIB_IN_MIB),
    "deflate": lambda: zlib_bomb(GIB_IN_MIB),
    "deflate, gzip": lambda: gzip.compress(zlib_bomb(GIB_IN_MIB)),
    "x-gzip": lambda: gzip_bomb(GIB_IN_MIB),
}


def test_the_bombs_are_real() -> None:
    assert len(BOMBS["gzip, gzip"]()) < 4000
    assert gzip.decompress(gzip_bomb(3)) == bytes(3 * MIB)
    assert zlib.decompress(zlib_bomb(3)) == bytes(3 * MIB)


def config(base_url: str, **overrides: object) -> SourceConfig:
    settings: dict[str, object] = {
        "base_url": base_url,
        "attempts": 3,
        "wait_initial_s": 0.01,
        "wait_max_s": 0.05,
        "deadline_s": 20.0,
        "rate_per_s": 100.0,
    }
    return SourceConfig.model_validate({**settings, **overrides})


async def fetch_from(reply: Reply, **overrides: object) -> tuple[object, dict[str, int]]:
    """fetch_json over a real 127.0.0.1 socket: the result (or the error) and the hits."""
    with serve({"/pools": reply}) as (base, hits):
        cfg = config(base, **overrides)
        async with client_for(cfg, None) as client:
            try:
                result: object = await fetch_json(client, f"{base}/pools", cfg)
            except BadResponse as exc:
                result = exc
    return result, hits


# --- bombs: rejected at the cap, while decoding ------------------------------------------


@pytest.mark.parametrize("encoding", list(BOMBS))
async def test_bomb_is_rejected_at_the_cap_after_decoding(encoding: str) -> None:
    reply = Reply(body=BOMBS[encoding](), headers=(("Content-Encoding", encoding),))
    started = time.monotonic()
    error, hits = await fetch_from(reply, max_body_mib=8)
    assert isinstance(error, BadResponse)
    assert "exceeds the 8 MiB cap after decoding" in str(error)
    assert error.body == bytes(len(error.body))  # what was decoded: zeros
    assert 0 < len(error.body) <= PREVIEW_BYTES
    assert hits["/pools"] == 1  # fatal: not retried
    assert time.monotonic() - started < 5  # stopped at 8 MiB, not decoded to 1 GiB


async def test_event_loop_keeps_running_while_a_bomb_decodes() -> None:
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    reply = Reply(body=BOMBS["gzip, gzip"](), headers=(("Content-Encoding", "gzip, gzip"),))
    with serve({"/pools": reply}) as (base, _):
        cfg = config(base)  # the default cap: 64 MiB decoded
        async with client_for(cfg, None) as client:
            task = asyncio.create_task(ticker())
            await asyncio.sleep(0)
            try:
                with pytest.raises(BadResponse, match="exceeds the 64 MiB cap after decoding"):
                    await fetch_json(client, f"{base}/pools", cfg)
                ticks.append(time.monotonic())  # the gap up to the end counts too
            finally:
                task.cancel()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) >= 3
    assert max(gaps) < 0.1, f"the event loop stalled for {max(gaps):.3f} s"


CHILD = """
import asyncio, sys
from pathlib import Path
from ingest._http import SourceConfig, fetch_json
from yieldstream.app import client_for
from yieldstream.errors import BadResponse
from yieldstream.loopback import Reply, serve

def kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)

async def main():
    body = sys.stdin.buffer.read()
    encoding, cap = sys.argv[1], float(sys.argv[2])
    small = Reply(body=b"[]")
    bomb = Reply(body=body, headers=(("Content-Encoding", encoding),))
    with serve({"/small": small, "/bomb": bomb}) as (base, _):
        cfg = SourceConfig(base_url=base, max_body_mib=cap, attempts=1, rate_per_s=100)
        async with client_for(cfg, None) as client:
            await fetch_json(client, f"{base}/small", cfg)  # every import and buffer warm
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
            before = kib("VmHWM")
            try:
                await fetch_json(client, f"{base}/bomb", cfg)
            except BadResponse as exc:
                assert "cap after decoding" in str(exc), exc
            else:
                raise AssertionError("the bomb was accepted")
    print(kib("VmHWM") - before, kib("VmHWM"))

asyncio.run(main())
"""


def peak_growth_kib(encoding: str, body: bytes, cap_mib: float) -> tuple[int, int]:
    """Peak RSS growth over a fetch of ``body`` in a fresh process, and the peak (KiB)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), encoding, str(cap_mib)],
        input=body,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    growth, peak = done.stdout.split()
    return int(growth), int(peak)


@pytest.mark.parametrize("encoding", ["gzip, gzip", "deflate"])
def test_peak_memory_of_a_bomb_stays_below_twice_the_cap(
    encoding: str, report: Callable[[str], None]
) -> None:
    growth, peak = peak_growth_kib(encoding, BOMBS[encoding](), 8)
    report(f"{encoding} 1 GiB bomb, 8 MiB cap: peak RSS +{growth / 1024:.1f} MiB ({peak} KiB)")
    assert growth < 2 * 8 * 1024


# --- what decodes, what does not ---------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("", lambda b: b),
        ("identity", lambda b: b),
        ("gzip", gzip.compress),
        ("GZip, gzip", lambda b: gzip.compress(gzip.compress(b))),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b, wbits=-15)),  # raw deflate, as IIS sent it
        ("gzip,identity, deflate", lambda b: zlib.compress(gzip.compress(b))),
        ("gzip", lambda b: gzip.compress(b[:1000]) + gzip.compress(b[1000:])),  # 2 members
    ],
)
async def test_genuine_encodings_decode(encoding: str, encode: Callable[[bytes], bytes]) -> None:
    reply = Reply(body=encode(POOLS), headers=(("Content-Encoding", encoding),))
    fetched, _ = await fetch_from(reply)
    assert isinstance(fetched, Fetched), fetched
    assert fetched.body == orjson.loads(POOLS)
    assert fetched.nbytes == len(POOLS)


@pytest.mark.parametrize(
    "encoding", ["br", "gzip, br", "zstd", "compress", "gzip, bogus", "gzip, " * 5 + "gzip"]
)
async def test_unsupported_encoding_is_a_clear_bad_response(encoding: str) -> None:
    error, hits = await fetch_from(
        Reply(body=b"\x00" * 100, headers=(("Content-Encoding", encoding),))
    )
    assert isinstance(error, BadResponse)
    assert "Content-Encoding" in str(error)
    assert hits["/pools"] == 1


@pytest.mark.parametrize(
    ("encoding", "body", "reason"),
    [
        ("gzip", gzip.compress(POOLS)[:-20], "truncated"),
        ("gzip", b"\x1f\x8b not gzip at all", "gzip"),
        ("gzip", gzip.compress(POOLS) + b"trailing junk", "gzip"),
        ("deflate", zlib.compress(POOLS) + b"x", "after the end"),
        ("deflate", b"x", "truncated"),
    ],
)
async def test_broken_encoded_body_is_an_undecodable_bad_response(
    encoding: str, body: bytes, reason: str
) -> None:
    error, _ = await fetch_from(Reply(body=body, headers=(("Content-Encoding", encoding),)))
    assert isinstance(error, BadResponse)
    assert "undecodable body" in str(error)
    assert reason in str(error)


async def test_the_request_asks_only_for_what_is_decoded() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["accept-encoding"])
        return httpx.Response(200, content=b"[]")

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        await fetch_json(client, "https://x.example/pools", config("https://x.example"))
    assert seen == ["gzip, deflate"]


# --- the decoder itself --------------------------------------------------------------------


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_pieces_never_exceed_the_piece_size_even_byte_by_byte_input() -> None:
    packed = gzip.compress(gzip_bomb(2))
    one_byte_chunks = chunks(*(packed[i : i + 1] for i in range(len(packed))))
    sizes = [len(p) async for p in decoded(one_byte_chunks, "gzip, gzip")]
    assert max(sizes) <= PIECE
    assert sum(sizes) == 2 * MIB


async def test_decoder_errors_name_what_failed() -> None:
    with pytest.raises(UnsupportedEncoding, match="'br'"):
        [p async for p in decoded(chunks(b"x"), "br")]
    with pytest.raises(DecodeError, match="truncated"):
        [p async for p in decoded(chunks(gzip_bomb(1)[:500]), "gzip")]
    assert [p async for p in decoded(chunks(), "gzip")] == []  # nothing stays nothing
