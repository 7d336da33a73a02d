"""The ``yieldstream`` command line."""

from __future__ import annotations

import asyncio
import csv
import signal
import sys
import tempfile
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import duckdb
import msgspec
import orjson
import typer
from rich.console import Console
from rich.table import Table

from ingest._http import parse_json
from sinks.lake import Store, open_reader
from transforms import Context, apply
from transforms.defillama_protocols import categories as protocol_categories
from yieldstream import logs
from yieldstream import settings as settings_mod
from yieldstream.app import run_pipeline, store_of
from yieldstream.backfill import BackfillSummary, BarReporter, ListingFailed, LogReporter
from yieldstream.backfill import backfill as run_backfill
from yieldstream.contracts import Rejection
from yieldstream.errors import BadResponse, ConfigError
from yieldstream.pipeline import ALL_ROLES, Role, RunStats
from yieldstream.registry import source as get_source
from yieldstream.registry import sources as all_sources
from yieldstream.settings import Settings

app = typer.Typer(
    help="Collect staking, lending and farming yields into a DuckLake store you query with SQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def _out() -> Console:
    """stdout console; wide when piped, so tables are not squeezed into 80 columns."""
    return Console(width=None if sys.stdout.isatty() else 200)


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _error(message: str) -> None:
    """One line on stderr; the message is printed as is (no markup: it may hold brackets)."""
    err.print("[red]error:[/red] ", end="")
    err.print(message, markup=False, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _error(message)
    return typer.Exit(code)


def _settings(ctx: typer.Context, **overrides: Any) -> Settings:
    options = dict(ctx.obj or {})
    options.update({k: v for k, v in overrides.items() if v is not None})
    loaded = settings_mod.load(**options)
    logs.configure(loaded.log_format, loaded.log_level)
    return loaded


DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", "-d", help="Store directory [default: ./yieldstream-data]"),
]


@app.callback()
def main_options(
    ctx: typer.Context,
    data_dir: DataDir = None,
    log_format: Annotated[
        str | None, typer.Option(help="auto (JSON unless a terminal), json or console")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error")] = None,
    catalog: Annotated[
        str | None,
        typer.Option(
            help="DuckLake catalog: postgresql://USER:PASS@HOST/DB for several hosts "
            "[default: SQLite file in the data dir]"
        ),
    ] = None,
) -> None:
    """Settings come from ./yieldstream.toml (or $YIELDSTREAM_CONFIG) and YIELDSTREAM_* vars."""
    ctx.obj = {
        "data_dir": data_dir,
        "log_format": log_format,
        "log_level": log_level,
        "catalog": catalog,
    }


KafkaServers = Annotated[
    str | None,
    typer.Option(
        "--kafka",
        metavar="HOST:PORT",
        help="Kafka bootstrap servers "
        "[default: KAFKA_BOOTSTRAP_SERVERS or kafka.bootstrap_servers]",
    ),
]
Sources = Annotated[
    list[str] | None, typer.Option("--source", "-s", help="Only this source (repeatable)")
]


def _kafka_settings(ctx: typer.Context, servers: str | None) -> Settings:
    return _settings(ctx, kafka={"bootstrap_servers": servers} if servers else None)


def _run_role(
    ctx: typer.Context,
    roles: frozenset[Role],
    servers: str | None,
    *,
    once: bool = False,
    only: list[str] | None = None,
) -> RunStats:
    settings = _kafka_settings(ctx, servers)
    return asyncio.run(run_pipeline(settings, once=once, only=only, roles=roles, kafka=True))


@app.command()
def run(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Run every source once, store, exit")
    ] = False,
    source: Sources = None,
    kafka: KafkaServers = None,
) -> None:
    """Run the daemon: poll every enabled source, store observations, until SIGINT/SIGTERM.

    Embedded by default: one process, no other service. With --kafka HOST:PORT the
    collect, transform and sink roles run in this process with Kafka topics between
    them (`yieldstream collect`, `transform` and `sink` run one role each).

    Example: yieldstream run --once --source lido
    """
    if kafka is not None:
        if once:
            raise _fail(
                "--once is for the embedded pipeline; over Kafka use "
                "`yieldstream collect --once` (transform and sink run until stopped)"
            )
        _run_role(ctx, ALL_ROLES, kafka, only=source)
        return
    settings = _settings(ctx)
    stats = asyncio.run(run_pipeline(settings, once=once, only=source))
    if once:
        err.print(
            f"fetched {stats.fetched} records: {stats.stored} observations stored, "
            f"{stats.duplicates} already stored, {stats.rejected} rejected, "
            f"{stats.fetch_failures} failed fetches",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def collect(
    ctx: typer.Context,
    kafka: KafkaServers = None,
    once: Annotated[
        bool, typer.Option("--once", help="Collect every source once, publish, exit")
    ] = False,
    source: Sources = None,
) -> None:
    """Kafka role: poll the sources and publish raw records to yields.raw.

    Runs until SIGINT/SIGTERM. Each fetched item is one message, acknowledged by
    the broker before the fetch counts as done.

    Example: yieldstream collect --kafka localhost:9092
    """
    stats = _run_role(ctx, frozenset({"collect"}), kafka, once=once, only=source)
    if once:
        err.print(
            f"published {stats.fetched} records, {stats.fetch_failures} failed fetches",
            highlight=False,
        )


@app.command()
def transform(ctx: typer.Context, kafka: KafkaServers = None) -> None:
    """Kafka role: validate raw records into observations; rejections go to yields.dlq.

    Joins the transform consumer group; run more of them to scale out. Input offsets
    are committed only after the outputs were acknowledged.

    Example: yieldstream transform --kafka localhost:9092
    """
    _run_role(ctx, frozenset({"transform"}), kafka)


@app.command()
def sink(ctx: typer.Context, kafka: KafkaServers = None) -> None:
    """Kafka role: store observations and rejections in the DuckLake store.

    Joins the sink consumer group; offsets are committed after the store's
    transaction committed. Several sinks can write one store (a PostgreSQL
    --catalog when they run on several hosts).

    Example: yieldstream --catalog postgresql://ys:ys@db/ys sink --kafka localhost:9092
    """
    _run_role(ctx, frozenset({"sink"}), kafka)


def _print_result(columns: list[str], rows: list[tuple[Any, ...]], fmt: Format) -> None:
    if fmt is Format.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    elif fmt is Format.json:
        for row in rows:
            line = orjson.dumps(dict(zip(columns, row, strict=True)), default=str)
            sys.stdout.write(line.decode() + "\n")
    else:
        table = Table(*columns, show_lines=False)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        _out().print(table)
        err.print(f"{len(rows)} rows", highlight=False)


@app.command()
def sql(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="SQL to run against the store (read-only)")],
    fmt: Annotated[
        Format, typer.Option("--format", "-f", help="table, csv or json")
    ] = Format.table,
) -> None:
    """Query the store read-only; safe while `yieldstream run` writes.

    Example: yieldstream sql "SELECT protocol, apy_pct FROM latest_yields LIMIT 10"
    """
    settings = _settings(ctx)
    con = open_reader(store_of(settings))
    try:
        result = con.execute(query)
        columns = [d[0] for d in result.description or []]
        rows = result.fetchall()
    except duckdb.Error as exc:
        raise _fail(str(exc).splitlines()[0], 1) from None
    finally:
        con.close()
    _print_result(columns, rows, fmt)


