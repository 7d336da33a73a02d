"""The whole pipeline against bad upstreams: one source fails, the others carry on.

Each test runs ``run_pipeline(once=True)`` against a 127.0.0.1 loopback server that
serves the recorded real responses at their real paths, with one source's endpoint
replaced by a failure. A failure must be survived (the run completes), counted
(RunStats), logged (``fetch_failed``, ``record_rejected``) and recorded in the store
(``fetches`` rows with ``ok = false``, ``rejections`` rows with their reason), while
the other sources' observations are stored as usual.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import duckdb
import httpx
import pytest
import structlog
from structlog.testing import capture_logs

import yieldstream
from yieldstream.app import run_pipeline
from yieldstream.loopback import Reply, Route, recorded_routes
from yieldstream.pipeline import RunStats
from yieldstream.settings import Settings

YIELDS, PROTOCOLS, LIDO = "defillama-yields", "defillama-protocols", "lido"
SMA = "/v1/protocol/steth/apr/sma"
# What the recorded responses store: 6 protocols, 9 pools, 8 Lido points (/last is
# also the newest /sma point, so Lido's 9 records are 8 observations).
STORED = {PROTOCOLS: 6, YIELDS: 9, LIDO: 8}
RECORDED = recorded_routes()


def recorded_body(path: str) -> bytes:
    reply = RECORDED[path]
    assert isinstance(reply, Reply)
    return reply.body


POOLS_BODY = recorded_body("/pools")
POOL_IDS = [item["pool"] for item in json.loads(POOLS_BODY)["data"]]
HTML = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>502 Bad Gateway</h1><p>cloudflare</p></body></html>"
)


@dataclass
class Run:
    """What one pipeline run left behind: stats, logs, the store, the server's hits."""

    stats: RunStats
    logs: list[MutableMapping[str, Any]]
    base_url: str
    hits: dict[str, int]
    con: duckdb.DuckDBPyConnection  # read-only, as an analyst would open it

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, params or []).fetchall()

    def stored(self) -> dict[str, int]:
        return dict(self.query("SELECT source, count(*) FROM observations GROUP BY source"))

    def fetches(self) -> dict[str, tuple[bool, int, str | None]]:
        rows = self.query("SELECT source, ok, records, error FROM fetches")
        assert len(rows) == 3, rows  # one fetch per source, failed or not
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def rejections(self) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT source, endpoint, stage, reason, native_id, payload FROM rejections"
        )
        keys = ("source", "endpoint", "stage", "reason", "native_id", "payload")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def events(self, name: str) -> list[MutableMapping[str, Any]]:
        return [entry for entry in self.logs if entry["event"] == name]


RunWith = Callable[..., Awaitable[Run]]


