"""Keyset pagination: an opaque cursor holding the last row's sort key.

A list is read in one stable order (its sort columns, then columns that make the
key unique, e.g. ``(source, pool_id)``). A page is the first ``limit`` rows after
the cursor's key; one more row is read to know whether another page follows, and
the cursor of the next page is the key of the page's last row. The cursor is
base64url of a JSON array: the order's name, then the key's values. Nothing in it
becomes SQL text: its values are bound as parameters, its name must be the order
asked for, and its shape is checked (a bad cursor is a 422 naming ``cursor``).

Keys are numbers or text; a sort column that may be NULL is given as an expression
that never is (``coalesce(tvl_usd, '-infinity'::DOUBLE)``), so a NULL sorts last
and compares like any value.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Key = Literal["number", "text"]


class BadCursor(ValueError):
    """The cursor was not made by this order of this list."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column of an order: its SQL (code, never request text), direction and type."""

    sql: str
    descending: bool = False
    kind: Key = "text"


@dataclass(frozen=True, slots=True)
class Order:
    """A stable order of a list; its last columns make each row's key unique."""

    name: str
    columns: tuple[Column, ...]

    def order_by(self) -> str:
        return ", ".join(f"{c.sql} {'DESC' if c.descending else 'ASC'}" for c in self.columns)

    def select(self) -> str:
        """The key's columns, for the SELECT list: ``_k0, _k1, ...``."""
        return ", ".join(f"{c.sql} AS _k{i}" for i, c in enumerate(self.columns))

    def after(self, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """The condition of the rows after the key ``values``, and its parameters.

        ``(a > ?) OR (a = ? AND b > ?) OR ...``, ``<`` for a descending column.
        """
        ors: list[str] = []
        params: list[Any] = []
        for i, column in enumerate(self.columns):
            ands = [f"{c.sql} = ?" for c in self.columns[:i]]
            ands.append(f"{column.sql} {'<' if column.descending else '>'} ?")
            ors.append("(" + " AND ".join(ands) + ")")
            params.extend([*values[:i], values[i]])
        return "(" + " OR ".join(ors) + ")", params

    def encode(self, values: Sequence[Any]) -> str:
        text = json.dumps([self.name, *values], separators=(",", ":"))
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    def decode(self, cursor: str) -> list[Any]:
        """The key in ``cursor``; BadCursor when it is not one of this order's."""
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            found = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        except (ValueError, binascii.Error, UnicodeError):
            raise BadCursor("not a cursor this API gave; pass next_cursor as it came") from None
        if not isinstance(found, list) or len(found) != len(self.columns) + 1:
            raise BadCursor("not a cursor this API gave; pass next_cursor as it came")
        if found[0] != self.name:
            raise BadCursor(f"the cursor is of another order ({found[0]!r}); keep sort as it was")
        values = found[1:]
        for column, value in zip(self.columns, values, strict=True):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if (column.kind == "number") != number or (column.kind == "text") != isinstance(
                value, str
            ):
                raise BadCursor("not a cursor this API gave; pass next_cursor as it came")
        return values


@dataclass(frozen=True, slots=True)
class Window:
    """What one page reads: the condition, its parameters, and the rows to fetch."""

    where: str
    params: list[Any]
    limit: int


def window(order: Order, cursor: str | None, limit: int) -> Window:
    """The page after ``cursor`` (the first page without one, or with an empty one),
    ``limit`` rows long."""
    if not cursor:
        return Window("TRUE", [], limit)
    where, params = order.after(order.decode(cursor))
    return Window(where, params, limit)


def split(
    order: Order, rows: list[dict[str, Any]], limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """The page's rows (the key columns removed) and the next page's cursor, if any."""
    keys = [f"_k{i}" for i in range(len(order.columns))]
    page = rows[:limit]
    cursor = None
    if len(rows) > limit:
        cursor = order.encode([page[-1][k] for k in keys])
    for row in page:
        for k in keys:
            del row[k]
    return page, cursor
