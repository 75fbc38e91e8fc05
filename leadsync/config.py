"""The operator's `config.toml`: typed, validated at start-up, secrets kept out of it.

Every mistake becomes a `ConfigProblem` naming the file, the key (and the line where it can be
found), all of them at once, so `leadsync check` can list them and every command can exit 2
without a traceback. Secrets never sit in the TOML: each is read from an environment variable,
or from the secrets file named under `[secrets]`, and travels as `Secret`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from leadsync.connectors.settings import HubSpotConnection, SalesforceConnection
from leadsync.console.settings import ConsoleSettings
from leadsync.console.settings import secret_variables as console_secret_variables
from leadsync.mapping.sla_rules import time_zone
from leadsync.problems import ConfigError, ConfigProblem, locate_key, read_toml
from leadsync.secrets import Secret

DEFAULT_DATABASE_URL = "sqlite:///leadsync.db"

# Environment variables that hold each secret (also the keys of a secrets file): names, not
# secrets, whatever the linter fears.
HUBSPOT_TOKEN_VAR = "LEADSYNC_HUBSPOT_ACCESS_TOKEN"  # noqa: S105
SALESFORCE_PASSWORD_VAR = "LEADSYNC_SALESFORCE_PASSWORD"  # noqa: S105
SALESFORCE_TOKEN_VAR = "LEADSYNC_SALESFORCE_SECURITY_TOKEN"  # noqa: S105
SALESFORCE_SESSION_VAR = "LEADSYNC_SALESFORCE_SESSION_ID"
SECRETS_FILE_VAR = "LEADSYNC_SECRETS_FILE"
# A chat tool's webhook URL is a credential in itself: both are secrets.
SLA_WEBHOOK_URL_VAR = "LEADSYNC_SLA_WEBHOOK_URL"
SLA_WEBHOOK_SECRET_VAR = "LEADSYNC_SLA_WEBHOOK_SECRET"  # noqa: S105

# Keys that would put a secret in the TOML RevOps and operators share; refused with a hint.
_SECRET_KEYS = {
    "access_token": HUBSPOT_TOKEN_VAR,
    "token": HUBSPOT_TOKEN_VAR,
    "password": SALESFORCE_PASSWORD_VAR,
    "security_token": SALESFORCE_TOKEN_VAR,
    "session_id": SALESFORCE_SESSION_VAR,
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    url: str = DEFAULT_DATABASE_URL


class FilesSettings(_Section):
    """Where RevOps' files live; relative paths are read from the config file's folder."""

    mapping: str = "mapping.toml"
    definition: str = "lead_definition.toml"


class SecretsSettings(_Section):
    file: str | None = None


class HubSpotSettings(_Section):
    enabled: bool = True
    base_url: str = "https://api.hubapi.com"
    timeout_seconds: float = Field(30.0, gt=0)
    requests_per_ten_seconds: int = Field(180, ge=1)
    searches_per_second: int = Field(4, ge=1)
    daily_reserve: int = Field(0, ge=0)
    lookback_minutes: float = Field(5.0, ge=0)


class SalesforceSettings(_Section):
    enabled: bool = True
    auth: Literal["password", "jwt", "session"] = "password"
    instance_url: str | None = None
    domain: str = "login"
    username: str | None = None
    consumer_key: str | None = None
    private_key_file: str | None = None
    api_version: str = "59.0"
    timeout_seconds: float = Field(30.0, gt=0)
    max_concurrent_requests: int = Field(10, ge=1, le=25)
    daily_reserve: int = Field(0, ge=0)
    lookback_minutes: float = Field(5.0, ge=0)
    bulk_query_threshold: int = Field(50_000, ge=1)
    bulk_write_threshold: int = Field(10_000, ge=1)


class ScheduleSettings(_Section):
    """How often `leadsync run` fires each job."""

    sync_every_minutes: float = Field(5.0, gt=0)
    sla_every_minutes: float = Field(5.0, gt=0)
    # The nightly reconciliation sweep, as HH:MM in `time_zone` (default: the host's zone).
    reconcile_at: str = Field("02:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    time_zone: str | None = None
    backfill_poll_seconds: float = Field(30.0, gt=0)

    @field_validator("time_zone")
    @classmethod
    def _zone_exists(cls, name: str | None) -> str | None:
        if name is not None and time_zone(name) is None:
            raise ValueError(f"unknown time zone {name!r}: use an IANA name like Europe/Berlin")
        return name


class ServiceSettings(_Section):
    """`leadsync run`: its endpoint, its leases, how long it takes to stop."""

    # /metrics (Prometheus) and /healthz; port 0 serves none.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9108, ge=0, le=65535)
    # A job's lease lives this long unless renewed (every third of it): a replica that dies
    # mid-job is taken over after at most this.
    lease_seconds: float = Field(60.0, gt=0)
    # How long a job waits for a lease another replica holds before it skips its turn.
    lease_wait_seconds: float = Field(30.0, ge=0)
    # SIGTERM: the batch in hand is finished and committed; after this, the service exits
    # anyway (what was not committed is redone by the next run).
    shutdown_seconds: float = Field(30.0, gt=0)
    # /healthz answers 503 when no sync has succeeded for this long.
    healthy_within_minutes: float = Field(30.0, gt=0)


class BackfillSettings(_Section):
    # Records pulled per chunk; each chunk is settled (merged, written) before the next.
    chunk_records: int = Field(2_000, ge=1)
    # The pause after each chunk, so a scheduled sync gets the lease in between.
    yield_seconds: float = Field(1.0, ge=0)
    # Off a terminal, a progress line this often.
    progress_log_seconds: float = Field(30.0, gt=0)


class SlaSettings(_Section):
    """Where SLA events go besides the log: a webhook, when LEADSYNC_SLA_WEBHOOK_URL is set."""

    webhook_timeout_seconds: float = Field(10.0, gt=0)
    # Deliveries tried per event, across checks, 1, 2, 4 ... minutes apart (at most 6 h).
    webhook_max_attempts: int = Field(12, ge=1)


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class ConfigModel(_Section):
    database: DatabaseSettings = DatabaseSettings()
    files: FilesSettings = FilesSettings()
    secrets: SecretsSettings = SecretsSettings()
    hubspot: HubSpotSettings = HubSpotSettings()
    salesforce: SalesforceSettings = SalesforceSettings()
    schedules: ScheduleSettings = ScheduleSettings()
    sla: SlaSettings = SlaSettings()
    service: ServiceSettings = ServiceSettings()
    backfill: BackfillSettings = BackfillSettings()
    logging: LoggingSettings = LoggingSettings()
    # The web console: off unless the section is there (leadsync.console.settings).
    console: ConsoleSettings | None = None


@dataclass(frozen=True)
class Config:
    """A validated config, with where it came from to resolve relative paths and secrets."""

    model: ConfigModel
    path: Path | None
    secrets: Mapping[str, Secret]

    @property
    def folder(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()

    def resolve(self, name: str) -> Path:
        candidate = Path(name).expanduser()
        return candidate if candidate.is_absolute() else self.folder / candidate

    @property
    def database_url(self) -> str:
        """The database URL, a relative SQLite path read from the config file's folder."""
        url = self.model.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix:
            path = url[len(prefix) :]
            if path != ":memory:":
                return prefix + str(self.resolve(path))
        return url

    @property
    def mapping_path(self) -> Path:
        return self.resolve(self.model.files.mapping)

    @property
    def definition_path(self) -> Path:
        return self.resolve(self.model.files.definition)

    def hubspot_connection(self) -> HubSpotConnection:
        settings = self.model.hubspot
        return HubSpotConnection(
            access_token=self._secret(HUBSPOT_TOKEN_VAR, "hubspot"),
            base_url=settings.base_url,
            timeout_seconds=settings.timeout_seconds,
            requests_per_ten_seconds=settings.requests_per_ten_seconds,
            searches_per_second=settings.searches_per_second,
            daily_reserve=settings.daily_reserve,
            lookback=timedelta(minutes=settings.lookback_minutes),
        )

    def salesforce_connection(self) -> SalesforceConnection:
        settings = self.model.salesforce
        common: dict[str, Any] = {
            "instance_url": settings.instance_url,
            "domain": settings.domain,
            "api_version": settings.api_version,
            "timeout_seconds": settings.timeout_seconds,
            "max_concurrent_requests": settings.max_concurrent_requests,
            "daily_reserve": settings.daily_reserve,
            "lookback": timedelta(minutes=settings.lookback_minutes),
            "bulk_query_threshold": settings.bulk_query_threshold,
            "bulk_write_threshold": settings.bulk_write_threshold,
        }
        if settings.auth == "session":
            return SalesforceConnection(
                session_id=self._secret(SALESFORCE_SESSION_VAR, "salesforce"), **common
            )
        if settings.auth == "jwt":
            return SalesforceConnection(
                username=settings.username,
                consumer_key=settings.consumer_key,
                private_key_file=self.resolve(settings.private_key_file or ""),
                **common,
            )
        return SalesforceConnection(
            username=settings.username,
            password=self._secret(SALESFORCE_PASSWORD_VAR, "salesforce"),
            security_token=self.secrets.get(SALESFORCE_TOKEN_VAR, Secret("")),
            **common,
        )

    def sla_webhook(self) -> tuple[Secret, Secret] | None:
        """The SLA webhook's URL and signing secret; None when no URL is set."""
        url = self.secrets.get(SLA_WEBHOOK_URL_VAR)
        if url is None:
            return None
        return url, self._secret(SLA_WEBHOOK_SECRET_VAR, "sla")

    def _secret(self, variable: str, section: str) -> Secret:
        secret = self.secrets.get(variable)
        if secret is None:
            raise ConfigError(
                [
                    ConfigProblem(
                        str(self.path or "config"),
                        section,
                        f"set the environment variable {variable} (or put it in the secrets "
                        "file named under [secrets])",
                    )
                ]
            )
        return secret


