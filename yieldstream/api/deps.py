"""What the endpoints are handed (FastAPI dependencies): the store's readers, the
settings, a page size within bounds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request

from yieldstream.api.pages import BadCursor, Order, Window, window
from yieldstream.api.store import Readers
from yieldstream.settings import ApiSettings, Settings

DEFAULT_LIMIT = 100
V1 = "/v1"  # the API's version, the prefix of its paths


def get_readers(request: Request) -> Readers:
    readers: Readers = request.app.state.readers
    return readers


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_api_settings(request: Request) -> ApiSettings:
    return get_settings(request).api


Store = Annotated[Readers, Depends(get_readers)]
Config = Annotated[Settings, Depends(get_settings)]


def page_size(
    api: Annotated[ApiSettings, Depends(get_api_settings)],
    limit: Annotated[
        int, Query(ge=1, description="rows per page; at most the server's api.max_limit")
    ] = DEFAULT_LIMIT,
) -> int:
    return min(limit, api.max_limit)


Limit = Annotated[int, Depends(page_size)]
Cursor = Annotated[str | None, Query(description="next_cursor of the page before")]


def paged(order: Order, cursor: str | None, limit: int) -> Window:
    """The window of the page after ``cursor``; a bad cursor is a 422 naming it."""
    try:
        return window(order, cursor, limit)
    except BadCursor as exc:
        raise invalid("cursor", str(exc)) from None


def invalid(field: str, message: str) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, naming the query field."""
    return HTTPException(
        422, [{"type": "value_error", "loc": ["query", field], "msg": message, "input": None}]
    )


def utc(moment: datetime | None) -> datetime | None:
    """A time given without a zone is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
