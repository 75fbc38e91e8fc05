"""The operator's `config.toml`: typed, validated at start-up, secrets kept out of it.

Every mistake becomes a `ConfigProblem` naming the file, the key (and the line where it can be
found), all of them at once, so `leadsync check` can list them and every command can exit 2
without a traceback. Secrets never sit in the TOML: each is read from an environment variable,
or from the secrets file named under `[secrets]`, and travels as `Secret`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

import sqlalchemy as sa
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from leadsync.connectors.settings import HubSpotConnection, SalesforceConnection
from leadsync.console.settings import ConsoleSettings
from leadsync.console.settings import secret_variables as console_secret_variables
from leadsync.mapping import validation
from leadsync.mapping.sla_rules import time_zone
from leadsync.problems import (
    FILE_ENCODING,
    ConfigError,
    ConfigProblem,
    TomlLines,
    read_toml,
    validation_problems,
)
from leadsync.secrets import Secret
from leadsync.urls import crm_url_problem, shown

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
    # Strict: TOML is typed, so `true` or "30" where a number belongs is a mistake to report,
    # not coerce; and no number is infinite or NaN.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# Every number has a sane range: one outside it is a typo or a unit mistake, and would crash
# later (a timedelta of 1e30 minutes, a lease that never expires) instead of at `check`.
MINUTE = 60.0
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK_MINUTES = 7 * 24 * 60


def _checked(problem: Callable[[str], str | None]) -> AfterValidator:
    def check(value: str) -> str:
        found = problem(value)
        if found is not None:
            raise ValueError(found)
        return value

    return AfterValidator(check)


CrmUrl = Annotated[str, _checked(crm_url_problem)]


def database_url_problem(url: str) -> str | None:
    """Why `url` is not a database leadsync can keep its state in, or None."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        # Shown only if it cannot hold a password (user:password@, ?password=).
        example = "sqlite:///leadsync.db, or postgresql+psycopg://..."
        return f"not a database URL: {shown(url)!r} ({example})"
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            return (
                "an in-memory SQLite database forgets everything when leadsync exits (every run "
                "a first run): name a file, sqlite:///leadsync.db"
            )
        if parsed.query:
            # URI options can make it in-memory again (mode=memory, file::memory:), and
            # without uri=true the driver drops them with a warning.
            return "a SQLite URL takes a file path alone, without ?options: sqlite:///leadsync.db"
        return None
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            return "use the psycopg driver: postgresql+psycopg://user@host/database"
        if importlib.util.find_spec("psycopg") is None:
            return "PostgreSQL needs the postgres extra: pip install 'leadsync[postgres]'"
        return None
    return f"leadsync keeps its state in SQLite or PostgreSQL, not {backend}"


def _host_problem(host: str) -> str | None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if re.fullmatch(r"[0-9.]+", host):
            # A name's last label is never all digits: this was meant as an address.
            return f"not an IP address: {host!r} (four numbers 0-255, like 127.0.0.1)"
        if not _HOST_NAME.fullmatch(host):
            return f"not a host name or IP address: {host!r}"
    return None


_HOST_NAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


class DatabaseSettings(_Section):
    url: Annotated[str, _checked(database_url_problem)] = DEFAULT_DATABASE_URL


class FilesSettings(_Section):
    """Where RevOps' files live; relative paths are read from the config file's folder."""

    mapping: str = Field("mapping.toml", min_length=1)
    definition: str = Field("lead_definition.toml", min_length=1)


class SecretsSettings(_Section):
    file: str | None = Field(None, min_length=1)


_DOMAIN = r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*$"


class HubSpotSettings(_Section):
    enabled: bool = True
    base_url: CrmUrl = "https://api.hubapi.com"
    timeout_seconds: float = Field(30.0, gt=0, le=10 * MINUTE)
    requests_per_ten_seconds: int = Field(180, ge=1, le=1_000_000)
    searches_per_second: int = Field(4, ge=1, le=1_000_000)
    daily_reserve: int = Field(0, ge=0, le=1_000_000_000)
    lookback_minutes: float = Field(5.0, ge=0, le=24 * 60)


