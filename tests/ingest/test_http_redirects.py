"""Redirects: followed within the URL's origin (bounded), to another origin only when a
source lists it, never to a non-HTTP scheme. Two loopback servers on two ports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ingest._http import SourceConfig, fetch_json
from tests.conftest import recorded
from yieldstream.app import client_for
from yieldstream.errors import ConfigError, UpstreamRejected
from yieldstream.loopback import Reply, serve
from yieldstream.settings import Settings, load

POOLS = recorded("defillama-yields", "pools-stablecoin_quant.json")


def moved(location: str, status: int = 302) -> Reply:
    return Reply(status, b"", headers=(("Location", location),))


def config(base_url: str, **overrides: Any) -> SourceConfig:
    settings = {"base_url": base_url, "attempts": 3, "wait_initial_s": 0.01, "rate_per_s": 100}
    return SourceConfig.model_validate({**settings, **overrides})


async def get(base: str, path: str = "/pools", **overrides: Any) -> Any:
    cfg = config(base, **overrides)
    async with client_for(cfg, None) as client:  # a client that follows redirects itself
        return await fetch_json(client, f"{base}{path}", cfg)


async def test_redirect_to_another_port_is_refused_by_default() -> None:
    with (
        serve({"/pools": Reply(body=POOLS)}) as (other, other_hits),
        serve({"/pools": moved(f"{other}/pools")}) as (base, hits),
        pytest.raises(UpstreamRejected, match="refused: another origin") as caught,
    ):
        await get(base)
    assert f"add {other!r} to follow_redirects_to" in str(caught.value)
    assert hits == {"/pools": 1}  # fatal: not retried
    assert other_hits == {}


async def test_redirect_to_a_listed_origin_is_followed() -> None:
    with (
        serve({"/v2/pools": Reply(body=POOLS)}) as (other, other_hits),
        serve({"/pools": moved(f"{other}/v2/pools", 308)}) as (base, hits),
    ):
        fetched = await get(base, follow_redirects_to=[other + "/"])
    assert len(fetched.body["data"]) == 5
    assert fetched.url == f"{base}/pools"
    assert (hits, other_hits) == ({"/pools": 1}, {"/v2/pools": 1})


async def test_redirect_within_the_origin_is_followed() -> None:
    routes = {"/old": moved("/older", 301), "/older": moved("/pools"), "/pools": Reply(body=POOLS)}
    with serve(routes) as (base, hits):
        fetched = await get(base, "/old")
    assert len(fetched.body["data"]) == 5
    assert hits == {"/old": 1, "/older": 1, "/pools": 1}


@pytest.mark.parametrize(("limit", "followed"), [(5, 5), (0, 0)])
async def test_redirects_are_bounded(limit: int, followed: int) -> None:
    with (
        serve({"/loop": moved("/loop")}) as (base, hits),
        pytest.raises(UpstreamRejected, match=f"more than {limit} times"),
    ):
        await get(base, "/loop", max_redirects=limit)
    assert hits == {"/loop": followed + 1}  # and not retried


@pytest.mark.parametrize(
    "location",
    [
        "file:///etc/passwd",
        "FILE:/etc/passwd",
        "ftp://127.0.0.1/pools.json",
        "data:application/json,[]",
        "gopher://127.0.0.1:70/",
        "mailto:ops@example.com",
    ],
)
async def test_redirect_to_a_non_http_scheme_is_refused_at_once(location: str) -> None:
    with (
        serve({"/pools": moved(location)}) as (base, hits),
        pytest.raises(UpstreamRejected, match="refused: only http and https are followed"),
    ):
        await get(base, follow_redirects_to=[base])
    assert hits == {"/pools": 1}


async def test_a_change_of_scheme_is_another_origin() -> None:
    with (
        serve({"/pools": moved("https://127.0.0.1:1/pools")}) as (base, hits),
        pytest.raises(UpstreamRejected, match="another origin"),
    ):
        await get(base)
    assert hits == {"/pools": 1}


def test_listed_origins_are_normalised() -> None:
    cfg = config("https://a.example", follow_redirects_to=["HTTPS://B.example/", "http://c:81"])
    assert cfg.follow_redirects_to == ("https://b.example:443", "http://c:81")


@pytest.mark.parametrize(
    "value", ["ftp://b.example", "https://b.example/api", "b.example", "https://", "file:///x"]
)
def test_a_listed_origin_that_is_not_one_is_a_one_line_config_error(
    value: str, make_settings: Callable[..., Settings]
) -> None:
    with pytest.raises(ValidationError, match="expected an origin"):
        config("https://a.example", follow_redirects_to=[value])
    with pytest.raises(ConfigError) as caught:
        make_settings(
            "https://a.example", source_overrides={"lido": {"follow_redirects_to": [value]}}
        )
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("setting sources.lido.follow_redirects_to.0: ")
    assert "expected an origin" in message


@pytest.mark.parametrize(
    "text", ['["https://b.example", "http://c:81"]', "https://b.example, http://c:81"]
)
def test_listed_origins_from_an_environment_variable(
    text: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("YIELDSTREAM_CONFIG", raising=False)
    monkeypatch.setenv("YIELDSTREAM_SOURCES__LIDO__FOLLOW_REDIRECTS_TO", text)
    cfg = load().source_config("lido")
    assert cfg.follow_redirects_to == ("https://b.example:443", "http://c:81")