@pytest.fixture
async def run_with(
    make_settings: Callable[..., Settings],
    loopback: Callable[[Mapping[str, Route] | None], tuple[str, dict[str, int]]],
) -> AsyncIterator[RunWith]:
    """Run the pipeline once with some recorded routes replaced."""
    readers: list[duckdb.DuckDBPyConnection] = []

    async def run(
        routes: Mapping[str, Route] | None = None,
        *,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> Run:
        base, hits = loopback({**RECORDED, **(routes or {})})
        settings = make_settings(base, source_overrides=overrides)
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            stats = await run_pipeline(
                settings, once=True, handle_signals=False, transport=transport
            )
        readers.append(yieldstream.connect(settings.data_dir))
        return Run(stats, logs, base, hits, readers[-1])

    yield run
    for con in readers:
        con.close()


def failing_first(*failures: Reply, then: Route) -> Callable[[], Reply]:
    """A route answering with ``failures`` in turn, then with ``then`` for good."""
    queue = list(failures)

    def route() -> Reply:
        if queue:
            return queue.pop(0)
        return then() if callable(then) else then

    return route


def pools_with(changes: Mapping[int, Mapping[str, Any]]) -> bytes:
    """The recorded /pools body with some items changed (a value of None deletes)."""
    body = json.loads(POOLS_BODY)
    for index, fields in changes.items():
        for key, value in fields.items():
            if value is None:
                del body["data"][index][key]
            else:
                body["data"][index][key] = value
    return json.dumps(body).encode()  # stdlib json writes NaN/Infinity literals


async def test_recorded_responses_are_stored_when_nothing_fails(run_with: RunWith) -> None:
    run = await run_with()
    assert run.stored() == STORED
    assert run.stats.fetch_failures == run.stats.rejected == 0
    assert {name: mine.stored for name, mine in run.stats.sources.items()} == STORED
    assert not any(mine.failed for mine in run.stats.sources.values())
    assert all(ok and error is None for ok, _, error in run.fetches().values())
    assert run.rejections() == []
    assert run.events("fetch_failed") == []


# --- a whole /pools response fails -------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    reply: Reply
    error: str  # regex on the fetch's error text
    rejected: bool = False  # a whole-response rejection is stored (the body came)
    hits: int = 1  # requests made to /pools (retries included)
    overrides: Mapping[str, Any] = field(default_factory=dict)


FAILURES = {
    "html-200": Failure(
        Reply(200, HTML, "text/html; charset=utf-8"),
        r"expected JSON from .*/pools, got text/html",
        rejected=True,
    ),
    "truncated": Failure(
        Reply(body=POOLS_BODY[: len(POOLS_BODY) // 2]),
        r"malformed or truncated JSON",
        rejected=True,
    ),
    "empty": Failure(Reply(body=b""), r"empty JSON", rejected=True),
    "oversize": Failure(
        Reply(body=POOLS_BODY),
        r"exceeds the 0\.001 MiB cap",
        rejected=True,
        overrides={"max_body_mib": 0.001},
    ),
    "wrong-shape": Failure(
        Reply(body=b'{"data": "oops"}'), r"expected a list at \$\.data", rejected=True
    ),
    "500-forever": Failure(
        Reply(500, b'{"message": "Internal server error"}'), r"HTTP 500", hits=3
    ),
    "429-forever": Failure(Reply(429, b'{"message": "Too Many Requests"}'), r"HTTP 429", hits=3),
    "429-retry-after-beyond-budget": Failure(
        Reply(429, b"", headers=(("Retry-After", "3600"),)), r"HTTP 429", hits=1
    ),
    "404": Failure(Reply(404, b'{"error": "not found"}'), r"HTTP 404", hits=1),
    "hang": Failure(
        Reply(body=POOLS_BODY, delay_s=1.0),
        r"no complete response .* within 0\.3 s",
        hits=2,
        overrides={"deadline_s": 0.3, "attempts": 2},
    ),
}


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
async def test_failed_pools_fetch_is_survived_counted_logged_and_recorded(
    run_with: RunWith,
    failure: Failure,
) -> None:
    run = await run_with({"/pools": failure.reply}, overrides={YIELDS: failure.overrides})

    # The other sources are stored as usual; /pools stored nothing.
    assert run.stored() == {PROTOCOLS: 6, LIDO: 8}
    assert run.hits["/pools"] == failure.hits
    # Counted.
    assert run.stats.fetch_failures == 1
    assert run.stats.stored == 14
    assert run.stats.rejected == int(failure.rejected)
    # And by source: /pools failed its one fetch, the others did not fail.
    pools = run.stats.sources[YIELDS]
    assert (pools.fetches, pools.fetch_failures, pools.failed) == (1, 1, True)
    assert pools.error is not None
    assert re.search(failure.error, pools.error), pools.error
    assert (pools.stored, pools.rejected) == (0, int(failure.rejected))
    assert [name for name, mine in run.stats.sources.items() if mine.failed] == [YIELDS]
    assert run.stats.sources[LIDO].stored == 8
    # Recorded: the fetch, with the error text.
    fetches = run.fetches()
    ok, records, error = fetches[YIELDS]
    assert (ok, records) == (False, 0)
    assert error is not None
    assert re.search(failure.error, error), error
    assert fetches[PROTOCOLS][:2] == (True, 6)
    assert fetches[LIDO][:2] == (True, 9)
    # Logged.
    [failed] = run.events("fetch_failed")
    assert failed["source"] == YIELDS
    assert failed["log_level"] == "warning"
    assert re.search(failure.error, failed["error"])
    # A body that came but cannot be used is kept as a rejection, with its reason.
    rejections = run.rejections()
    if failure.rejected:
        [rejection] = rejections
        assert rejection["source"] == YIELDS
        assert rejection["stage"] == "fetch"
        assert rejection["endpoint"] == f"{run.base_url}/pools"
        assert rejection["native_id"] is None
        assert re.search(failure.error, rejection["reason"])
        assert rejection["payload"] or not failure.reply.body  # what came (a prefix)
        assert failure.reply.body.startswith(rejection["payload"])
        [logged] = run.events("record_rejected")
        assert (logged["source"], logged["stage"]) == (YIELDS, "fetch")
    else:
        assert rejections == []
        assert run.events("record_rejected") == []


async def test_protocols_outage_does_not_hold_back_the_pools(run_with: RunWith) -> None:
    """/pools waits for /protocols' first cycle; a failed cycle must still release it."""
    run = await run_with({"/protocols": Reply(503, b"")})
    assert run.stored() == {YIELDS: 9, LIDO: 8}
    assert run.hits["/protocols"] == 3
    assert run.fetches()[PROTOCOLS][:2] == (False, 0)
    assert [e["source"] for e in run.events("fetch_failed")] == [PROTOCOLS]


async def test_lido_keeps_its_last_point_when_the_sma_endpoint_is_down(run_with: RunWith) -> None:
    run = await run_with({SMA: Reply(502, b"Bad Gateway", "text/plain")})
    assert run.stored() == {PROTOCOLS: 6, YIELDS: 9, LIDO: 1}
    ok, records, error = run.fetches()[LIDO]
    assert (ok, records) == (False, 1)
    assert error is not None
    assert "HTTP 502" in error
    assert run.stats.fetch_failures == 1
    # Half a fetch is a failed fetch: the one Lido made failed.
    assert run.stats.sources[LIDO].failed
    assert run.stats.sources[LIDO].stored == 1


# --- bad items inside an otherwise good /pools response ---------------------------------


BAD_ITEMS: dict[str, tuple[dict[str, Any], str, str]] = {
    "nan": ({"apy": float("nan")}, "decode", "undecodable item"),
    "infinity": ({"apyBase": float("inf")}, "decode", "undecodable item"),
    "string-number": ({"tvlUsd": "5698745714"}, "decode", r"Expected `float \| null`, got `str`"),
    "apy-2e6": ({"apy": 2e6}, "validate", r"<= 1000000\.0 - at `\$\.apy_pct`"),
    "negative-tvl": ({"tvlUsd": -5.0}, "validate", r">= 0\.0 - at `\$\.tvl_usd`"),
    "missing-field": ({"chain": None}, "decode", r"missing required field `chain`"),
}


@pytest.mark.parametrize(("changes", "stage", "reason"), BAD_ITEMS.values(), ids=BAD_ITEMS.keys())
async def test_one_bad_pool_is_rejected_and_the_rest_stored(
    run_with: RunWith,
    changes: dict[str, Any],
    stage: str,
    reason: str,
) -> None:
    run = await run_with({"/pools": Reply(body=pools_with({1: changes}))})

    assert run.stored() == {PROTOCOLS: 6, YIELDS: 8, LIDO: 8}
    stored_ids = {
        r[0] for r in run.query("SELECT pool_id FROM observations WHERE source = ?", [YIELDS])
    }
    assert stored_ids == set(POOL_IDS) - {POOL_IDS[1]}
    assert run.stats.rejected == 1
    assert run.stats.fetch_failures == 0
    assert run.fetches()[YIELDS] == (True, 9, None)  # the fetch itself was fine
    # Recorded with its reason and the original item.
    [rejection] = run.rejections()
    assert (rejection["source"], rejection["endpoint"]) == (YIELDS, "/pools")
    assert (rejection["stage"], rejection["native_id"]) == (stage, POOL_IDS[1])
    assert re.search(reason, rejection["reason"]), rejection["reason"]
    assert json.loads(rejection["payload"])["pool"] == POOL_IDS[1]
    # Raw first: the bad item is archived like the good ones, for a replay after a fix.
    assert run.query("SELECT count(*) FROM raw_records WHERE source = ?", [YIELDS]) == [(9,)]
    # Logged.
    [logged] = run.events("record_rejected")
    assert (logged["source"], logged["stage"], logged["native_id"]) == (YIELDS, stage, POOL_IDS[1])
    # with the fetch run and batch it came from
    [fetched] = [e for e in run.events("fetch_started") if e["source"] == YIELDS]
    assert logged["run_id"] == fetched["run_id"]
    [stored] = [e for e in run.events("batch_stored") if e["source"] == YIELDS]
    assert (stored["run_id"], stored["batch_id"]) == (fetched["run_id"], logged["batch_id"])
    assert run.events("fetch_failed") == []


async def test_every_bad_pool_gets_its_own_rejection(run_with: RunWith) -> None:
    changes = {index: fields for index, (fields, _, _) in enumerate(BAD_ITEMS.values())}
    run = await run_with({"/pools": Reply(body=pools_with(changes))})
    assert run.stored()[YIELDS] == 9 - len(BAD_ITEMS)
    assert run.stats.rejected == len(BAD_ITEMS)
    rejections = {r["native_id"]: r for r in run.rejections()}
    assert set(rejections) == set(POOL_IDS[: len(BAD_ITEMS)])
    for index, (_, stage, reason) in enumerate(BAD_ITEMS.values()):
        rejection = rejections[POOL_IDS[index]]
        assert rejection["stage"] == stage
        assert re.search(reason, rejection["reason"]), rejection["reason"]


# --- failing, then recovering within the attempts ---------------------------------------


RECOVERIES = {
    "500-twice": (Reply(500, b"oops"), Reply(500, b"oops")),
    "429-retry-after": (Reply(429, b"", headers=(("Retry-After", "0.2"),)),),
    "hang-once": (Reply(body=POOLS_BODY, delay_s=1.0),),
}


@pytest.mark.parametrize("failures", RECOVERIES.values(), ids=RECOVERIES.keys())
async def test_source_that_recovers_within_its_attempts_stores_its_data(
    run_with: RunWith,
    failures: tuple[Reply, ...],
) -> None:
    route = failing_first(*failures, then=RECORDED["/pools"])
    run = await run_with({"/pools": route}, overrides={YIELDS: {"deadline_s": 0.3}})
    assert run.stored() == STORED
    assert run.hits["/pools"] == len(failures) + 1
    assert run.stats.fetch_failures == 0
    assert run.fetches()[YIELDS] == (True, 9, None)
    assert run.events("fetch_failed") == []
    retries = [e for e in run.logs if e["event"] == "stamina.retry_scheduled"]
    assert [e["source"] for e in retries] == [YIELDS] * len(failures)


# --- a collector failing in an unforeseen way ----------------------------------------------


class CrashOnPools(httpx.AsyncHTTPTransport):
    """A transport that fails in a way no error mapping foresaw (a bug, not an outage)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/pools":
            raise RuntimeError("unforeseen")
        return await super().handle_async_request(request)


async def test_unforeseen_collector_error_does_not_stop_the_other_sources(
    run_with: RunWith,
) -> None:
    slow_sma = Reply(body=recorded_body(SMA), delay_s=0.5)
    run = await run_with({SMA: slow_sma}, transport=CrashOnPools())
    assert run.stored() == {PROTOCOLS: 6, LIDO: 8}
    assert run.fetches()[YIELDS][0] is False
    assert run.stats.fetch_failures == 1
    assert [e["source"] for e in run.events("fetch_failed")] == [YIELDS]
