"""The source contract suite: the same checks, run on every registered source.

A source is ``ingest/<name>.py`` with ``collect`` plus ``transforms/<name>.py`` plus
recorded real responses under ``tests/fixtures/<source>/`` (see tests/transforms for
how a file names its endpoint). Adding a source adds it to every test here; a source
missing one of its parts fails :func:`test_every_collector_has_a_transform_and_fixtures`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

import ingest
from ingest._history import history_records
from ingest._http import SourceConfig, parse_json
from ingest._items import Items
from ingest._records import Endpoint, recorded_path
from tests.conftest import FIXTURES
from tests.transforms import endpoint_for, fixture_files, recorded_fixtures, records_of
from transforms import Context, apply
from yieldstream import registry
from yieldstream.contracts import RawRecord, Rejection
from yieldstream.errors import ConfigError

SOURCES = sorted(registry.sources())
# A fetch after every recorded response (the newest is of 2026-09): points dated after
# their fetch are rejected as clock or unit errors.
FETCHED_LATER = datetime(2026, 12, 1, 12, 34, 56, tzinfo=UTC)


def joins(name: str) -> Callable[[Sequence[Any]], list[Any]] | None:
    """How a source joins its endpoints' responses, if its collect joins them.

    Most sources make one record per upstream item. A source whose products need
    several responses at once (Beefy: a vault's APY, TVL and metadata come from three)
    defines ``join_bodies(bodies)`` in its ingest module: the parsed responses of its
    ENDPOINTS, in order, to the items it yields one record each, under its first
    endpoint's path. Its recorded responses are checked joined, not one by one. Where
    its endpoints are per entity (Curve: a chain's pools and base APYs), ``bodies`` are
    the responses of one entity, and every endpoint needs a recorded response of each
    recorded entity (see :func:`_joined_rounds`).
    """
    module = importlib.import_module(f"ingest.{registry.sources()[name].module}")
    join: Callable[[Sequence[Any]], list[Any]] | None = getattr(module, "join_bodies", None)
    return join


def joined_id(name: str, item: Any, index: int) -> Any:
    """A joined item's native id: the module's ``joined_id(item)`` if it defines one
    (Curve's envelope is named by its pool), else the first endpoint's ``id_key``."""
    src = registry.sources()[name]
    named: Callable[[Any], Any] | None = getattr(
        importlib.import_module(f"ingest.{src.module}"), "joined_id", None
    )
    return named(item) if named is not None else src.endpoints[0].native_id(item, index)


RECORDED = [(s, f) for s in SOURCES if joins(s) is None for f, _ in recorded_fixtures(s)]
JOINED = [s for s in SOURCES if joins(s) is not None]


def incomplete(ingest_pkg: str, transforms_pkg: str, fixtures: Path) -> list[str]:
    """What is missing for each collector module of ``ingest_pkg`` to be a source."""
    problems = []
    for info in pkgutil.iter_modules(importlib.import_module(ingest_pkg).__path__):
        if info.name.startswith("_"):
            continue
        collector = importlib.import_module(f"{ingest_pkg}.{info.name}")
        if not hasattr(collector, "collect"):
            continue
        where = f"{ingest_pkg}.{info.name}"
        counterpart = f"{transforms_pkg}.{info.name}"
        if importlib.util.find_spec(counterpart) is None:
            problems.append(f"{where} has no {counterpart}")
        elif not callable(getattr(importlib.import_module(counterpart), "transform", None)):
            problems.append(f"{counterpart} defines no transform()")
        name = getattr(collector, "SOURCE", None)
        if not isinstance(name, str) or not name:
            problems.append(f"{where} defines no SOURCE")
        elif not any((fixtures / name).glob("*.json")):
            problems.append(f"{where}: no recorded responses in {fixtures / name}/")
    return problems


# --- registration ------------------------------------------------------------------


def test_every_collector_has_a_transform_and_fixtures() -> None:
    assert incomplete("ingest", "transforms", FIXTURES) == []


def test_every_collector_is_registered() -> None:
    modules = {
        info.name
        for info in pkgutil.iter_modules(ingest.__path__)
        if not info.name.startswith("_")
        and hasattr(importlib.import_module(f"ingest.{info.name}"), "collect")
    }
    assert {registry.sources()[s].module for s in SOURCES} == modules
    assert set(SOURCES) >= {"defillama-yields", "defillama-protocols", "lido"}


@pytest.fixture
def fake_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """Two throwaway packages standing in for ingest/ and transforms/."""
    suffix = uuid.uuid4().hex[:8]
    ingest_pkg, transforms_pkg = f"fake_ingest_{suffix}", f"fake_transforms_{suffix}"
    for pkg in (ingest_pkg, transforms_pkg):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield ingest_pkg, transforms_pkg
    for module in [m for m in sys.modules if m.startswith((ingest_pkg, transforms_pkg))]:
        del sys.modules[module]


def test_the_completeness_check_names_what_a_new_source_lacks(
    fake_packages: tuple[str, str], tmp_path: Path
) -> None:
    ingest_pkg, transforms_pkg = fake_packages
    collector = (
        'SOURCE = "{}"\n\ndef collect(client, cfg, run_id):\n    raise NotImplementedError\n'
    )
    (tmp_path / ingest_pkg / "complete.py").write_text(collector.format("complete"))
    (tmp_path / transforms_pkg / "complete.py").write_text("def transform(r, c):\n    return []\n")
    (tmp_path / "fixtures" / "complete").mkdir(parents=True)
    (tmp_path / "fixtures" / "complete" / "things-sample.json").write_text("[]")
    (tmp_path / ingest_pkg / "orphan.py").write_text(collector.format("orphan"))
    (tmp_path / ingest_pkg / "untransformed.py").write_text(collector.format("complete"))
    (tmp_path / transforms_pkg / "untransformed.py").write_text("TRANSFORM = None\n")
    (tmp_path / ingest_pkg / "_helper.py").write_text("def collect():\n    pass\n")
    (tmp_path / ingest_pkg / "not_a_source.py").write_text("X = 1\n")

    assert incomplete(ingest_pkg, transforms_pkg, tmp_path / "fixtures") == [
        f"{ingest_pkg}.orphan has no {transforms_pkg}.orphan",
        f"{ingest_pkg}.orphan: no recorded responses in {tmp_path / 'fixtures' / 'orphan'}/",
        f"{transforms_pkg}.untransformed defines no transform()",
    ]


def test_registry_fails_loudly_on_a_collector_without_a_transform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"zz_orphan_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        'SOURCE = "orphan"\n\ndef collect(client, cfg, run_id):\n    raise NotImplementedError\n'
    )
    monkeypatch.setattr(ingest, "__path__", [*ingest.__path__, str(tmp_path)])
    try:
        with pytest.raises(ModuleNotFoundError, match=f"transforms.{name}"):
            registry.sources.__wrapped__()
    finally:
        sys.modules.pop(f"ingest.{name}", None)
        vars(ingest).pop(name, None)


def test_unknown_source_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown source 'nope'; known sources: ") as info:
        registry.source("nope")
    assert all(name in str(info.value) for name in SOURCES)


# --- the contract, per source -----------------------------------------------------


@pytest.mark.parametrize("name", SOURCES)
def test_modules_agree_on_the_source(name: str) -> None:
    src = registry.sources()[name]
    assert src.name == name
    assert src.module == name.replace("-", "_")
    collector = importlib.import_module(f"ingest.{src.module}")
    transformer = importlib.import_module(f"transforms.{src.module}")
    assert collector.SOURCE == transformer.SOURCE == name
    assert src.collect is collector.collect
    assert src.transform is transformer.transform
    assert list(inspect.signature(src.collect).parameters) == ["client", "cfg", "run_id"]
    assert list(inspect.signature(src.transform).parameters) == ["record", "ctx"]
    for other in src.after:
        assert other in registry.sources(), f"{name} waits for unknown source {other!r}"
        assert other != name


@pytest.mark.parametrize("name", SOURCES)
def test_config_defaults_to_the_real_https_api(name: str) -> None:
    model = registry.sources()[name].config_model
    assert issubclass(model, SourceConfig)
    cfg = model()  # every setting has a default
    url = httpx.URL(cfg.base_url)
    assert url.scheme == "https"
    assert url.host
    assert url.host not in {"localhost", "127.0.0.1", "example.com"}
    assert not url.host.endswith((".local", ".test", ".example"))
    assert not cfg.base_url.endswith("/"), "paths start with '/': no trailing slash"
    assert not url.query
    assert cfg.interval_s > 0
    with pytest.raises(ValueError, match="extra"):
        model.model_validate({"no_such_setting": 1})


@pytest.mark.parametrize("name", SOURCES)
def test_endpoints_are_distinct_paths(name: str) -> None:
    endpoints = registry.sources()[name].endpoints
    assert endpoints
    assert all(isinstance(e, Endpoint) for e in endpoints)
    assert all(e.path.startswith("/") and "?" not in e.path for e in endpoints)
    assert len({e.path for e in endpoints}) == len(endpoints)


@pytest.mark.parametrize("name", SOURCES)
def test_every_endpoint_has_a_recorded_response(name: str) -> None:
    files = fixture_files(name)
    assert files, f"add recorded responses under {FIXTURES / name}/"
    for endpoint in registry.sources()[name].endpoints:
        named = [f.name for f in files if endpoint_for([endpoint], f) is endpoint]
        assert named, f"no recorded response for {name} {endpoint.path} in {FIXTURES / name}/"


@pytest.mark.parametrize(("name", "fixture"), RECORDED, ids=[f"{s}/{f.name}" for s, f in RECORDED])
def test_recorded_responses_parse_without_rejection(name: str, fixture: Path) -> None:
    src = registry.sources()[name]
    records = records_of(name, fixture.name, fetched_at=FETCHED_LATER)
    assert records, f"{fixture.name} holds no items"
    observations = []
    for record in records:
        result = apply(src.transform, record, Context())
        assert not isinstance(result, Rejection), f"{record.native_id}: {result.reason}"
        observations.extend(result)
    assert len(observations) >= 1
    assert {o.source for o in observations} == {name}
    assert all(o.observed_at.utcoffset() is not None for o in observations)
    # Each product names the strategy and venue its source says it offers.
    assert src.offers
    assert {(o.strategy, o.venue) for o in observations} <= set(src.offers)
    # A re-run is idempotent: the same records give the same rows, under the same keys.
    again = []
    for record in records:
        result = apply(src.transform, record, Context())
        assert not isinstance(result, Rejection)
        again.extend(result)
    assert again == observations
    keys = [(o.source, o.pool_id, o.observed_at) for o in observations]
    assert len(set(keys)) == len(keys), "two rows of one response share a natural key"


@pytest.mark.parametrize("name", JOINED)
def test_joined_recorded_responses_transform_without_rejection(name: str) -> None:
    src = registry.sources()[name]
    join = joins(name)
    assert join is not None
    for served in _rounds(name):
        path, bodies = _joined_bodies(name, served)
        items = Items(lenient=False)
        records = []
        for index, item in enumerate(join(bodies)):
            native_id, payload, problem = items.check(index, joined_id(name, item, index), item)
            assert problem is None, f"{native_id}: {problem}"
            records.append(
                RawRecord(
                    source=name,
                    endpoint=path,
                    fetched_at=FETCHED_LATER,
                    run_id="test",
                    kind="snapshot",
                    native_id=native_id,
                    payload=payload,
                )
            )
        assert records, f"{name}: the recorded responses join into no item"
        observations = []
        for record in records:
            result = apply(src.transform, record, Context())
            assert not isinstance(result, Rejection), f"{record.native_id}: {result.reason}"
            observations.extend(result)
        assert {(o.strategy, o.venue) for o in observations} <= set(src.offers)
        keys = [(o.source, o.pool_id, o.observed_at) for o in observations]
        assert len(set(keys)) == len(keys), "two rows of one poll share a natural key"


# --- history, for backfill ---------------------------------------------------------

# A history response is recorded as tests/fixtures/<source>/history-*.json; Lido's
# keeps the name it was recorded under. DefiLlama's histories need the listing of
# their snapshot (a chart names no protocol or chain): tests/transforms/test_history.py.
HISTORY_FILES = {"lido": "lido/apr-sma-*.json"}
NEEDS_LISTING = {"defillama-yields", "defillama-protocols"}
WITH_HISTORY = [
    s for s in SOURCES if registry.sources()[s].history is not None and s not in NEEDS_LISTING
]


def history_fixtures(name: str) -> list[Path]:
    return sorted(FIXTURES.glob(HISTORY_FILES.get(name, f"{name}/history-*.json")))


@pytest.mark.parametrize("name", WITH_HISTORY)
def test_every_history_has_a_recorded_response_that_transforms(name: str) -> None:
    src = registry.sources()[name]
    history = src.history
    assert history is not None
    files = history_fixtures(name)
    assert files, f"record a history response of {name} as {FIXTURES / name}/history-*.json"
    for path in files:
        body, lenient = parse_json(path.read_bytes(), "application/json", str(path))
        entity = history.entities[0] if history.entities else path.stem
        points = list(history.points(body, entity, str(path), b""))
        assert points, f"{path.name} holds no history points"
        records = list(
            history_records(
                points,
                source=name,
                endpoint=history.endpoint(entity),
                fetched_at=FETCHED_LATER,
                run_id="test",
                lenient=lenient,
            )
        )
        observations = []
        for record in records:
            result = apply(src.transform, record, Context())
            assert not isinstance(result, Rejection), f"{record.native_id}: {result.reason}"
            observations.extend(result)
        assert observations, f"{path.name}: no observations"
        assert {(o.strategy, o.venue) for o in observations} <= set(src.offers)
        # Points carry their own time: a history is not stamped with its fetch.
        assert any(o.observed_at != FETCHED_LATER for o in observations)


# --- collect, through httpx.MockTransport, at the real URLs -----------------------


def _rounds(name: str) -> list[dict[str, tuple[Endpoint, Path]]]:
    """Serve every recorded response once: round i serves each endpoint's i-th file.

    A round maps each concrete path served (an entity endpoint's recorded entity)
    to its endpoint and file. A joined source's rounds line its files up by entity
    (:func:`_joined_rounds`).
    """
    endpoints = registry.sources()[name].endpoints
    by_endpoint: dict[str, list[tuple[str, Endpoint, Path]]] = {}
    for fixture in fixture_files(name):
        named = recorded_path(endpoints, fixture)
        if named is not None:
            by_endpoint.setdefault(named[0].path, []).append((named[1], named[0], fixture))
    if joins(name) is not None:
        return _joined_rounds(name, endpoints, by_endpoint)
    count = max(len(files) for files in by_endpoint.values())
    return [
        {path: (e, f) for path, e, f in (files[i % len(files)] for files in by_endpoint.values())}
        for i in range(count)
    ]


def _joined_rounds(
    name: str,
    endpoints: Sequence[Endpoint],
    by_endpoint: dict[str, list[tuple[str, Endpoint, Path]]],
) -> list[dict[str, tuple[Endpoint, Path]]]:
    """A joined source's rounds: one entity each, with one file of every endpoint.

    Its collect joins one entity's responses (Curve: the pools and base APYs of a
    chain), so round i of an entity serves each endpoint's i-th file OF THAT ENTITY
    (an endpoint without entities: its i-th file), the fewer repeated. A source
    without entity endpoints has one entity, None (Beefy: round i, each i-th file).
    """
    entities = sorted(
        {
            entity
            for files in by_endpoint.values()
            for path, endpoint, _ in files
            if (entity := endpoint.entity_of(path)) is not None
        }
    )
    rounds: list[dict[str, tuple[Endpoint, Path]]] = []
    each: list[str | None] = [*entities] or [None]
    for entity in each:
        lined_up = []
        for endpoint in endpoints:
            files = [
                (path, e, f)
                for path, e, f in by_endpoint.get(endpoint.path, [])
                if e.entities is None or e.entity_of(path) == entity
            ]
            assert files, (
                f"{name}: record a response of {endpoint.path} for {entity!r}: "
                "its collect joins every endpoint's response of an entity"
            )
            lined_up.append(files)
        count = max(len(files) for files in lined_up)
        rounds.extend(
            {path: (e, f) for path, e, f in (files[i % len(files)] for files in lined_up)}
            for i in range(count)
        )
    return rounds


def _joined_bodies(name: str, served: dict[str, tuple[Endpoint, Path]]) -> tuple[str, list[Any]]:
    """A joined round's path of the first endpoint, and its endpoints' bodies in order."""
    endpoints = registry.sources()[name].endpoints
    by_template = {e.path: (path, f) for path, (e, f) in served.items()}
    assert len(by_template) == len(served) == len(endpoints)
    bodies = [orjson.loads(by_template[e.path][1].read_bytes()) for e in endpoints]
    return by_template[endpoints[0].path][0], bodies


@pytest.mark.parametrize("name", JOINED)
def test_joined_rounds_line_up_one_entity_with_every_endpoint(name: str) -> None:
    endpoints = registry.sources()[name].endpoints
    rounds = _rounds(name)
    assert rounds
    for served in rounds:
        assert sorted(e.path for e, _ in served.values()) == sorted(e.path for e in endpoints)
        assert len({e.entity_of(path) for path, (e, _) in served.items() if e.entities}) <= 1
    # Every recorded response of the source is served in some round.
    named = {f for f in fixture_files(name) if recorded_path(endpoints, f) is not None}
    assert {f for served in rounds for _, f in served.values()} == named


def _rpc_recordings(name: str) -> dict[str, Path]:
    """A source's recordings that name no endpoint, by the JSON-RPC method they may
    answer (``getInflationGovernor-*.json``): Solana's requests share one path."""
    endpoints = registry.sources()[name].endpoints
    return {
        f.name.split("-", 1)[0]: f
        for f in fixture_files(name)
        if recorded_path(endpoints, f) is None
    }


def _serving(
    served: dict[str, tuple[Endpoint, Path]],
    requests: list[httpx.Request],
    rpc: dict[str, Path] | None = None,
) -> Callable[[httpx.Request], httpx.Response]:
    """A MockTransport handler: recorded responses at their paths, 404 elsewhere; a
    JSON-RPC POST whose method names one of ``rpc`` gets that recording."""

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        found = served.get(request.url.path)
        body = orjson.loads(request.content) if request.method == "POST" else None
        method = body.get("method") if isinstance(body, dict) else None
        recorded = (rpc or {}).get(method) if isinstance(method, str) else None
        if recorded is None and found is not None:
            recorded = found[1]
        if recorded is None:
            return httpx.Response(404, json={"error": "not found"})
        return httpx.Response(
            200, content=recorded.read_bytes(), headers={"content-type": "application/json"}
        )

    return handler


@pytest.mark.parametrize("name", SOURCES)
async def test_collect_fetches_the_real_paths_and_yields_transformable_records(
    name: str,
) -> None:
    src = registry.sources()[name]
    base = httpx.URL(src.config_model().base_url)
    for served in _rounds(name):
        # An entity endpoint asks for the recorded entity only.
        entities: dict[str, list[str]] = {}
        for path, (endpoint, _) in served.items():
            entity = endpoint.entity_of(path)
            assert endpoint.entities is None or entity is not None, (
                f"{name}: name the recorded response of {endpoint.path} after its entity"
            )
            if endpoint.entities is not None and entity is not None:
                # Endpoints of one setting (Curve's two, per chain) name it once.
                named = entities.setdefault(endpoint.entities, [])
                if entity not in named:
                    named.append(entity)
        cfg = src.config_model(**entities)
        requests: list[httpx.Request] = []
        handler = _serving(served, requests, _rpc_recordings(name))
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            records = [r async for r in src.collect(client, cfg, "run-contract")]

        assert sorted({r.url.path for r in requests}) == sorted(served)
        for r in requests:
            endpoint, _ = served[r.url.path]
            assert (r.url.scheme, r.url.host) == (base.scheme, base.host)
            assert r.method == endpoint.method
            assert sorted(r.url.params.multi_items()) == sorted(endpoint.params)
        join = joins(name)
        if join is None:
            expected = sum(
                len(e.items(orjson.loads(f.read_bytes()), path)) for path, (e, f) in served.items()
            )
        else:
            expected = len(join(_joined_bodies(name, served)[1]))
        assert len(records) == expected > 0
        for record in records:
            assert record.source == name
            assert record.endpoint in served
            assert record.run_id == "run-contract"
            assert record.kind == "snapshot"
            assert record.native_id
            assert record.fetched_at.utcoffset() is not None
            assert isinstance(orjson.loads(record.payload), dict | list)
            result = apply(src.transform, record, Context())
            assert not isinstance(result, Rejection), f"{record.native_id}: {result.reason}"
            assert result