class SalesforceSettings(_Section):
    enabled: bool = True
    auth: Literal["password", "jwt", "session"] = "password"
    instance_url: CrmUrl | None = None
    # login.salesforce.com, test.salesforce.com, or a My Domain: yourorg.my
    domain: str = Field("login", pattern=_DOMAIN)
    username: str | None = Field(None, min_length=1)
    consumer_key: str | None = Field(None, min_length=1)
    private_key_file: str | None = Field(None, min_length=1)
    api_version: str = "59.0"
    timeout_seconds: float = Field(30.0, gt=0, le=10 * MINUTE)
    max_concurrent_requests: int = Field(10, ge=1, le=25)
    daily_reserve: int = Field(0, ge=0, le=1_000_000_000)
    lookback_minutes: float = Field(5.0, ge=0, le=24 * 60)
    bulk_query_threshold: int = Field(50_000, ge=1, le=1_000_000_000)
    bulk_write_threshold: int = Field(10_000, ge=1, le=1_000_000_000)

    @field_validator("api_version")
    @classmethod
    def _version_number(cls, version: str) -> str:
        if not re.fullmatch(r"[1-9][0-9]\.0", version):
            hint = f" (not {version!r})" if version else ""
            raise ValueError(f'an API version is a number like "59.0"{hint}')
        return version


