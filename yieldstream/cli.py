"""The ``yieldstream`` command line."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import duckdb
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperOption

from yieldstream import __version__
from yieldstream.errors import ConfigError, StageFailed
from yieldstream.sqlout import DEFAULT_LIMIT, Format, print_table, rows_line, write_results

# A command imports what it needs when it runs: `yieldstream sql` loads DuckDB and the
# settings, not Arrow (but for CSV and JSON), structlog, the collectors, HTTP, Kafka or
# plotting (tests/test_cli_start.py).
if TYPE_CHECKING:
    from typer._click import Context as ClickContext  # typer's own click, which it types with

    from sinks.lake import Store
    from yieldstream.pipeline import Role, RunStats, SourceStats
    from yieldstream.registry import Source
    from yieldstream.settings import Settings

app = typer.Typer(
    help="Collect staking, lending and farming yields into a DuckLake store you query with SQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, emoji=False)  # ids such as "a:x:b" stay as they are


def _out() -> Console:
    """stdout console; wide when piped, so tables are not squeezed into 80 columns."""
    return Console(width=None if sys.stdout.isatty() else 200, emoji=False)


def _error(message: str) -> None:
    """One line on stderr; the message is printed as is (no markup: it may hold brackets)."""
    err.print("[red]error:[/red] ", end="")
    err.print(message, markup=False, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _error(message)
    return typer.Exit(code)


def _default(what: str) -> str:
    """``[default: what]`` for a help text, escaped: rich would take it for markup."""
    return escape(f"[default: {what}]")


def _settings(ctx: typer.Context, *, logging: bool = True, **overrides: Any) -> Settings:
    """The settings, and structlog configured from them.

    ``logging=False``: for a command whose code logs nothing (`yieldstream sql`),
    which then starts without importing structlog (tests/test_cli_start.py).
    """
    from yieldstream import settings as settings_mod

    options = dict(ctx.obj or {})
    options.update({k: v for k, v in overrides.items() if v is not None})
    loaded = settings_mod.load(**options)
    if logging:
        from yieldstream import logs

        logs.configure(loaded.log_format, loaded.log_level)
    return loaded


def store_of(settings: Settings) -> Store:
    """:func:`yieldstream.settings.store_of`, the settings module loaded when called."""
    from yieldstream import settings as module

    return module.store_of(settings)


# Help texts that name registered sources hold these until --help is shown, so that a
# command that does not show them does not import every source.
WITH_HISTORY = "<sources with history>"
READS = "<reference data read>"


class ListsSources(TyperCommand):
    """A command whose help fills in :data:`WITH_HISTORY` and :data:`READS`."""

    def get_help(self, ctx: ClickContext) -> str:
        from yieldstream import saved

        for param in self.params:
            if isinstance(param, TyperOption | TyperArgument) and param.help:
                text = param.help.replace(WITH_HISTORY, saved.WITH_HISTORY)
                param.help = text.replace(READS, saved.READS)
        return super().get_help(ctx)


# Options whose default is None: the real one comes from the settings (see --help).
DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", "-d", help=f"Store directory {_default('./yieldstream-data')}"),
]


def _version(value: bool) -> None:
    if value:
        print(f"yieldstream {__version__}")
        raise typer.Exit


@app.callback()
def main_options(
    ctx: typer.Context,
    data_dir: DataDir = None,
    log_format: Annotated[
        str | None,
        typer.Option(help=f"auto (JSON unless a terminal), json or console {_default('auto')}"),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help=f"debug, info, warning or error {_default('info')}")
    ] = None,
    catalog: Annotated[
        str | None,
        typer.Option(
            help="DuckLake catalog: postgresql://USER:PASS@HOST/DB for several hosts "
            + _default("SQLite file in the data dir")
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
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
        + _default("KAFKA_BOOTSTRAP_SERVERS or kafka.bootstrap_servers"),
    ),
]
Sources = Annotated[
    list[str] | None,
    typer.Option(
        "--source",
        "-s",
        help=f"Only this source (repeatable) {_default('every enabled source')}",
    ),
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
    import asyncio

    from yieldstream.app import run_pipeline

    settings = _kafka_settings(ctx, servers)
    return asyncio.run(run_pipeline(settings, once=once, only=only, roles=roles, kafka=True))


@app.command()
def run(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Run every source once, store, exit")
    ] = False,
    source: Sources = None,
    kafka: Annotated[
        str | None,
        typer.Option(
            "--kafka",
            metavar="HOST:PORT",
            help="Run the roles over Kafka at these bootstrap servers "
            + _default("none: embedded, no Kafka"),
        ),
    ] = None,
) -> None:
    """Run the daemon: poll every enabled source, store observations, until SIGINT/SIGTERM.

    Embedded by default: one process, no other service. With --kafka HOST:PORT the
    collect, transform and sink roles run in this process with Kafka topics between
    them (`yieldstream collect`, `transform` and `sink` run one role each).

    With --once it prints a line per source on stderr, and exits 1 if a source
    failed every fetch (its line says why).

    Example: yieldstream run --once --source lido
    """
    import asyncio

    from yieldstream.app import run_pipeline
    from yieldstream.pipeline import ALL_ROLES

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
        _run_summary(stats)
        if any(mine.failed for mine in stats.sources.values()):
            raise typer.Exit(1)


def _counts(stats: RunStats | SourceStats) -> str:
    return (
        f"fetched {stats.fetched} records: {stats.stored} observations stored, "
        f"{stats.duplicates} already stored, {stats.rejected} rejected, "
        f"{stats.fetch_failures} failed fetches"
    )


def _published(stats: RunStats | SourceStats) -> str:
    return f"published {stats.fetched} records, {stats.fetch_failures} failed fetches"


def _run_summary(
    stats: RunStats, counts: Callable[[RunStats | SourceStats], str] = _counts
) -> None:
    """A line per source, then the totals; a source whose every fetch failed says why."""
    for name, mine in stats.sources.items():
        line = f"{name}: {counts(mine)}"
        if mine.failed:
            reason = next(iter((mine.error or "").strip().splitlines()), "") or "no reason given"
            line += f"; FAILED: {reason}"
        err.print(line, markup=False, highlight=False, soft_wrap=True)
    err.print(f"total: {counts(stats)}", markup=False, highlight=False, soft_wrap=True)


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

    With --once it prints a line per source on stderr, and exits 1 if a source
    failed every fetch (its line says why).

    Example: yieldstream collect --kafka localhost:9092
    """
    stats = _run_role(ctx, frozenset({"collect"}), kafka, once=once, only=source)
    if once:
        _run_summary(stats, _published)
        if any(mine.failed for mine in stats.sources.values()):
            raise typer.Exit(1)


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
    """Rows already fetched, as a table (``fmt`` must be table), their count on stderr."""
    if fmt is not Format.table:
        raise ValueError(f"rows already fetched print as a table, not {fmt}")
    text = [["" if v is None else str(v) for v in row] for row in rows]
    print_table(columns, text, sys.stdout.buffer)
    sys.stdout.flush()
    _note(rows_line(len(rows)))


