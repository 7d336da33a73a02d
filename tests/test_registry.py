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
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

import ingest
from ingest._http import SourceConfig
from ingest._records import Endpoint
from tests.conftest import FIXTURES
from tests.transforms import endpoint_for, fixture_files, recorded_fixtures, records_of
from transforms import Context, apply
from yieldstream import registry
from yieldstream.contracts import Rejection
from yieldstream.errors import ConfigError

SOURCES = sorted(registry.sources())
RECORDED = [(s, f) for s in SOURCES for f, _ in recorded_fixtures(s)]


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
    records = records_of(name, fixture.name)
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


# --- collect, through httpx.MockTransport, at the real URLs -----------------------


def _rounds(name: str) -> list[dict[str, Path]]:
    """Serve every recorded response once: round i serves each endpoint's i-th file."""
    by_path: dict[str, list[Path]] = {}
    for fixture, endpoint in recorded_fixtures(name):
        by_path.setdefault(endpoint.path, []).append(fixture)
    count = max(len(files) for files in by_path.values())
    return [{p: files[i % len(files)] for p, files in by_path.items()} for i in range(count)]


def _serving(
    served: dict[str, Path], requests: list[httpx.Request]
) -> Callable[[httpx.Request], httpx.Response]:
    """A MockTransport handler: recorded responses at their paths, 404 elsewhere."""

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        fixture = served.get(request.url.path)
        if fixture is None:
            return httpx.Response(404, json={"error": "not found"})
        return httpx.Response(
            200, content=fixture.read_bytes(), headers={"content-type": "application/json"}
        )

    return handler


@pytest.mark.parametrize("name", SOURCES)
async def test_collect_fetches_the_real_paths_and_yields_transformable_records(
    name: str,
) -> None:
    src = registry.sources()[name]
    cfg = src.config_model()
    base = httpx.URL(cfg.base_url)
    for served in _rounds(name):
        requests: list[httpx.Request] = []
        handler = _serving(served, requests)
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            records = [r async for r in src.collect(client, cfg, "run-contract")]

        assert sorted(r.url.path for r in requests) == sorted(e.path for e in src.endpoints)
        methods = {e.path: e.method for e in src.endpoints}
        assert all(
            (r.url.scheme, r.url.host) == (base.scheme, base.host)
            and r.method == methods[r.url.path]
            for r in requests
        )
        for r in requests:
            endpoint = next(e for e in src.endpoints if e.path == r.url.path)
            assert sorted(r.url.params.multi_items()) == sorted(endpoint.params)
        expected = sum(
            len(e.items(orjson.loads(served[e.path].read_bytes()), e.path)) for e in src.endpoints
        )
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
