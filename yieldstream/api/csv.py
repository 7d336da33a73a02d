"""CSV answers: ``?format=csv`` or ``Accept: text/csv`` on any endpoint returning a table.

One header row of the item model's field names, then one row per item: times in
ISO 8601 UTC, booleans ``true``/``false``, lists and objects as JSON, null as an
empty cell. The next page's cursor, if any, is in the ``X-Next-Cursor`` header.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Header, Query
from fastapi.responses import Response
from pydantic import BaseModel

CSV_TYPE = "text/csv; charset=utf-8"
# For the OpenAPI docs: the endpoints that answer a table answer CSV too.
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}}
}


class Format(StrEnum):
    json = "json"
    csv = "csv"


def wants_csv(
    fmt: Annotated[
        Format | None,
        Query(alias="format", description="csv or json; default: by the Accept header"),
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> bool:
    """Whether to answer CSV: ``?format=`` wins over ``Accept``."""
    if fmt is not None:
        return fmt is Format.csv
    return accept is not None and "text/csv" in accept.lower()


def csv_response(
    model: type[BaseModel], items: Sequence[BaseModel], next_cursor: str | None = None
) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = list(model.model_fields)
    writer.writerow(names)
    for item in items:
        writer.writerow([_cell(getattr(item, name)) for name in names])
    headers = {"X-Next-Cursor": next_cursor} if next_cursor else None
    return Response(out.getvalue(), media_type=CSV_TYPE, headers=headers)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)
