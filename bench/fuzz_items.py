"""Fuzz: hostile ``/pools`` bodies through the real pipeline; every item accounted for.

:func:`bodies` is a hypothesis strategy of ``/pools``-shaped bodies, written as JSON
text so that they can hold what a serializer would refuse: valid pools and invalid
ones (repeated ids, nesting up to 1,000 levels, lone-surrogate, NUL, empty and overlong
ids, ids that are objects or lists, NaN and Infinity, wrong types, missing fields,
items that are not objects). ``tests/test_items_property.py`` runs a CI-sized number
of them; this script runs many more, in rounds of ``--per-round`` bodies: each round
is one pipeline run (real collector over ``httpx.MockTransport``, real transforms,
real DuckLake store), whose collector fetches ``/pools`` once per body. At the end
every item of every body must be exactly one observation row or one rejection row,
and the run summaries must say the same::

    python -m bench.fuzz_items --bodies 10000 --minutes 10

Prints one JSON line of totals; exits 1 if any item is unaccounted for.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

T = TypeVar("T")
SALT = b"@@"  # replaced in every id by a per-body prefix (one store holds many bodies)
_GOOD_IDS = [SALT + f"p{n}".encode() for n in range(20)]  # few: repeats are common
_BAD_IDS = [
    b'"' + SALT + b'\\udfff"',  # a lone surrogate, as a JSON escape
    b'"' + SALT + b'a\\u0000b"',  # NUL
    b'"' + SALT + b"x" * 600 + b'"',  # longer than any stage stores
    b'""',
    b"null",
    b"17",
    b'{"id":1}',
    b'["p1"]',
    b'"' + SALT + b'../../admin"',
]
_NUMBERS = [b"1.5", b"0", b"42.25", b"null", b"-3.25"]
_WRONG = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b'"3.1"',
    b"true",
    b"[1]",
    b'{"v":1}',
    b"1e400",
    b"2e6",
]
_TEXT = [
    b'"Ethereum"',
    b'"aave-v3"',
    b'"USDC"',
    b'"caf\\u00e9"',
    b'"[{"',
    b'"\\udfff"',
    b"7",
    b"null",
]


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def _mostly(good: list[T], bad: list[T], one_in: int) -> st.SearchStrategy[T]:
    """``good`` values, and one time in about ``one_in`` a ``bad`` one.

    The good values come first: hypothesis favours (and shrinks towards) the first.
    """
    return st.sampled_from(good * max(1, (one_in - 1) * len(bad) // len(good)) + bad)


@st.composite
def _pool(draw: st.DrawFn) -> bytes:
    """One item: mostly a pool, sometimes broken in one or more ways."""
    if draw(st.sampled_from([False] * 19 + [True])):  # not an object at all
        return draw(st.sampled_from([b"7", b'"pool"', b"null", b"[]", _deep(3)]))
    fields: dict[bytes, bytes] = {}
    ids = [b'"' + pool_id + b'"' for pool_id in _GOOD_IDS]
    missing = [b""]
    if pool_id := draw(_mostly(ids, [*_BAD_IDS, *missing], 5)):
        fields[b"pool"] = pool_id
    for key in (b"chain", b"project", b"symbol"):
        if text := draw(_mostly(_TEXT[:3], [*_TEXT[3:], *missing], 12)):
            fields[key] = text
    for key in (b"tvlUsd", b"apy", b"apyBase", b"apyReward"):
        if number := draw(_mostly(_NUMBERS, [*_WRONG, *missing], 10)):
            fields[key] = number
    if levels := draw(_mostly([0], [1, 63, 64, 65, 300, 1000], 6)):
        fields[b"x"] = _deep(levels)
    order = draw(st.permutations(list(fields)))
    return b"{" + b",".join(b'"' + k + b'":' + fields[k] for k in order) + b"}"


@st.composite
def bodies(draw: st.DrawFn, max_items: int = 25) -> list[bytes]:
    """The items of one ``/pools`` body, each as JSON text with :data:`SALT` in its id."""
    return draw(st.lists(_pool(), max_size=max_items))


def render(items: list[bytes], salt: str) -> bytes:
    """The body of ``items``, their ids prefixed with ``salt``."""
    joined = b",".join(items).replace(SALT, salt.encode())
    return b'{"status":"success","data":[' + joined + b"]}"


def counts(data_dir: Path) -> tuple[int, int]:
    """(observation rows, rejection rows) of defillama-yields in the store."""
    import yieldstream

    con = yieldstream.connect(data_dir)
    try:
        row = con.execute(
            """
            SELECT (SELECT count(*) FROM observations WHERE source = 'defillama-yields'),
                   (SELECT count(*) FROM rejections WHERE source = 'defillama-yields')
            """
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0]), int(row[1])


async def run_round(data_dir: Path, round_bodies: list[bytes]) -> dict[str, int]:
    """One pipeline run whose collector fetches each body once; its summary's counts."""
    import ingest.defillama_yields as pools
    from ingest._records import collect_endpoints
    from sinks.lake import Store
    from sinks.writer import LakeWriter
    from yieldstream.bus import MemoryBus
    from yieldstream.contracts import RawRecord
    from yieldstream.pipeline import Pipeline
    from yieldstream.registry import sources
    from yieldstream.transformer import Transformer

    served: Iterator[bytes] = iter(round_bodies)

    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=next(served), headers={"content-type": "application/json"}
        )

    async def collect(
        client: httpx.AsyncClient, cfg: pools.Config, run_id: str
    ) -> AsyncIterator[RawRecord]:
        for _ in round_bodies:
            async for record in collect_endpoints(
                client, cfg, run_id, source=pools.SOURCE, endpoints=pools.ENDPOINTS
            ):
                yield record

    source = dataclasses.replace(sources()[pools.SOURCE], collect=collect)
    writer = LakeWriter(Store(data_dir))
    try:
        async with httpx.AsyncClient(transport=httpx.MockTransport(serve)) as client:
            pipeline = Pipeline(
                sources={pools.SOURCE: source},
                configs={pools.SOURCE: pools.Config(base_url="http://upstream.test")},
                clients={pools.SOURCE: client},
                writer=writer,
                bus=MemoryBus(4),
                batch_size=2_000,
                transformer=Transformer(0),
            )
            stats = await pipeline.run(once=True, stop=asyncio.Event())
    finally:
        writer.close()
    mine = stats.sources[pools.SOURCE]
    return {
        "fetched": mine.fetched,
        "stored": mine.stored,
        "duplicates": mine.duplicates,
        "rejected": mine.rejected,
        "failed_fetches": mine.fetch_failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=10_000)
    parser.add_argument("--minutes", type=float, default=10.0, help="stop after this long")
    parser.add_argument("--per-round", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))

    generated: list[list[bytes]] = []

    @settings(
        max_examples=args.bodies,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(bodies())
    def draw(items: list[bytes]) -> None:
        generated.append(items)

    seed(args.seed)(draw)()
    started = time.monotonic()
    totals = {
        "bodies": 0,
        "items": 0,
        "fetched": 0,
        "stored": 0,
        "duplicates": 0,
        "rejected": 0,
        "failed_fetches": 0,
    }
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "store"
        for start in range(0, len(generated), args.per_round):
            if time.monotonic() - started > args.minutes * 60:
                break
            chunk = generated[start : start + args.per_round]
            rendered = [render(items, f"b{start + n}-") for n, items in enumerate(chunk)]
            for key, value in asyncio.run(run_round(data_dir, rendered)).items():
                totals[key] += value
            totals["bodies"] += len(chunk)
            totals["items"] += sum(len(items) for items in chunk)
        rows, rejections = counts(data_dir)
    totals |= {"observation_rows": rows, "rejection_rows": rejections}
    accounted = (
        rows + rejections == totals["items"] == totals["fetched"]
        and totals["stored"] == rows
        and totals["rejected"] == rejections
        and totals["duplicates"] == 0
    )
    seconds = round(time.monotonic() - started, 1)
    print(json.dumps({**totals, "seconds": seconds, "every_item_accounted_for": accounted}))
    if not accounted:
        sys.exit(1)


if __name__ == "__main__":
    main()
