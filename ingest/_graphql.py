"""GraphQL over the common fetch path: a POST of ``{"query", "variables"}``, no framework.

A GraphQL API answers most failures with status 200 and an ``errors`` list (a bad
field, a query over its complexity budget, a rate limit); :func:`check` turns that
into a failed fetch carrying the server's messages, retriable when it is a rate
limit. Paging by ``first``/``skip`` variables is :func:`skip_paging`, bounded by the
endpoint's ``max_pages`` (see :class:`ingest._records.Endpoint`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ingest._http import Request
from yieldstream.errors import BadResponse, UpstreamRejected, UpstreamUnavailable

# Words of an error message that mean "try again later", not "this query is wrong".
_TRANSIENT = ("rate limit", "too many requests", "timeout", "timed out", "temporarily")
_SHOWN_ERRORS = 3


def body(query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of a GraphQL POST."""
    return {"query": query, "variables": dict(variables or {})}


def check(parsed: Any, url: str, head: bytes) -> None:
    """Raise when a GraphQL response carries ``errors`` or no ``data`` (see module doc)."""
    if not isinstance(parsed, dict):
        raise BadResponse(f"expected a GraphQL response object from {url}", url=url, body=head)
    errors = parsed.get("errors")
    if errors:
        messages = [_message(e) for e in errors] if isinstance(errors, list) else [str(errors)]
        shown = "; ".join(messages[:_SHOWN_ERRORS])
        if len(messages) > _SHOWN_ERRORS:
            shown += f"; and {len(messages) - _SHOWN_ERRORS} more"
        text = f"GraphQL errors from {url}: {shown}"
        if any(word in shown.lower() for word in _TRANSIENT):
            raise UpstreamUnavailable(text)
        raise UpstreamRejected(text)
    if not isinstance(parsed.get("data"), dict):
        raise BadResponse(f"GraphQL response from {url} holds no data", url=url, body=head)


def _message(error: Any) -> str:
    if isinstance(error, dict):
        message = str(error.get("message") or error)
        code = (
            (error.get("extensions") or {}).get("code")
            if isinstance(error.get("extensions"), dict)
            else None
        )
        return f"{message} ({code})" if code else message
    return str(error)


def skip_paging(first: int) -> Callable[[list[Any], Request], Request | None]:
    """The next page of a ``first``/``skip`` listing: another while a page is full."""

    def next_page(items: list[Any], request: Request) -> Request | None:
        if len(items) < first or not isinstance(request.json, dict):
            return None
        variables = dict(request.json.get("variables") or {})
        variables["skip"] = int(variables.get("skip") or 0) + first
        return Request(
            request.params,
            request.method,
            {**request.json, "variables": variables},
            request.check,
        )

    return next_page
