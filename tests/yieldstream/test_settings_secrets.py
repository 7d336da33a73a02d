"""Settings errors name the key and the problem, never a secret's value."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from sinks.lake import Store
from yieldstream.errors import ConfigError
from yieldstream.settings import load

SECRET = "hunter2-s3cr3t"

Configure = Callable[[str], None]


@pytest.fixture
def toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Configure:
    """Write ``yieldstream.toml`` and point YIELDSTREAM_CONFIG at it."""
    for name in list(os.environ):
        if name.startswith("YIELDSTREAM_") and not name.startswith("YIELDSTREAM_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    path = tmp_path / "yieldstream.toml"
    monkeypatch.setenv("YIELDSTREAM_CONFIG", str(path))

    def write(text: str) -> None:
        path.write_text(text)

    write("")
    return write


def _error(**overrides: object) -> str:
    with pytest.raises(ConfigError) as info:
        load(**overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "named"),
    [
        # A misspelt secret key.
        (f'[kafka]\nsasl_passwrd = "{SECRET}"\n', "setting kafka.sasl_passwrd: no such setting"),
        # A wrong type for a secret field (SecretStr).
        (f"[kafka]\nsasl_password = {len(SECRET)}\n", "setting kafka.sasl_password: "),
        (f"[kafka]\nsasl_password = [{len(SECRET)}]\n", "setting kafka.sasl_password: "),
        # An unknown key that looks like a secret, with a value of a wrong type or none.
        (f'api_token = "{SECRET}"\n', "setting api_token: no such setting"),
        (f'[sources.lido]\napi_key = "{SECRET}"\n', "setting sources.lido.api_key: no such"),
        # A value of the wrong type under a secret-looking name.
        (f"[kafka]\nssl_keyfile = {len(SECRET)}\n", "setting kafka.ssl_keyfile: "),
    ],
)
def test_a_toml_error_names_the_key_never_the_secret(
    toml: Configure, text: str, named: str
) -> None:
    toml(text)
    message = _error()
    assert named in message
    assert SECRET not in message
    assert str(len(SECRET)) not in message


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("YIELDSTREAM_KAFKA__SASL_PASSWRD", SECRET, "setting kafka.sasl_passwrd: no such"),
        ("YIELDSTREAM_KAFKA_SASL_PASSWORD", SECRET, "setting kafka_sasl_password: no such"),
        ("YIELDSTREAM_SASL_PASSWORD", SECRET, "setting sasl_password: no such setting"),
        ("YIELDSTREAM_KAFKA", f'{{"sasl_password": {len(SECRET)}}}', "kafka.sasl_password: "),
        ("YIELDSTREAM_SOURCES__LIDO__API_TOKEN", SECRET, "setting sources.lido.api_token: "),
    ],
)
def test_an_environment_error_names_the_variable_never_the_secret(
    toml: Configure, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    message = _error()
    assert named in message
    assert SECRET not in message
    assert str(len(SECRET)) not in message


def test_a_catalog_url_shows_no_password_in_errors(
    toml: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"mysql://ys:{SECRET}@db.example:3306/ys"
    monkeypatch.setenv("YIELDSTREAM_CATALOG", url)
    settings = load()
    with pytest.raises(ConfigError) as info:
        _ = Store(settings.data_dir, settings.catalog).postgres
    assert "unsupported catalog 'mysql://ys:***@db.example:3306/ys'" in str(info.value)
    assert SECRET not in str(info.value)
    # A URL given where another value belongs is shown with its password masked.
    monkeypatch.setenv("YIELDSTREAM_METRICS_PORT", f"postgresql://ys:{SECRET}@db/ys")
    message = _error()
    assert "setting metrics_port: " in message
    assert SECRET not in message
    assert "postgresql://ys:***@db/ys" in message