@app.command()
def parse(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="A saved upstream response", exists=True, dir_okay=False, readable=True
        ),
    ],
    source: Annotated[str, typer.Option("--source", "-s", help="The source it came from")],
    categories: Annotated[
        Path | None,
        typer.Option(help="A saved /protocols response, to classify pools by strategy"),
    ] = None,
) -> None:
    """Show what a saved response would become; touches no store.

    Observations go to stdout as JSON lines, rejections with reasons to stderr,
    then a one-line summary.

    Example: yieldstream parse --source defillama-yields pools.json
    """
    _settings(ctx)
    src = get_source(source)
    ctx_data = Context()
    if categories is not None:
        ctx_data = Context(_categories(categories))
    body, lenient = _parse_file(file)
    records = None
    problems = []
    # Most specific shape first: a /apr/sma body also has the object /apr/last expects.
    for endpoint in sorted(src.endpoints, key=lambda e: -len(e.items_at)):
        try:
            records = list(
                endpoint.records(
                    body,
                    source=src.name,
                    fetched_at=datetime.now(UTC),
                    run_id="parse",
                    lenient=lenient,
                    url=str(file),
                )
            )
            break
        except BadResponse as exc:
            problems.append(str(exc))
    if records is None:
        raise _fail(f"{file} is not a {source} response: {'; '.join(problems)}", 1)
    observed = rejected = 0
    out = sys.stdout.buffer
    for record in records:
        result = apply(src.transform, record, ctx_data)
        if isinstance(result, Rejection):
            rejected += 1
            err.print(
                f"rejected {record.native_id}: [{result.stage}] {result.reason}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            continue
        for obs in result:
            observed += 1
            out.write(msgspec.json.encode(obs) + b"\n")
    out.flush()
    err.print(
        f"{len(records)} records: {observed} observations, {rejected} rejections", highlight=False
    )


def _parse_file(file: Path) -> tuple[Any, bool]:
    try:
        return parse_json(file.read_bytes(), "application/json", str(file))
    except BadResponse as exc:
        raise _fail(str(exc), 1) from None


def _categories(file: Path) -> dict[str, str]:
    """Slug -> category from a saved ``/protocols`` response, read as the daemon reads it."""
    body, lenient = _parse_file(file)
    protocols = get_source("defillama-protocols")
    try:
        records = [
            record
            for endpoint in protocols.endpoints
            for record in endpoint.records(
                body,
                source=protocols.name,
                fetched_at=datetime.now(UTC),
                run_id="parse",
                lenient=lenient,
                url=str(file),
            )
        ]
    except BadResponse as exc:
        raise _fail(f"--categories: {exc}", 1) from None
    return protocol_categories(r.payload for r in records)


# The sources that have a history endpoint, for backfill's --help.
WITH_HISTORY = ", ".join(name for name, src in all_sources().items() if src.history)


@app.command()
def backfill(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help=f"One of: {WITH_HISTORY}")],
    since: Annotated[
        datetime | None, typer.Option(help="History from this day or time on (UTC)")
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(help="History before this day or time (UTC); default: the end of today"),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(help="Only these entities (pool ids, protocol slugs); repeat or use commas"),
    ] = None,
    refetch: Annotated[
        bool, typer.Option("--refetch", help="Fetch entities a backfill completed before, too")
    ] = False,
) -> None:
    """Fetch a source's history into the store: resumable, idempotent, with progress.

    Lists the entities from the source's snapshot (/pools, /protocols), then fetches
    each one's history (DefiLlama /chart/{pool} or /protocol/{slug}, Lido /apr/sma)
    through the daemon's transforms and store. Each entity is checkpointed in the
    store with its rows: stopped or killed, the same command resumes where it was;
    run twice, it adds nothing. Exits 1 if an entity failed (run it again to retry).

    Example: yieldstream backfill defillama-yields --since 2023-01-01
    """
    settings = _settings(ctx)
    entities = [e.strip() for value in only or () for e in value.split(",") if e.strip()]
    reporter = BarReporter(err) if err.is_terminal else LogReporter()

    async def main() -> BackfillSummary:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_backfill(
            settings,
            source,
            since=_utc(since),
            until=_utc(until),
            only=entities,
            refetch=refetch,
            reporter=reporter,
            stop=stop,
        )

    try:
        summary = asyncio.run(main())
    except ListingFailed as exc:
        raise _fail(str(exc), 1) from None
    err.print(summary.line(), highlight=False, soft_wrap=True)
    for entity, reason in summary.failures:
        err.print(f"  failed {entity}: {reason}", markup=False, highlight=False, soft_wrap=True)
    if summary.failed > len(summary.failures):
        err.print(
            f"  ... and {summary.failed - len(summary.failures)} more: "
            "SELECT * FROM backfill_checkpoints WHERE status = 'failed'",
            highlight=False,
            soft_wrap=True,
        )
    if summary.failed or summary.stopped:
        raise typer.Exit(1)