def _note(line: str) -> None:
    err.print(line, markup=False, highlight=False, soft_wrap=True)


@app.command()
def sql(
    ctx: typer.Context,
    query: Annotated[
        str,
        typer.Argument(help="SQL to run against the store (read-only); several statements: ;"),
    ],
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="table, csv or json (JSON lines); csv and json stream any number of rows. "
            "NULL is an empty CSV field; NaN/Infinity/-Infinity are JSON strings; "
            "DECIMAL a JSON string of its exact digits; BLOB base64; times ISO 8601; "
            "intervals ISO 8601 durations (P1DT2H); lists, structs, maps JSON",
        ),
    ] = Format.table,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            min=0,
            help=f"At most N rows per result, 0 for all (default: {DEFAULT_LIMIT:,} in a "
            "table, the rest counted on stderr; all in csv and json)",
        ),
    ] = None,
    allow_read: Annotated[
        list[Path] | None,
        typer.Option(
            "--allow-read",
            metavar="PATH",
            exists=True,
            help="Let the query read this file or directory too, e.g. a CSV to join "
            "(repeatable); never write",
        ),
    ] = None,
) -> None:
    """Query the store read-only; safe while `yieldstream run` writes.

    The query reads the store and nothing else: no other file (see --allow-read),
    no ATTACH, COPY, EXPORT, INSTALL or LOAD, no setting changed. Several statements
    print one result after the other; the first error stops them (exit 1).

    Example: yieldstream sql "SELECT protocol, apy_pct FROM latest_yields LIMIT 10"
    """
    from sinks.lake import damaged, open_reader
    from sinks.readonly import statements

    settings = _settings(ctx, logging=False)
    try:
        todo = statements(query)
    except duckdb.Error as exc:
        raise _fail(str(exc).splitlines()[0], 1) from None
    con = open_reader(store_of(settings), allow_read or ())
    out = sys.stdout.buffer
    try:
        write_results(con, todo, fmt, out, _note, limit)
    except duckdb.Error as exc:
        out.flush()
        reason = damaged(exc) or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise _fail(reason, 1) from None
    except BrokenPipeError:  # `yieldstream sql ... | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    finally:
        con.close()