class ScheduleSettings(_Section):
    """How often `leadsync run` fires each job."""

    sync_every_minutes: float = Field(5.0, gt=0, le=WEEK_MINUTES)
    sla_every_minutes: float = Field(5.0, gt=0, le=WEEK_MINUTES)
    # The nightly reconciliation sweep, as HH:MM in `time_zone` (default: the host's zone).
    reconcile_at: str = Field("02:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    time_zone: str | None = None
    backfill_poll_seconds: float = Field(30.0, gt=0, le=DAY)

    @field_validator("time_zone")
    @classmethod
    def _zone_exists(cls, name: str | None) -> str | None:
        if name is not None and time_zone(name) is None:
            raise ValueError(f"unknown time zone {name!r}: use an IANA name like Europe/Berlin")
        return name


class ServiceSettings(_Section):
    """`leadsync run`: its endpoint, its leases, how long it takes to stop."""

    # /metrics (Prometheus) and /healthz; port 0 serves none.
    metrics_host: Annotated[str, _checked(_host_problem)] = "127.0.0.1"
    metrics_port: int = Field(9108, ge=0, le=65535)
    # A job's lease lives this long unless renewed (every third of it): a replica that dies
    # mid-job is taken over after at most this.
    lease_seconds: float = Field(60.0, gt=0, le=HOUR)
    # How long a job waits for a lease another replica holds before it skips its turn.
    lease_wait_seconds: float = Field(30.0, ge=0, le=HOUR)
    # A job that reaches no batch boundary for this long is stuck: its lease is no longer
    # renewed, so another replica takes the job over (and this one stops at its next boundary).
    stalled_after_seconds: float = Field(15 * MINUTE, gt=0, le=DAY)
    # SIGTERM: the batch in hand is finished and committed; after this, the service exits
    # anyway (what was not committed is redone by the next run).
    shutdown_seconds: float = Field(30.0, gt=0, le=HOUR)
    # /healthz answers 503 when no sync has succeeded for this long.
    healthy_within_minutes: float = Field(30.0, gt=0, le=WEEK_MINUTES)

    @model_validator(mode="after")
    def _stall_outlives_the_lease(self) -> ServiceSettings:
        if self.stalled_after_seconds < self.lease_seconds:
            raise validation.problems(
                ("stalled_after_seconds", "must be at least lease_seconds: a renewal period")
            )
        return self


class BackfillSettings(_Section):
    # Records pulled per chunk; each chunk is settled (merged, written) before the next.
    chunk_records: int = Field(2_000, ge=1, le=1_000_000)
    # The pause after each chunk, so a scheduled sync gets the lease in between.
    yield_seconds: float = Field(1.0, ge=0, le=HOUR)
    # Off a terminal, a progress line this often.
    progress_log_seconds: float = Field(30.0, gt=0, le=DAY)


class SlaSettings(_Section):
    """Where SLA events go besides the log: a webhook, when LEADSYNC_SLA_WEBHOOK_URL is set."""

    webhook_timeout_seconds: float = Field(10.0, gt=0, le=10 * MINUTE)
    # Deliveries tried per event, across checks, 1, 2, 4 ... minutes apart (at most 6 h).
    webhook_max_attempts: int = Field(12, ge=1, le=1_000)


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class LoggingSettings(_Section):
    level: LogLevel = "INFO"
    format: Literal["text", "json"] = "text"

    @field_validator("level", mode="before")
    @classmethod
    def _any_case(cls, level: object) -> object:
        # `level = "info"` means INFO, as Python's logging and most tools read it; a level that
        # is none in any case is refused as written.
        if isinstance(level, str) and level.upper() in get_args(LogLevel):
            return level.upper()
        return level


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
        # What each way of logging in needs from this file (the secrets come from elsewhere).
        needs = {
            "password": ("username",),
            "jwt": ("username", "consumer_key", "private_key_file"),
            "session": ("instance_url",),
        }[settings.auth]
        for key in needs:
            if getattr(settings, key) is None:
                raise self._problem(f"salesforce.{key}", f"required with auth = {settings.auth!r}")
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
                private_key_file=self._key_file(settings.private_key_file or ""),
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
        parts = urlsplit(url.reveal())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # The URL is a secret itself: say what is wrong with it, never what it is.
            raise self._problem("sla", f"{SLA_WEBHOOK_URL_VAR} must be an http(s):// URL")
        return url, self._secret(SLA_WEBHOOK_SECRET_VAR, "sla")

    def secret_problems(self) -> list[ConfigProblem]:
        """What the enabled CRMs and the SLA webhook need from the environment or the secrets
        file (and a JWT login from its key file) and do not get: every problem at once, for
        `check`. `check --online` then proves the CRMs accept them."""
        builders: list[Callable[[], object]] = [self.sla_webhook]
        if self.model.hubspot.enabled:
            builders.append(self.hubspot_connection)
        if self.model.salesforce.enabled:
            builders.append(self.salesforce_connection)
        found = []
        for build in builders:
            try:
                build()
            except ConfigError as missing:
                found.extend(missing.problems)
        return found

    def _secret(self, variable: str, section: str) -> Secret:
        secret = self.secrets.get(variable)
        if secret is None:
            raise self._problem(
                section,
                f"set the environment variable {variable} (or put it in the secrets file "
                "named under [secrets])",
            )
        return secret

    def _key_file(self, name: str) -> Path:
        path = self.resolve(name)
        try:
            head = path.read_bytes()[:100]
        except OSError as problem:
            reason = problem.strerror or type(problem).__name__
            raise self._problem("salesforce.private_key_file", f"{path}: {reason}") from None
        if b"PRIVATE KEY-----" not in head:
            raise self._problem(
                "salesforce.private_key_file", f"{path} is not a PEM private key"
            ) from None
        return path

    def _problem(self, key: str, message: str) -> ConfigError:
        text = ""
        if self.path is not None:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                text = self.path.read_text(encoding=FILE_ENCODING)
        line = TomlLines(text).line_of(key) if text else None
        return ConfigError([ConfigProblem(str(self.path or "config"), key, message, line)])


def load_config(path: Path | None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate `path` (None: every default). Raises ConfigError with all problems."""
    environ = os.environ if environ is None else environ
    name = str(path) if path is not None else "config"
    data: dict[str, Any] = {}
    text = ""
    if path is not None:
        text, data = read_toml(path)
    lines = TomlLines(text)
    problems = _secret_key_problems(name, data, lines)
    try:
        model = ConfigModel.model_validate(data)
    except ValidationError as invalid:
        reported = [problem.key for problem in problems]  # with the variable to use instead
        problems.extend(
            validation_problems(invalid, file=name, lines=lines, model=ConfigModel, skip=reported)
        )
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    config_folder = path.parent if path is not None else Path.cwd()
    secrets = _collect_secrets(model, environ, config_folder, name, lines)
    return Config(model, path, secrets)


def _secret_key_problems(
    name: str, data: Mapping[str, Any], lines: TomlLines
) -> list[ConfigProblem]:
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
                        lines.line_of(path),
                    )
                )
    return problems


def _collect_secrets(
    model: ConfigModel, environ: Mapping[str, str], folder: Path, name: str, lines: TomlLines
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
            # The key's line when the config names the file (not $LEADSYNC_SECRETS_FILE).
            line = lines.line_of("secrets.file") if model.secrets.file else None
            raise ConfigError(
                [ConfigProblem(name, "secrets.file", str(p), line) for p in problem.problems]
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
