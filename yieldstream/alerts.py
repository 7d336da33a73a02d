"""Alerts: what one is, how it travels on ``yields.alerts``, and how analysts list them.

The sink opens and clears alerts in the store (:mod:`sinks.alerts`) after the
batches it commits (:mod:`yieldstream.alertpass`); this module holds what readers
and the Kafka adapter need and imports no DuckDB: the :class:`Alert` record, its
wire format, the listing query behind ``yieldstream alerts`` and the parsing of its
``--since``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from yieldstream.sqltext import literal

KINDS: Final = ("apy_spike", "apy_stuck", "tvl_drawdown", "stale_source", "disagreement")
SCHEMA_VERSION: Final = 1
Event = Literal["opened", "cleared"]
COLUMNS: Final = (
    "alert_id",
    "kind",
    "source",
    "pool_id",
    "product_id",
    "opened_at",
    "evidence",
    "severity",
    "cleared_at",
    "detected_at",
)


@dataclass(frozen=True, slots=True)
class Alert:
    """One row of the ``alerts`` table, and what just happened to it (``event``)."""

    alert_id: str
    kind: str
    source: str
    pool_id: str | None
    product_id: str | None
    opened_at: datetime
    evidence: str  # a JSON object
    severity: str
    cleared_at: datetime | None
    detected_at: datetime
    event: Event

    @property
    def key(self) -> str:
        """The Kafka key: ``<kind>:<source>:<pool or product>``, the dedup key's text."""
        return f"{self.kind}:{self.source}:{self.pool_id or self.product_id or ''}"


class Alerts(list[Alert]):
    """The alerts one evaluation opened or cleared: published together, after the commit."""


def encode(alert: Alert) -> bytes:
    """The ``yields.alerts`` value: a JSON object with ``type`` ``"alert"``.

    Fields: ``schema_version``, ``event`` (``opened`` | ``cleared``) and the table's
    columns; times are ISO 8601 UTC, ``evidence`` is the JSON object itself.
    """
    value: dict[str, Any] = {"type": "alert", "schema_version": SCHEMA_VERSION}
    value["event"] = alert.event
    for name in COLUMNS:
        field = getattr(alert, name)
        if isinstance(field, datetime):
            field = field.astimezone(UTC).isoformat()
        elif name == "evidence":
            field = json.loads(field)
        value[name] = field
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86_400, "w": 604_800}
SINCE_HELP: Final = (
    "a duration back from now (30m, 6h, 2d, 1w) or a UTC date or time "
    "(2026-11-01, 2026-11-01T08:00)"
)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: a duration back from ``now`` or an ISO date/time (UTC unless it says).

    Anything else is a :class:`ValueError` whose message says what is accepted.
    """
    now = now or datetime.now(UTC)
    found = _DURATION.match(text)
    if found:
        return now - timedelta(seconds=float(found[1]) * _UNIT_S[found[2].lower()])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r} is not a duration or a time; give {SINCE_HELP}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def listing(
    since: datetime | None,
    *,
    open_only: bool,
    seen: tuple[datetime | None, datetime] | None = None,
) -> str:
    """The SQL listing alerts opened (or cleared) at or after ``since``, oldest first.

    ``open_only``: those not cleared. ``seen``: only rows the writer opened after
    the first and up to the second of these ``detected_at`` times (``--follow``'s
    next poll). Values are typed and written as SQL literals, never a user's text.
    """
    where = ["TRUE"]
    if since is not None:
        start = _time(since)
        where.append(f"(opened_at >= {start} OR cleared_at >= {start})")
    if open_only:
        where.append("cleared_at IS NULL")
    if seen is not None:
        after, until = seen
        if after is not None:
            where.append(f"detected_at > {_time(after)}")
        where.append(f"detected_at <= {_time(until)}")
    return f"""
SELECT opened_at, kind, severity, source, coalesce(pool_id, product_id, '') AS subject,
       CASE WHEN cleared_at IS NULL THEN 'open' ELSE 'cleared' END AS state,
       cleared_at, evidence, product_id, alert_id
FROM alerts
WHERE {" AND ".join(where)}
ORDER BY opened_at, kind, source, subject, alert_id
"""


NEWEST: Final = "SELECT max(detected_at) FROM alerts"


def _time(moment: datetime) -> str:
    return f"CAST({literal(moment.astimezone(UTC).isoformat())} AS TIMESTAMPTZ)"