@app.command()
def crosscheck(
    ctx: typer.Context,
    threshold: Annotated[
        float,
        typer.Option(
            "--threshold",
            min=0.0,
            help="List products whose sources' APYs differ by more "
            "than this many percentage points",
        ),
    ] = 0.5,
    since: Annotated[
        datetime | None,
        typer.Option(help="Hours from this day or time on (UTC) " + _default("the last 7 days")),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table, csv or json")] = (
        Format.table
    ),
) -> None:
    """List the products whose sources disagree: worst and last APY gap, hours over it.

    Reads the crosscheck view (one product from several sources, hour by hour). The
    last column gives each source's APY in the last hour both were seen.

    Example: yieldstream crosscheck --threshold 1 --since 2026-11-01
    """
    from sinks.lake import damaged, open_reader
    from sinks.readonly import statements
    from yieldstream.disagreements import query as disagreements

    settings = _settings(ctx)
    start = since or datetime.now(UTC) - timedelta(days=7)
    text = disagreements(threshold, start)
    con = open_reader(store_of(settings))
    try:
        write_results(con, statements(text), fmt, sys.stdout.buffer, _note, 0)
    except duckdb.Error as exc:
        raise _fail(damaged(exc) or str(exc).splitlines()[0], 1) from None
    finally:
        con.close()


@app.command()
def plot(
    ctx: typer.Context,
    product: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="PRODUCT",
            help="Product ids as stored, e.g. lido:ethereum:steth",
            show_default=False,
        ),
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option(
            "--compare",
            metavar="ASSET",
            help="Instead: this asset's strategies side by side (ETH, SOL, USDC...)",
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The chart to write: a .png or .svg file")
    ] = Path("yieldstream-plot.png"),
    since: Annotated[
        datetime | None,
        typer.Option(help="History from this day or time on (UTC) " + _default("all of it")),
    ] = None,
) -> None:
    """Draw APY, real APY and TVL over time for products, or compare an asset's strategies.

    One line per product and source: APY (and, dashed, the real APY net of the
    token's inflation, where the store has it) in percent above, TVL in USD below.
    With --compare ASSET: bars per strategy and venue of the TVL-weighted APY and
    real APY over all chains (the strategy_compare view), with products and TVL.

    Example: yieldstream plot lido:ethereum:steth rocket-pool:ethereum:reth --out eth.svg
    """
    from sinks.lake import open_reader
    from yieldstream import plot as figures

    if compare is not None and product:
        raise _fail("give products or --compare ASSET, not both")
    if compare is None and not product:
        raise _fail("name a product (e.g. lido:ethereum:steth), or pass --compare ASSET")
    if compare is not None and since is not None:
        raise _fail("--since is for products' history; --compare reads each product's newest")
    if compare is not None and not compare.strip():
        raise _fail("--compare needs an asset, e.g. --compare ETH")
    settings = _settings(ctx)
    bars: list[figures.Bar] = []
    lines: list[figures.Line] = []
    try:
        fmt = figures.out_format(out)
        con = open_reader(store_of(settings))
        try:
            if compare:
                bars = figures.compare(con, compare)
            else:
                lines = figures.history(con, product or [], _utc(since))
        finally:
            con.close()
    except figures.PlotError as exc:
        raise _fail(str(exc)) from None
    except duckdb.Error as exc:
        raise _fail(_store_error(exc), 1) from None
    from yieldstream import charts  # matplotlib: only now, so the CLI starts fast

    try:
        if compare:
            charts.draw_compare(compare.strip().upper(), bars, out, fmt)
        else:
            charts.draw_history(lines, out, fmt)
    except OSError as exc:
        raise _fail(f"cannot write {out}: {exc.strerror or exc}", 1) from None
    _note(f"wrote {out}")


