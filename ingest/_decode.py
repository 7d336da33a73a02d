"""Content-Encoding decoding in bounded pieces, so that a size cap holds while decoding.

httpx decodes a whole network read at once: a 2 KB body sent as ``gzip, gzip`` came
out of one read as 1 GiB, before any cap could look at it, with the event loop
blocked meanwhile. :func:`decoded` reads the raw (still encoded) bytes and undoes
each encoding itself, never producing more than :data:`PIECE` bytes per step and
yielding to the event loop between steps, so the caller can stop at its cap with
about one piece more than the cap in memory.

It decodes ``gzip`` (``x-gzip``, several members too), ``deflate`` (zlib-wrapped or
raw, as browsers accept it) and ``identity``, stacked up to :data:`MAX_LAYERS` deep.
Anything else (``br``, ``zstd``, ``compress``, a typo) is :class:`UnsupportedEncoding`:
:data:`ACCEPT_ENCODING` asks only for what it decodes, so a server that sends more
has ignored the request.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncGenerator, AsyncIterable, Iterator, Sequence
from typing import Protocol

PIECE = 64 * 1024  # the most one decoding step produces
MAX_LAYERS = 4  # stacked encodings decoded at most (each keeps a 32 KiB window)
ACCEPT_ENCODING = "gzip, deflate"  # what the request asks for: what is decoded here


class DecodeError(ValueError):
    """The body does not decode as its Content-Encoding says (corrupt or truncated)."""


class UnsupportedEncoding(DecodeError):
    """A Content-Encoding that is not decoded here, or too many of them stacked."""


class _Layer(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]:
        """Decoded pieces of ``data``, each at most PIECE bytes."""
        ...  # pragma: no cover

    def end(self) -> Iterator[bytes]:
        """What is left once the input has ended; DecodeError if it stopped short."""
        ...  # pragma: no cover


class _Identity:
    def feed(self, data: bytes) -> Iterator[bytes]:
        for start in range(0, len(data), PIECE):
            yield data[start : start + PIECE]

    def end(self) -> Iterator[bytes]:
        return iter(())


def _zlib_header(head: bytes) -> bool:
    """Whether ``head`` starts a zlib stream (RFC 1950: CM 8, and the FCHECK bits)."""
    return head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0


class _Zlib:
    """gzip, or deflate (zlib-wrapped or raw: told apart by its first two bytes)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._gzip = name != "deflate"
        self._head = b""  # deflate: the first bytes, until there are two to look at
        self._inflate: zlib._Decompress | None = (
            zlib.decompressobj(zlib.MAX_WBITS | 16) if self._gzip else None
        )
        self._fed = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        self._fed = True
        if self._inflate is None:  # deflate, not yet known which kind
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS if _zlib_header(data) else -15)
        yield from self._run(self._inflate, data)

    def _run(self, inflate: zlib._Decompress, data: bytes) -> Iterator[bytes]:
        while True:
            if inflate.eof:
                data = inflate.unused_data + data
                if not data:
                    return
                if not self._gzip:
                    raise DecodeError(f"{self._name}: data after the end of the stream")
                inflate = self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)  # next member
            try:
                out = inflate.decompress(data, PIECE)
            except zlib.error as exc:
                raise DecodeError(f"{self._name}: {exc}") from None
            data = inflate.unconsumed_tail
            if out:
                yield out
            # A full piece may leave output inside zlib: ask again, even with no input.
            if not data and len(out) < PIECE and not inflate.eof:
                return

    def end(self) -> Iterator[bytes]:
        if not self._fed:
            return  # an empty body stays empty
        if self._inflate is None:
            raise DecodeError(f"{self._name}: truncated ({len(self._head)} byte)")
        yield from self._run(self._inflate, b"")
        if not self._inflate.eof:
            raise DecodeError(f"{self._name}: truncated (the stream does not end)")


_LAYERS = {"gzip": _Zlib, "x-gzip": _Zlib, "deflate": _Zlib}


def layers(content_encoding: str) -> list[_Layer]:
    """One decoder per encoding named, in the order to undo them (the last applied first)."""
    names = [n.strip().lower() for n in content_encoding.split(",")]
    names = [n for n in names if n and n != "identity"]
    unknown = [n for n in names if n not in _LAYERS]
    if unknown:
        raise UnsupportedEncoding(
            f"unsupported Content-Encoding {unknown[0][:40]!r} "
            f"(yieldstream asks for and decodes {ACCEPT_ENCODING} only)"
        )
    if len(names) > MAX_LAYERS:
        raise UnsupportedEncoding(
            f"{len(names)} stacked Content-Encodings (at most {MAX_LAYERS} are decoded)"
        )
    return [_LAYERS[name](name) for name in reversed(names)] or [_Identity()]


def _through(chain: Sequence[_Layer], data: bytes) -> Iterator[bytes]:
    """``data`` decoded by every layer of ``chain`` in turn, a bounded piece at a time."""
    if not chain:
        yield data
        return
    for piece in chain[0].feed(data):
        yield from _through(chain[1:], piece)


async def decoded(raw: AsyncIterable[bytes], content_encoding: str) -> AsyncGenerator[bytes, None]:
    """The decoded body, in pieces of at most PIECE bytes; the event loop runs between them.

    Raises :class:`UnsupportedEncoding` before reading anything, :class:`DecodeError`
    when the body does not decode.
    """
    chain = layers(content_encoding)
    async for chunk in raw:
        for piece in _through(chain, chunk):
            yield piece
            await asyncio.sleep(0)
    for depth, layer in enumerate(chain):
        for rest in layer.end():
            for piece in _through(chain[depth + 1 :], rest):
                yield piece
                await asyncio.sleep(0)
