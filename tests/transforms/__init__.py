"""Helpers for the transform tests: recorded responses split the way collectors split them.

A recorded response belongs to the endpoint whose last path segments, joined by ``-``,
start its file name: ``pools-*.json`` is ``/pools``, ``apr-sma-*.json`` is
``.../apr/sma``. A file that names no snapshot endpoint of its source
(``chart-*.json``, a history response) is read by ``test_history.py`` instead.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from ingest._http import parse_json
from ingest._records import Endpoint, endpoint_for, recorded_path
from tests.conftest import FETCHED_AT, FIXTURES
from transforms import Context, Transform, apply
from yieldstream.contracts import Observation, RawRecord, Rejection
from yieldstream.registry import source as registered


def fixture_files(source: str) -> list[Path]:
    """Every recorded response of ``source``, sorted by name."""
    return sorted((FIXTURES / source).glob("*.json"))


def recorded_fixtures(source: str) -> list[tuple[Path, Endpoint]]:
    """The recorded responses of ``source`` that belong to one of its endpoints."""
    endpoints = registered(source).endpoints
    pairs = [(f, endpoint_for(endpoints, f)) for f in fixture_files(source)]
    return [(f, e) for f, e in pairs if e is not None]


def body_of(source: str, name: str) -> Any:
    """A recorded response parsed the way the fetcher parses it."""
    path = FIXTURES / source / name
    body, _ = parse_json(path.read_bytes(), "application/json", str(path))
    return body


def records_of(source: str, name: str, *, fetched_at: datetime = FETCHED_AT) -> list[RawRecord]:
    """The RawRecords a collector makes from a recorded response (one per item)."""
    path = FIXTURES / source / name
    named = recorded_path(registered(source).endpoints, path)
    assert named is not None, f"{name} names no endpoint of {source}"
    endpoint, fetched = named
    body, lenient = parse_json(path.read_bytes(), "application/json", str(path))
    return list(
        endpoint.records(
            body,
            source=source,
            fetched_at=fetched_at,
            run_id="test",
            lenient=lenient,
            path=fetched,
        )
    )


def observe(transform: Transform, record: RawRecord, ctx: Context | None = None) -> Observation:
    """The single observation ``record`` becomes; fails the test on a rejection."""
    result = apply(transform, record, ctx or Context())
    assert not isinstance(result, Rejection), f"rejected: [{result.stage}] {result.reason}"
    assert len(result) == 1
    return result[0]


def rejection(transform: Transform, record: RawRecord, ctx: Context | None = None) -> Rejection:
    """The rejection ``record`` becomes; fails the test if it became observations."""
    result = apply(transform, record, ctx or Context())
    assert isinstance(result, Rejection), f"accepted: {result}"
    assert result.payload == record.payload
    assert result.native_id == record.native_id
    assert result.raw_id == record.raw_id
    assert result.source == record.source
    assert result.reason
    return result
