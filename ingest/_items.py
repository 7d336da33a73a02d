"""The items of one response, checked one by one before they become RawRecords.

An item that cannot travel on as it is (nested deeper than
:data:`yieldstream.items.MAX_DEPTH`, an id that is not text every stage can store,
an id an earlier item of the same response has) still becomes a RawRecord, named
``#<index>`` and with its payload as safe bytes, but with ``problem`` saying why:
the runners make it a rejection of stage ``decode`` before anything archives or
transforms it (:func:`transforms.apply` refuses it too). The other items go on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from ingest._http import dump_item
from yieldstream.contracts import RawRecord, RecordKind
from yieldstream.items import MAX_DEPTH, id_problem, shown, too_deep

# How much of the first item's payload a duplicate's reason quotes.
QUOTED = 300
DEEP = f"item nested deeper than {MAX_DEPTH} levels"


class Items:
    """Checks the items of one response; remembers ids to find repeats."""

    __slots__ = ("_lenient", "_seen")

    def __init__(self, *, lenient: bool) -> None:
        self._lenient = lenient
        self._seen: dict[str, tuple[int, bytes]] = {}

    def check(self, index: int, native: Any, item: Any) -> tuple[str, bytes, str | None]:
        """``(native_id, payload, problem)`` of item ``index``; ``problem`` None if usable.

        ``native`` is the item's id as upstream gave it (a prefix already added);
        None or empty names the item ``#<index>``.
        """
        problem: str | None
        try:
            payload = dump_item(item, self._lenient)
        except RecursionError:  # deeper than the encoder goes: far past MAX_DEPTH
            payload, problem = dump_deep(item), DEEP
        else:
            problem = DEEP if too_deep(payload) else None
        if isinstance(native, str) and native:
            native_id = native
        elif native is None or native == "":
            native_id = f"#{index}"
        elif isinstance(native, int | float):
            native_id = str(native)
        else:
            native_id = f"#{index}"
            problem = problem or f"id is {'an object' if isinstance(native, dict) else 'a list'}"
        if problem is None:
            problem = id_problem(native_id)
            if problem is None and (first := self._seen.get(native_id)) is not None:
                problem = _duplicate(native_id, first, payload)
        if problem is not None:
            native_id = self._fresh(f"#{index}")
        self._seen[native_id] = (index, payload)
        return native_id, payload, problem

    def _fresh(self, name: str) -> str:
        """``name``, or with ``'`` added until no item of the response has it."""
        while name in self._seen:
            name += "'"
        return name


def _duplicate(native_id: str, first: tuple[int, bytes], payload: bytes) -> str:
    first_index, first_payload = first
    head = f"duplicate id in one response: {shown(native_id)} is item #{first_index}'s"
    if first_payload == payload:
        return f"{head}, with the same values"
    quoted = first_payload[:QUOTED].decode("utf-8", "replace")
    return (
        f"{head}, with other values (kept: {quoted}{'...' if len(first_payload) > QUOTED else ''})"
    )


def dump_deep(value: Any) -> bytes:
    """JSON text of a value nested too deep for a recursive encoder, without recursing.

    Only for items already rejected: leaves are escaped to ASCII (a lone surrogate
    stays an escape), NaN and Infinity are kept as literals.
    """
    parts: list[bytes] = []
    todo: list[Any] = [value]
    while todo:
        node = todo.pop()
        if isinstance(node, bytes):  # a bracket or separator queued below
            parts.append(node)
        elif isinstance(node, dict):
            tokens: list[Any] = [b"{"]
            for n, (key, child) in enumerate(node.items()):
                tokens += [b"," if n else b"", json.dumps(str(key)).encode() + b":", child]
            todo.extend(reversed([*tokens, b"}"]))
        elif isinstance(node, list):
            tokens = [b"["]
            for n, child in enumerate(node):
                tokens += [b"," if n else b"", child]
            todo.extend(reversed([*tokens, b"]"]))
        else:
            parts.append(json.dumps(node).encode())
    return b"".join(parts)


def checked_records(
    items: Iterable[Any],
    native: Callable[[Any, int], Any],
    *,
    source: str,
    endpoint: str,
    fetched_at: datetime,
    run_id: str,
    lenient: bool,
    kind: RecordKind = "snapshot",
) -> Iterator[RawRecord]:
    """One RawRecord per item (an endpoint's, or those a collector joined from several
    responses: one per vault, pool or chain), each checked by one :class:`Items`;
    ``native(item, index)`` is the item's id as upstream gave it."""
    checked = Items(lenient=lenient)
    for index, item in enumerate(items):
        native_id, payload, problem = checked.check(index, native(item, index), item)
        yield RawRecord(
            source=source,
            endpoint=endpoint,
            fetched_at=fetched_at,
            run_id=run_id,
            kind=kind,
            native_id=native_id,
            payload=payload,
            problem=problem,
        )
