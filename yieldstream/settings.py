"""Settings: ``yieldstream.toml`` plus ``YIELDSTREAM_*`` environment variables.

Precedence (highest first): values passed in code or by CLI flags, environment
variables, the TOML file. Nested keys use ``__`` in the environment, e.g.
``YIELDSTREAM_SOURCES__LIDO__INTERVAL_S=600`` is ``[sources.lido] interval_s = 600``.
An unknown key (a misspelt ``YIELDSTREAM_*`` variable too) or a bad value is a
:class:`ConfigError` of one line naming it, and the closest known key if any.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from yieldstream.errors import ConfigError

if TYPE_CHECKING:  # the sources' settings load with the sources (yieldstream.registry)
    from ingest._http import SourceConfig
    from sinks.lake import Store

DEFAULT_CONFIG = Path("yieldstream.toml")


class KafkaTopics(BaseModel):
    """Topic names (see the README for what each carries)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    raw: str = Field("yields.raw", min_length=1)
    observations: str = Field("yields.observations", min_length=1)
    dlq: str = Field("yields.dlq", min_length=1)
    reference: str = Field("yields.reference", min_length=1)
    alerts: str = Field("yields.alerts", min_length=1)


class KafkaGroups(BaseModel):
    """Consumer group ids: every process of a role joins its role's group."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transform: str = Field("yieldstream-transform", min_length=1)
    sink: str = Field("yieldstream-sink", min_length=1)


class KafkaSettings(BaseModel):
    """Kafka mode: where the broker is, how to talk to it, and the topics."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str | None = Field(
        None, description="HOST:PORT[,HOST:PORT]; also read from KAFKA_BOOTSTRAP_SERVERS"
    )
    client_id: str = "yieldstream"
    topics: KafkaTopics = KafkaTopics()
    groups: KafkaGroups = KafkaGroups()
    partitions: int = Field(6, ge=1, le=10_000, description="partitions of topics created")
    replication_factor: int = Field(1, ge=1, le=32, description="replicas of topics created")
    idempotence: bool = Field(True, description="idempotent producer (needs broker support)")
    compression: Literal["none", "gzip", "lz4", "zstd", "snappy"] = "zstd"
    linger_ms: int = Field(20, ge=0, le=10_000)
    max_batch_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    fetch_partition_bytes: int = Field(
        8 * 1024 * 1024,
        ge=64 * 1024,
        le=256 * 1024 * 1024,
        description="most bytes fetched per partition per request (throughput vs memory)",
    )
    send_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="deadline of one send, flush or stop"
    )
    instance_id: str | None = Field(
        None,
        description="static group membership: a restarted process with the same id gets "
        "its partitions back without waiting for its old session to expire",
    )
    session_timeout_ms: int = Field(
        10_000, ge=1000, le=3_600_000, description="a consumer silent this long leaves its group"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None


class AlertSettings(BaseModel):
    """When the sink opens an alert (sinks/alerts.py; each kind in the README)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="evaluate alerts after stored batches")
    evaluate_every_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="one pass at most this often, over the pools stored since (0: every batch)",
    )
    spike_multiple: float = Field(
        5.0, gt=1, description="apy_spike: APY above this many times its recent level"
    )
    spike_window_h: float = Field(
        5.0, gt=0, le=24 * 30, description="apy_spike: the recent level is of these hours"
    )
    stuck_polls: int = Field(
        12, ge=2, le=1000, description="apy_stuck: this many polls in a row with one APY"
    )
    stuck_window_h: float = Field(
        48.0, gt=0, le=24 * 90, description="apy_stuck: polls looked for within these hours"
    )
    drawdown_pct: float = Field(
        50.0, gt=0, lt=100, description="tvl_drawdown: TVL down this much from its peak"
    )
    drawdown_window_h: float = Field(
        24.0, gt=0, le=24 * 30, description="tvl_drawdown: the peak is of these hours"
    )
    drawdown_min_tvl_usd: float = Field(
        10_000.0, ge=0, description="tvl_drawdown: only pools whose peak was at least this"
    )
    stale_after_h: float = Field(
        6.0, gt=0, le=24 * 90, description="stale_source: no successful fetch for this long"
    )
    stale_check_s: float = Field(
        300.0, gt=0, le=86_400, description="stale_source: checked this often without batches"
    )
    disagreement_pp: float = Field(
        1.0, ge=0, le=1e6, description="disagreement: APY gap beyond these percentage points"
    )
    disagreement_reference: str = Field(
        "defillama-yields", min_length=1, description="disagreement: the aggregator compared to"
    )


class ApiSettings(BaseModel):
    """``yieldstream serve``: the read API over the store (yieldstream/api/)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="address the API binds (loopback by default)")
    port: int = Field(8000, ge=1, le=65535)
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="keys a client sends in X-API-Key; empty: no key needed",
    )
    rate_limit: str = Field(
        "120/minute", description="requests per client (key, else address), e.g. 10/second"
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="origins browsers may call from; empty: CORS off"
    )
    max_limit: int = Field(500, ge=1, le=10_000, description="most rows one page may hold")
    max_points: int = Field(
        10_000, ge=1, le=1_000_000, description="most points one history answer may hold"
    )
    query_timeout_s: float = Field(
        10.0, gt=0, le=600, description="a store query running longer is interrupted (503)"
    )
    readers: int = Field(4, ge=1, le=64, description="read-only store connections in the pool")

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError(
                "not a rate limit; write N/second, N/minute, N/hour or N/day"
            ) from None
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="YIELDSTREAM_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: Path = Field(Path("yieldstream-data"), description="where the store lives")
    catalog: str | None = Field(
        None, description="DuckLake catalog; default: SQLite file in data_dir"
    )
    batch_size: int = Field(20_000, ge=1, le=1_000_000, description="records per batch")
    transform_processes: int = Field(
        1, ge=0, le=64, description="worker processes for transforms; 0: a thread"
    )
    queue_batches: int = Field(4, ge=1, description="batches buffered between stages")
    compact_every: int = Field(
        256,
        ge=1,
        description="store commits after which a compaction runs even when no file "
        "count calls for one (it also expires old snapshots)",
    )
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="serve /metrics, /healthz and /readyz on this port (every daemon role)",
    )
    metrics_host: str = Field("127.0.0.1", description="address the metrics port binds")
    kafka: KafkaSettings = KafkaSettings()
    alerts: AlertSettings = AlertSettings()
    api: ApiSettings = ApiSettings()
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("sources", mode="before")
    @classmethod
    def _source_names(cls, value: Any) -> Any:
        """Env variables cannot hold ``-``: ``DEFILLAMA_YIELDS`` is ``defillama-yields``."""
        if isinstance(value, dict):
            return {str(k).lower().replace("_", "-"): v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _known_sources(self) -> Settings:
        for name in self.sources:
            self.source_config(name)
        return self

    def source_config(self, name: str) -> SourceConfig:
        """The validated settings of one source (its defaults, overridden here)."""
        from yieldstream.registry import source

        model = source(name).config_model
        try:
            return model.model_validate(self.sources.get(name, {}))
        except ValidationError as exc:
            raise ConfigError(describe(exc, prefix=f"sources.{name}", model=model)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("YIELDSTREAM_CONFIG", DEFAULT_CONFIG))
        return (
            init_settings,
            env_settings,
            _UnknownEnv(settings_cls),
            _KafkaEnv(settings_cls),
            TomlConfigSettingsSource(settings_cls, toml_file),
        )


class _KafkaEnv(PydanticBaseSettingsSource):
    """``KAFKA_BOOTSTRAP_SERVERS``, the variable Kafka tools share, below ``YIELDSTREAM_*``."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        return {"kafka": {"bootstrap_servers": servers}} if servers else {}


# Environment variables with the prefix that are not settings.
NOT_SETTINGS = ("YIELDSTREAM_CONFIG", "YIELDSTREAM_TEST_")


class _UnknownEnv(PydanticBaseSettingsSource):
    """``YIELDSTREAM_*`` variables naming no setting, passed on to fail as unknown keys.

    The environment source reads only the variables of known settings: a misspelt
    ``YIELDSTREAM_DATA_DIRR`` would be ignored, where the same misspelling nested
    (``YIELDSTREAM_KAFKA__PARTITONS``) is an unknown key of its model.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        prefix = "YIELDSTREAM_"
        return {
            name[len(prefix) :].lower(): value
            for name, value in os.environ.items()
            if name.upper().startswith(prefix)
            and not name.upper().startswith(NOT_SETTINGS)
            and name[len(prefix) :].lower().partition("__")[0] not in Settings.model_fields
        }


def describe(exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> str:
    """The first error of a ValidationError as one line: where, what, and how to fix.

    An unknown key names the closest known one of ``model`` (the model validated),
    and never shows its value: a misspelt password is still a password.
    """
    err = exc.errors()[0]
    path = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
    env = "YIELDSTREAM_" + path.upper().replace(".", "__").replace("-", "_")
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    if err["type"] == "extra_forbidden":
        what = "no such setting"
        if model is not None and (close := _closest(model, err["loc"])):
            what += f" (did you mean {'.'.join(filter(None, (prefix, close)))}?)"
        return f"setting {path}: {what}{more}; fix it in yieldstream.toml or {env}"
    # A scalar only: a whole table may hold a password; never a secret's value.
    shown = err["type"] != "missing" and not isinstance(err["input"], dict | list)
    shown = shown and not _secret(model, err["loc"])
    got = f" (got {_masked(repr(err['input']))})" if shown else ""
    return f"setting {path}: {err['msg']}{got}{more}; fix it in yieldstream.toml or {env}"


# Keys whose values are not shown in errors, whatever their type.
_SECRET_NAME = re.compile(r"pass(word|wd)?|secret|token|key|credential", re.IGNORECASE)


def _secret(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> bool:
    """Whether the value at ``loc`` is a secret: a SecretStr field, or a secret's name."""
    if any(_SECRET_NAME.search(str(part)) for part in loc):
        return True
    for part in loc:
        field = model.model_fields.get(str(part)) if model is not None else None
        if field is None:
            return False
        if SecretStr in (field.annotation, *get_args(field.annotation)):
            return True
        inner = field.annotation
        model = inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None
    return False


def _masked(text: str) -> str:
    """``text`` with any password in a URL or ``password=`` setting replaced by ``***``."""
    from sinks.lake import mask  # the store's masking: the same rules everywhere

    return mask(text)


def _closest(model: type[BaseModel], loc: tuple[int | str, ...]) -> str | None:
    """The known key closest to the unknown one at ``loc``, as a dotted path.

    Looked for beside it, then one level down (``sasl_password`` is ``kafka``'s);
    an environment name holds its nesting (``kafkaa__partitions``).
    """
    parents = [str(p) for p in loc[:-1]]
    for part in parents:
        field = model.model_fields.get(part)
        inner = field.annotation if field is not None else None
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return None  # below a plain dict (sources): its keys are checked elsewhere
        model = inner
    head, _, rest = str(loc[-1]).partition("__")
    below = {
        f"{name}.{sub}": sub
        for name, field in model.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        for sub in field.annotation.model_fields
    }
    if close := difflib.get_close_matches(head, list(model.model_fields), n=1):
        found = close[0]
    elif close := difflib.get_close_matches(head, list(below.values()), n=1):
        found = next(key for key, sub in below.items() if sub == close[0])
    else:
        return None
    return ".".join([*parents, found, *filter(None, rest.split("__"))])


def load(**overrides: Any) -> Settings:
    """Settings from the file and environment, with ``overrides`` on top."""
    toml_file = Path(os.environ.get("YIELDSTREAM_CONFIG", DEFAULT_CONFIG))
    if "YIELDSTREAM_CONFIG" in os.environ and not toml_file.is_file():
        raise ConfigError(f"YIELDSTREAM_CONFIG names {toml_file}, which is not a file")
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(describe(exc, model=Settings)) from None
    except ValueError as exc:  # a TOML syntax error
        raise ConfigError(f"cannot read {toml_file}: {exc}") from None


def store_of(settings: Settings) -> Store:
    """The store the settings name: its data directory and catalog."""
    from sinks.lake import Store

    return Store(settings.data_dir, settings.catalog)