@app.command()
def alerts(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="DATETIME|DURATION",
            help="Alerts opened or cleared from then on: 6h, 2d, 2026-11-01 (UTC) "
            + _default("all"),
        ),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep polling and print new alerts until Ctrl-C")
    ] = False,
    open_only: Annotated[bool, typer.Option("--open", help="Only alerts not cleared")] = False,
    every: Annotated[
        float, typer.Option("--every", min=0.1, help="With --follow: seconds between polls")
    ] = 5.0,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table, csv or json")] = (
        Format.table
    ),
) -> None:
    """List the alerts the sink opened: APY spikes, stuck APYs, TVL drawdowns, stale
    sources, disagreements with DefiLlama (each with the figures that set it off).

    Reads the store read-only; safe while the daemon writes.

    Example: yieldstream alerts --since 24h --open
    """
    from yieldstream.alertlist import show
    from yieldstream.alerts import parse_since

    settings = _settings(ctx)
    try:
        start = parse_since(since) if since is not None else None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    try:
        show(
            store_of(settings),
            since=start,
            open_only=open_only,
            fmt=fmt,
            out=sys.stdout.buffer,
            note=_note,
            follow=follow,
            every_s=every,
        )
    except KeyboardInterrupt:  # --follow ends with Ctrl-C
        sys.stdout.flush()
    except duckdb.Error as exc:
        raise _fail(_store_error(exc), 1) from None


