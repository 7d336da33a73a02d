"""Limits every stage holds one upstream item to: nesting depth and native ids.

An item is the unit of failure: whatever is wrong with one item (nested too deep,
an id no stage can store, a repeated id) makes that item a rejection and leaves the
others alone. These checks are the same wherever an item is split out of a
response, encoded, decoded from the bus or re-read by a transform.

:data:`MAX_DEPTH` is far below any recursion limit (Python's 1,000 frames, orjson's
1,024 levels, msgspec's and ``json``'s recursion checks), so no decoder or encoder
meets a ``RecursionError`` on an item that passed. The check on encoded text costs
two ``bytes.count`` calls for any item with fewer brackets than the limit (all real
ones); one with more is first reduced level by level in C (a message of many
observations as columns has thousands of brackets, three levels), and only one that
does not reduce so is scanned exactly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

MAX_DEPTH: Final = 64  # levels of arrays and objects one item may nest
MAX_ID_CHARS: Final = 512  # the longest native id (Observation's text fields hold 512)

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: one step a run
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = frozenset(b"[{")
_INNERMOST = re.compile(rb"[\[{][\]}]")


def too_deep(text: bytes | str, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON ``text`` nests arrays and objects more than ``limit`` levels deep.

    Fewer opening brackets than ``limit`` cannot nest deeper (brackets inside strings
    only make the count larger), so nearly every item is answered by the counts.
    """
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    # Many brackets, few levels (a message of observations as columns): removing
    # every innermost pair takes one pass a level, in C; empty within ``limit``
    # passes is balanced and no deeper. Anything else is counted exactly.
    shallow = brackets
    for _ in range(limit):
        shallow = _INNERMOST.sub(b"", shallow)
        if not shallow:
            return False
    level = 0
    for byte in brackets:
        level = level + 1 if byte in _OPEN else level - 1
        if level > limit:
            return True
    return False


def too_deep_each(texts: Sequence[bytes]) -> list[bool]:
    """:func:`too_deep` of each of ``texts`` (the thousands of points of one fetch),
    its bracket count inlined: the scan runs only for a text with more brackets than
    the limit. (Arrow's ``count_substring`` was slower than ``bytes.count`` here.)"""
    return [t.count(b"[") + t.count(b"{") > MAX_DEPTH and too_deep(t) for t in texts]


def id_problem(native_id: str) -> str | None:
    """Why ``native_id`` is not text every stage can store, or None when it is.

    Every stage must be able to hold it: Arrow and Parquet (valid UTF-8, so no lone
    surrogate), DuckDB and SQLite (no NUL), a Kafka key, a log line (bounded).
    """
    if len(native_id) > MAX_ID_CHARS:
        return f"id longer than {MAX_ID_CHARS} characters ({len(native_id)})"
    if "\x00" in native_id:
        return f"id {shown(native_id)} holds a NUL character"
    if not native_id.isascii():
        try:
            native_id.encode("utf-8")
        except UnicodeEncodeError:
            return f"id {shown(native_id)} is not valid UTF-8 text (a lone surrogate)"
    return None


def shown(value: object, limit: int = 80) -> str:
    """``value`` for a reason or a log line: escaped to ASCII and cut at ``limit``."""
    text = ascii(value) if isinstance(value, str) else type(value).__name__
    return text if len(text) <= limit else f"{text[:limit]}..."