@app.command()
def replay(
    ctx: typer.Context,
    source: Annotated[
        list[str] | None, typer.Option("--source", "-s", help="Only this source (repeatable)")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Only records fetched at or after (UTC)")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(help="Only records fetched before (UTC)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report, write nothing")] = False,
    from_kafka: Annotated[
        bool,
        typer.Option("--from-kafka", help="Re-read yields.raw (Kafka mode) instead of the archive"),
    ] = False,
    from_offset: Annotated[
        int | None,
        typer.Option(min=0, help="With --from-kafka: start every partition at this offset"),
    ] = None,
    kafka: KafkaServers = None,
) -> None:
    """Re-run the transforms over the raw archive after a transform change.

    Changed rows are replaced, rows are never duplicated, rejections that now pass
    are stored. Run it again after a stop: it picks up where it is. In Kafka mode
    the raw records are on yields.raw: --from-kafka re-reads it (from --since, from
    --from-offset, or from the beginning).

    Example: yieldstream replay --source defillama-yields --since 2026-01-01 --dry-run
    """
    from yieldstream.replay import replay as run_replay
    from yieldstream.replay import replay_kafka

    if from_kafka or kafka is not None:
        settings = _kafka_settings(ctx, kafka)
        summary = asyncio.run(
            replay_kafka(
                settings,
                only=source or (),
                since=_utc(since),
                until=_utc(until),
                from_offset=from_offset,
                dry_run=dry_run,
            )
        )
        err.print(summary.line(dry_run), highlight=False, soft_wrap=True)
        return
    if from_offset is not None:
        raise _fail("--from-offset reads Kafka: add --from-kafka")
    settings = _settings(ctx)
    store = store_of(settings)
    if not store.exists:
        raise _fail(f"no store in {settings.data_dir}; nothing to replay")
    summary = run_replay(
        store, only=source or (), since=_utc(since), until=_utc(until), dry_run=dry_run
    )
    err.print(summary.line(dry_run), highlight=False, soft_wrap=True)


def _utc(moment: datetime | None) -> datetime | None:
    """Command-line times are UTC unless they say otherwise."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@app.command()
def sources(ctx: typer.Context) -> None:
    """List each source with its last fetch, rows stored and failures.

    Example: yieldstream sources
    """
    settings = _settings(ctx)
    stats: dict[str, tuple[Any, ...]] = {}
    store = store_of(settings)
    if store.exists:
        con = open_reader(store)
        try:
            rows = con.execute(
                """
                WITH f AS (
                    SELECT source, max(finished_at) AS last_fetch,
                           arg_max(ok, finished_at) AS last_ok,
                           count(*) FILTER (WHERE NOT ok) AS failed
                    FROM fetches GROUP BY source),
                o AS (SELECT source, count(*) AS rows FROM observations GROUP BY source),
                r AS (SELECT source, count(*) AS rejected FROM rejections GROUP BY source)
                SELECT f.source, f.last_fetch, f.last_ok, coalesce(o.rows, 0),
                       coalesce(r.rejected, 0), f.failed
                FROM f LEFT JOIN o USING (source) LEFT JOIN r USING (source)
                """
            ).fetchall()
        finally:
            con.close()
        stats = {str(r[0]): r[1:] for r in rows}
    table = Table(
        "source",
        "enabled",
        "interval",
        "last fetch (UTC)",
        "last ok",
        "rows stored",
        "rejected",
        "failed fetches",
        "history (backfill)",
    )
    for name, src in all_sources().items():
        cfg = settings.source_config(name)
        last, ok, rows_stored, rejected, failed = stats.get(name, (None, None, 0, 0, 0))
        table.add_row(
            name,
            "yes" if cfg.enabled else "no",
            f"{cfg.interval_s:g}s",
            last.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if last else "never",
            "" if ok is None else ("yes" if ok else "no"),
            str(rows_stored),
            str(rejected),
            str(failed),
            src.history.path if src.history else "none",
        )
    _out().print(table)


@app.command()
def demo(
    ctx: typer.Context,
    data_dir: DataDir = None,
) -> None:
    """Run the pipeline once, offline, against the bundled recorded responses.

    Serves the recorded real responses on 127.0.0.1, points every source there,
    stores into a temporary directory (or --data-dir) and prints a first query.

    Example: yieldstream demo
    """
    from yieldstream.loopback import recorded_routes, serve

    # The demo is quiet unless asked: its output is the query result.
    base = _settings(ctx, log_level=(ctx.obj or {}).get("log_level") or "warning")
    target: Path | None = data_dir or (ctx.obj or {}).get("data_dir")
    with tempfile.TemporaryDirectory(prefix="yieldstream-demo-") as tmp:
        directory = Path(target) if target else Path(tmp)
        with serve(recorded_routes()) as (url, _hits):
            cfg = {
                name: {**base.sources.get(name, {}), "base_url": url, "rate_per_s": 50.0}
                for name in all_sources()
            }
            settings = base.model_copy(update={"data_dir": directory, "sources": cfg})
            asyncio.run(run_pipeline(settings, once=True))
        con = open_reader(Store(directory))
        try:
            result = con.execute(
                """
                SELECT source, protocol, chain, symbol, strategy,
                       round(apy_pct, 2) AS apy_pct, round(tvl_usd / 1e6, 1) AS tvl_musd
                FROM latest_yields ORDER BY tvl_usd DESC NULLS LAST, source, pool_id
                """
            )
            columns = [d[0] for d in result.description or []]
            rows = result.fetchall()
        finally:
            con.close()
        _print_result(columns, rows, Format.table)
    if target:
        err.print(
            f'kept in {target}; try: yieldstream -d {target} sql "FROM latest_yields"',
            highlight=False,
            soft_wrap=True,  # a command to copy: never broken across lines
        )
    else:
        err.print(
            "stored in a temporary directory, now removed; --data-dir DIR keeps it", highlight=False
        )


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        _error(str(exc))
        sys.exit(2)


__all__ = ["app", "main"]
