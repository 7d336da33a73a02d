"""Saved upstream responses, read as the daemon and backfill read them (``yieldstream parse``).

A file that is not what it should be is a :class:`BadResponse`; an option that does
not fit the source (a history of a source without one, a listing it needs and was
not given) is a :class:`ConfigError`. Both say which option and why in one line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest._history import history_records as _history_records
from ingest._http import parse_json
from yieldstream.contracts import RawRecord
from yieldstream.errors import BadResponse, ConfigError
from yieldstream.registry import Source, source, sources

# The sources that have a history endpoint, for backfill's --help and messages.
WITH_HISTORY = ", ".join(name for name, src in sources().items() if src.history)

# What --reference takes, per source that reads reference data, for parse's --help.
READS = (
    "; ".join(
        f"{name}: a saved {', '.join(src.after)} response"
        for name, src in sources().items()
        if src.after
    )
    or "no source reads any"
)


def parse_file(file: Path) -> tuple[Any, bool]:
    """The JSON body of ``file``, and whether it needed the lenient parser (NaN)."""
    return parse_json(file.read_bytes(), "application/json", str(file))


def records(src: Source, file: Path) -> list[RawRecord]:
    """The records of a saved response of ``src``, split as the daemon splits it."""
    body, lenient = parse_file(file)
    problems = []
    # Most specific shape first: a /apr/sma body also has the object /apr/last expects.
    for endpoint in sorted(src.endpoints, key=lambda e: -len(e.items_at)):
        try:
            return list(
                endpoint.records(
                    body,
                    source=src.name,
                    fetched_at=datetime.now(UTC),
                    run_id="parse",
                    lenient=lenient,
                    url=str(file),
                )
            )
        except BadResponse as exc:
            problems.append(str(exc))
    raise BadResponse(f"{file} is not a {src.name} response: {'; '.join(problems)}", url=str(file))


def history_records(src: Source, file: Path, entity: str) -> list[RawRecord]:
    """The records of a saved history response of ``entity``, as backfill makes them."""
    if src.history is None:
        raise ConfigError(
            f"--pool: {src.name} has no history endpoint (these have: {WITH_HISTORY})"
        )
    body, lenient = parse_file(file)
    return list(
        _history_records(
            src.history.points(body, entity, str(file), b""),
            source=src.name,
            endpoint=src.history.endpoint(entity),
            fetched_at=datetime.now(UTC),
            run_id="parse",
            lenient=lenient,
        )
    )


def listing(src: Source, entity: str, path: Path | None) -> dict[str, bytes]:
    """``entity``'s item of a saved snapshot, which its history points need."""
    assert src.history is not None  # history_records checked
    if src.history.entities:  # a fixed series (Lido's): its points need no listing
        return {}
    snapshot = src.endpoints[0].path
    if path is None:
        raise ConfigError(
            f"--pool needs --listing: a saved {snapshot} response that lists {entity} "
            "(a history point holds only figures and a time)"
        )
    try:
        items = {r.native_id: r.payload for r in records(src, path)}
    except BadResponse as exc:
        raise BadResponse(f"--listing: {exc}", url=str(path)) from None
    if entity not in items:
        raise BadResponse(
            f"--listing: {path} does not list {entity} ({len(items)} items)", url=str(path)
        )
    return {entity: items[entity]}


def providers_of(src: Source) -> list[Source]:
    """The sources whose reference data ``src``'s transform reads (its AFTER)."""
    return [p for p in (source(name) for name in src.after) if p.reference]


def reference(src: Source, file: Path) -> tuple[str, dict[str, str]]:
    """The reference data a saved response of one of ``src``'s providers gives."""
    providers = providers_of(src)
    if not providers:
        raise ConfigError(f"--reference: {src.name} reads no other source's reference data")
    problems = []
    for provider in providers:
        assert provider.reference is not None  # providers_of keeps only those
        try:
            found = records(provider, file)
        except BadResponse as exc:
            problems.append(str(exc))
            continue
        return provider.name, provider.reference(r.payload for r in found)
    raise BadResponse(f"--reference: {'; '.join(problems)}", url=str(file))