@app.command(cls=ListsSources)
def parse(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="A saved upstream response", exists=True, dir_okay=False, readable=True
        ),
    ],
    source: Annotated[str, typer.Option("--source", "-s", help="The source it came from")],
    reference: Annotated[
        list[Path] | None,
        typer.Option(
            "--reference",
            help="A saved response of a source whose reference data the transform reads "
            f"(repeatable; {READS})",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    pool: Annotated[
        str | None,
        typer.Option(
            help="FILE is this pool's saved history response (/chart/{pool}; for "
            "defillama-protocols a slug's /protocol/{slug}), read as backfill reads it",
        ),
    ] = None,
    listing: Annotated[
        Path | None,
        typer.Option(
            help="A saved snapshot (/pools, /protocols) that lists --pool: a history "
            "point holds only figures and a time, the pool's item the rest",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
) -> None:
    """Show what a saved response would become; touches no store.

    Observations go to stdout as JSON lines, rejections with reasons to stderr,
    then a one-line summary.

    Example: yieldstream parse --source defillama-yields --reference protocols.json pools.json

    History: yieldstream parse -s defillama-yields --pool ID --listing pools.json chart.json
    """
    import msgspec

    from transforms import Context, apply
    from yieldstream import saved
    from yieldstream.contracts import Rejection
    from yieldstream.errors import BadResponse
    from yieldstream.registry import source as get_source

    _settings(ctx)
    src = get_source(source)
    if listing is not None and pool is None:
        raise _fail("--listing goes with --pool: it lists the pool whose history FILE is")
    ctx_data = Context()
    try:  # a file that is not what it should be: exit 1; a wrong option: ConfigError, 2
        for path in reference or ():
            ctx_data = ctx_data.learned(*saved.reference(src, path))
        if pool is None:
            records = saved.records(src, file)
        else:
            records = saved.history_records(src, file, pool)
            ctx_data = Context(ctx_data.reference, saved.listing(src, pool, listing))
    except BadResponse as exc:
        raise _fail(str(exc), 1) from None
    if not reference:
        _warn_without_reference(src)
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
    if records and not observed and pool is None and src.history is not None:
        err.print(
            "note: if FILE is a history response, pass --pool (and --listing)", highlight=False
        )
    err.print(
        f"{len(records)} records: {observed} observations, {rejected} rejections", highlight=False
    )


def _warn_without_reference(src: Source) -> None:
    """One line when ``src``'s transform reads other sources' reference data (AFTER).

    The reference data that sources provide classifies (DefiLlama's categories):
    without it a pool's strategy is a guess from its own fields.
    """
    from yieldstream import saved

    providers = saved.providers_of(src)
    if not providers:
        return
    responses = " or ".join(f"{p.endpoints[0].path} ({p.name})" for p in providers)
    err.print(
        "warning: no --reference given: strategies are guessed from each pool's own "
        f"fields (strategy_guessed = true); pass a saved {responses} response",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@app.command(cls=ListsSources)
def backfill(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help=f"One of: {WITH_HISTORY}")],
    since: Annotated[
        datetime | None,
        typer.Option(
            help="History from this day or time on (UTC) " + _default("all the source has")
        ),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(help="History before this day or time (UTC) " + _default("the end of today")),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="Only these entities (pool ids, protocol slugs); repeat or use commas "
            + _default("every entity listed")
        ),
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
    import asyncio
    import signal

    from yieldstream.backfill import BackfillSummary, BarReporter, ListingFailed, LogReporter
    from yieldstream.backfill import backfill as run_backfill

    settings = _settings(ctx)
    entities = [e.strip() for value in only or () for e in value.split(",") if e.strip()]
    if only is not None and not entities:
        raise _fail("--only names no entity: give pool ids or protocol slugs, or leave it out")
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
        list[str] | None,
        typer.Option(
            "--source", "-s", help=f"Only this source (repeatable) {_default('every source')}"
        ),
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(help=f"Only records fetched at or after (UTC) {_default('the first')}"),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(help=f"Only records fetched before (UTC) {_default('the last')}"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report, write nothing")] = False,
    from_kafka: Annotated[
        bool,
        typer.Option("--from-kafka", help="Re-read yields.raw (Kafka mode) instead of the archive"),
    ] = False,
    from_offset: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="With --from-kafka: start every partition at this offset "
            + _default("at --since, else at the beginning"),
        ),
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
    import asyncio

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
    try:
        summary = run_replay(
            store, only=source or (), since=_utc(since), until=_utc(until), dry_run=dry_run
        )
    except duckdb.Error as exc:
        raise _fail(_store_error(exc), 1) from None
    err.print(summary.line(dry_run), highlight=False, soft_wrap=True)


def _store_error(exc: duckdb.Error) -> str:
    """A store that fails a read (a damaged data file...) as one line."""
    from sinks.lake import store_failure

    return store_failure(exc)


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
    if settings.data_dir.exists() and not settings.data_dir.is_dir():
        # No store yet is fine (nothing fetched); a file where it should be is not.
        raise _fail(
            f"cannot use {settings.data_dir} as the data directory (Not a directory); "
            "pass --data-dir or set data_dir to a directory"
        )
    from rich.table import Table

    from sinks.lake import open_reader
    from yieldstream.registry import sources as all_sources
    from yieldstream.sourcestats import SourceStats, source_stats

    stats: dict[str, SourceStats] = {}
    store = store_of(settings)
    if store.exists:
        con = open_reader(store)
        try:
            stats = source_stats(con)
        except duckdb.Error as exc:
            raise _fail(_store_error(exc), 1) from None
        finally:
            con.close()
    table = Table(
        "source",
        "enabled",
        "interval",
        "last fetch (UTC)",
        "last ok",
        "rows stored",
        "rejected",
        "failed fetches",
        "strategy",
        "venue",
        "history (backfill)",
    )
    for name, src in all_sources().items():
        cfg = settings.source_config(name)
        got = stats.get(name, SourceStats())
        last, ok = got.last_fetch, got.last_ok
        table.add_row(
            name,
            "yes" if cfg.enabled else "no",
            f"{cfg.interval_s:g}s",
            last.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if last else "never",
            "" if ok is None else ("yes" if ok else "no"),
            str(got.rows_stored),
            str(got.rejected),
            str(got.failed_fetches),
            *_offers(src),
            src.history.path if src.history else "none",
        )
    _out().print(table)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help=f"Address to bind {_default('127.0.0.1, api.host')}")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help=f"Port to listen on {_default('8000, api.port')}"),
    ] = None,
) -> None:
    """Serve the read API over the store (read-only; safe while the daemon writes).

    Endpoints under /v1, OpenAPI docs at /docs, /healthz, /readyz and /metrics.
    Stops on Ctrl-C or SIGTERM.

    Example: yieldstream serve --port 8000
    """
    from yieldstream.api import serve as serve_api

    serve_api(_settings(ctx), host=host, port=port)