def load_config(path: Path | None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate `path` (None: every default). Raises ConfigError with all problems."""
    environ = os.environ if environ is None else environ
    name = str(path) if path is not None else "config"
    data: dict[str, Any] = {}
    text = ""
    if path is not None:
        text, data = read_toml(path)
    problems = _secret_key_problems(name, data, text)
    try:
        model = ConfigModel.model_validate(data)
    except ValidationError as invalid:
        problems.extend(_validation_problems(name, invalid, text))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    config_folder = path.parent if path is not None else Path.cwd()
    secrets = _collect_secrets(model, environ, config_folder, name)
    return Config(model, path, secrets)


def _secret_key_problems(name: str, data: Mapping[str, Any], text: str) -> list[ConfigProblem]:
    problems = []
    for section in ("hubspot", "salesforce"):
        values = data.get(section)
        if not isinstance(values, Mapping):
            continue
        for key in values:
            if key in _SECRET_KEYS:
                path = f"{section}.{key}"
                problems.append(
                    ConfigProblem(
                        name,
                        path,
                        f"secrets do not belong in this file: set {_SECRET_KEYS[key]} in the "
                        "environment or the secrets file instead",
                        locate_key(text, path),
                    )
                )
    return problems


def _validation_problems(name: str, invalid: ValidationError, text: str) -> list[ConfigProblem]:
    problems = []
    for error in invalid.errors():
        path = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden" and error["loc"][-1] in _SECRET_KEYS:
            continue  # already reported, with the variable to use instead
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "literal_error":
            message = f"{message}, not {error['input']!r}"
        problems.append(ConfigProblem(name, path, message, locate_key(text, path)))
    return problems


def _collect_secrets(
    model: ConfigModel, environ: Mapping[str, str], folder: Path, name: str
) -> dict[str, Secret]:
    values: dict[str, str] = {}
    file_name = model.secrets.file or environ.get(SECRETS_FILE_VAR)
    if file_name:
        secrets_path = Path(file_name).expanduser()
        if not secrets_path.is_absolute():
            secrets_path = folder / secrets_path
        try:
            _, loaded = read_toml(secrets_path)
        except ConfigError as problem:
            raise ConfigError(
                [ConfigProblem(name, "secrets.file", str(p)) for p in problem.problems]
            ) from None
        values.update({str(k): str(v) for k, v in loaded.items() if isinstance(v, str)})
    # The environment wins over the file: an operator can override one secret for one run.
    for variable in (
        HUBSPOT_TOKEN_VAR,
        SALESFORCE_PASSWORD_VAR,
        SALESFORCE_TOKEN_VAR,
        SALESFORCE_SESSION_VAR,
        SLA_WEBHOOK_URL_VAR,
        SLA_WEBHOOK_SECRET_VAR,
        *console_secret_variables(model.console),
    ):
        if environ.get(variable):
            values[variable] = environ[variable]
    return {key: Secret(value) for key, value in values.items()}
