"""The sources yieldstream knows: discovered from ``ingest/``, paired with ``transforms/``.

A module ``ingest/<name>.py`` that defines ``collect`` is a source; its transform is
``transforms/<name>.py``. Adding a source needs nothing here: a contract test checks
that every discovered source is complete (config, transform, recorded fixtures).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import httpx

import ingest
from ingest._history import History
from ingest._http import SourceConfig
from ingest._records import Endpoint
from transforms import Context, Reference, Transform
from yieldstream.contracts import RawRecord, Strategy, Venue
from yieldstream.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

Collect = Callable[[httpx.AsyncClient, Any, str], AsyncIterator[RawRecord]]
Columns = Callable[[Sequence[RawRecord], Context], tuple["pa.Table", list[int]]]


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    config_model: type[SourceConfig]
    collect: Collect
    transform: Transform
    module: str
    endpoints: tuple[Endpoint, ...]
    # Sources whose first cycle must finish before this one's first cycle, because
    # this source's transform reads their reference data (``AFTER`` in its module).
    after: tuple[str, ...] = ()
    # Its history endpoint, for ``yieldstream backfill`` (``HISTORY``); None: it has none.
    history: History | None = None
    # The reference data it provides other sources' transforms (``reference`` in its
    # transform module; see transforms.Context); None: it provides none.
    reference: Reference | None = None
    # What its products are: (strategy, venue) pairs (``OFFERS`` in its ingest module).
    offers: tuple[tuple[Strategy, Venue], ...] = ()
    # A batch's records as whole columns (``columns`` in its transform module, else
    # ``history_columns``):
    # the observations of the records it takes, and their indices; ``transform`` does
    # the rest one by one (yieldstream.transformer.transform_table). None: it has none.
    columns: Columns | None = None


@cache
def sources() -> Mapping[str, Source]:
    """Every registered source by name, in a stable order."""
    found: dict[str, Source] = {}
    for info in sorted(pkgutil.iter_modules(ingest.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        collector = importlib.import_module(f"ingest.{info.name}")
        if not hasattr(collector, "collect"):
            continue
        transformer = importlib.import_module(f"transforms.{info.name}")
        name: str = collector.SOURCE
        found[name] = Source(
            name=name,
            config_model=collector.Config,
            collect=collector.collect,
            transform=transformer.transform,
            module=info.name,
            endpoints=tuple(collector.ENDPOINTS),
            after=tuple(getattr(collector, "AFTER", ())),
            history=getattr(collector, "HISTORY", None),
            reference=getattr(transformer, "reference", None),
            offers=tuple(collector.OFFERS),
            columns=getattr(transformer, "columns", None)
            or getattr(transformer, "history_columns", None),
        )
    return MappingProxyType(found)


def providers(known: Mapping[str, Source] | None = None) -> dict[str, Reference]:
    """The sources that provide reference data, by name, with what reads it."""
    known = sources() if known is None else known
    return {name: src.reference for name, src in known.items() if src.reference is not None}


def source(name: str) -> Source:
    """The source called ``name``, or a ConfigError listing the known ones."""
    try:
        return sources()[name]
    except KeyError:
        known = ", ".join(sources())
        raise ConfigError(f"unknown source {name!r}; known sources: {known}") from None