def _offers(src: Source) -> tuple[str, str]:
    """What a source's products are: its strategies and venues, as two cells."""
    from yieldstream.contracts import Strategy

    strategies = {strategy for strategy, _ in src.offers}
    venues = sorted({venue.value for _, venue in src.offers})
    shown = "any" if strategies == set(Strategy) else ", ".join(s.value for s in sorted(strategies))
    return shown, ", ".join(venues)


@app.command()
def demo(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            "-d",
            help=f"Keep the store in this directory {_default('a temporary one, removed')}",
        ),
    ] = None,
) -> None:
    """Run the pipeline once, offline, against the bundled recorded responses.

    Serves the recorded real responses on 127.0.0.1, points every source there,
    stores into a temporary directory (or --data-dir) and prints a first query.

    Example: yieldstream demo
    """
    import asyncio

    from sinks.lake import Store, open_reader
    from yieldstream.app import run_pipeline
    from yieldstream.loopback import recorded_routes, recorded_settings, serve, source_url
    from yieldstream.registry import sources as all_sources

    # The demo is quiet unless asked: its output is the query result.
    base = _settings(ctx, log_level=(ctx.obj or {}).get("log_level") or "warning")
    target: Path | None = data_dir or (ctx.obj or {}).get("data_dir")
    with tempfile.TemporaryDirectory(prefix="yieldstream-demo-") as tmp:
        directory = Path(target) if target else Path(tmp)
        entities = recorded_settings()  # the recorded chains and markets, no others
        with serve(recorded_routes()) as (url, _hits):
            cfg = {
                name: {
                    **base.sources.get(name, {}),
                    **entities.get(name, {}),
                    "base_url": source_url(url, name),
                    "rate_per_s": 50.0,
                }
                for name in all_sources()
            }
            settings = base.model_copy(update={"data_dir": directory, "sources": cfg})
            asyncio.run(run_pipeline(settings, once=True))
        con = open_reader(Store(directory))
        try:
            result = con.execute(
                """
                SELECT strategy, venue, source, protocol, chain, symbol,
                       round(apy_pct, 2) AS apy_pct, round(r.real_apy_pct, 2) AS real_apy_pct,
                       round(tvl_usd / 1e6, 1) AS tvl_musd
                FROM latest_yields
                LEFT JOIN (SELECT source, pool_id, observed_at, real_apy_pct FROM real_yields) AS r
                    USING (source, pool_id, observed_at)
                ORDER BY strategy, venue, tvl_usd DESC NULLS LAST, source, pool_id
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
    except StageFailed as exc:  # logged where it failed; here the one line a script reads
        _error(_stage_failure(exc))
        sys.exit(1)
    except duckdb.Error as exc:  # the store failed outside a stage (a damaged data file...)
        _error(_store_error(exc))
        sys.exit(1)
    except OSError as exc:
        from sinks.space import disk_full, full_message

        if not disk_full(exc):
            raise
        _error(full_message(exc, exc.filename or "the data directory"))
        sys.exit(1)


def _stage_failure(exc: StageFailed) -> str:
    """A failed stage's line; the store's own words when the store was what failed."""
    from sinks.space import disk_full, full_message

    cause = exc.__cause__
    if cause is not None and disk_full(cause):
        return f"{exc.stage} failed: {full_message(cause, 'the data directory')}"
    if isinstance(cause, duckdb.Error):
        return f"{exc.stage} failed: {_store_error(cause)}"
    return str(exc)


__all__ = ["app", "main"]
