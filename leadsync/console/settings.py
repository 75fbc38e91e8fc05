"""`[console]` in config.toml: the web console, its users and their roles.

    [console]
    session_hours = 12                    # how long a sign-in lasts
    secure_cookies = true                 # served over HTTPS (a proxy in front): say so
    hubspot_record_url = "https://app.hubspot.com/contacts/1234567/record/0-1/{id}"
    salesforce_record_url = "https://yourorg.my.salesforce.com/{id}"

    [console.users]
    ada = "editor"                        # may also change: backfills, exceptions, edits
    grace = "viewer"                      # may look

Credentials never sit in this file: each user signs in with a password whose hash is in
LEADSYNC_CONSOLE_PASSWORD_HASH_<NAME> (`leadsync hash-password` makes one), or with a token in
LEADSYNC_CONSOLE_TOKEN_<NAME>, from the environment or the secrets file. `console_problems`
says what the file alone cannot: a user with neither, or no port to serve the console on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from leadsync.config import Config
    from leadsync.problems import ConfigProblem

__all__ = [
    "MIN_TOKEN_LENGTH",
    "ConsoleSettings",
    "Role",
    "console_problems",
    "password_hash_variable",
    "secret_variables",
    "token_variable",
]

PASSWORD_HASH_PREFIX = "LEADSYNC_CONSOLE_PASSWORD_HASH_"  # noqa: S105 - a variable's name
TOKEN_PREFIX = "LEADSYNC_CONSOLE_TOKEN_"  # noqa: S105 - a variable's name
# A token is a password nobody types: long and random (`openssl rand -hex 32`).
MIN_TOKEN_LENGTH = 32
# Keys that would put a credential in the file: refused, naming where it goes instead.
_CREDENTIAL_KEYS = ("password", "password_hash", "token", "secret", "session_secret")


class Role(StrEnum):
    VIEWER = "viewer"  # reads every page
    EDITOR = "editor"  # and changes: queues, stops and resumes backfills, resolves the
    # review queue and the quarantine, applies edits


def _matching(pattern: str, message: str) -> AfterValidator:
    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise ValueError(f"{message}, not {value!r}")
        return value

    return AfterValidator(check)


# A user name is also part of an environment variable's name.
UserName = Annotated[
    str,
    _matching(
        r"[a-z][a-z0-9_]{0,31}",
        "a user name is a lower-case letter, then up to 31 lower-case letters, digits or _ "
        "(it is part of the name of the variable that holds its credential)",
    ),
]
RecordUrl = Annotated[
    str, _matching(r"https?://\S*\{id\}\S*", "an http(s) URL with {id} where the record id goes")
]


class ConsoleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    # Roles as TOML spells them (strings); `role_of` gives the Role.
    users: dict[UserName, Literal["viewer", "editor"]] = Field(min_length=1)
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    # Cookies only over HTTPS: set it when a TLS proxy is in front (as it should be off
    # loopback); without it a browser sends the session in clear.
    secure_cookies: bool = False
    # Where a record opens in each CRM: `{id}` is the record id.
    hubspot_record_url: RecordUrl | None = None
    salesforce_record_url: RecordUrl | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_credentials_here(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key in data:
                if key in _CREDENTIAL_KEYS:
                    raise ValueError(
                        f"{key}: credentials do not belong in this file: set "
                        f"{PASSWORD_HASH_PREFIX}<USER> or {TOKEN_PREFIX}<USER> in the "
                        "environment or the secrets file instead"
                    )
        return data

    def role_of(self, user: str) -> Role | None:
        role = self.users.get(user)
        return None if role is None else Role(role)

    def record_url(self, crm: str, record_id: str) -> str | None:
        """Where `record_id` opens in `crm`, when the config says."""
        template = {"hubspot": self.hubspot_record_url, "salesforce": self.salesforce_record_url}
        found = template.get(crm)
        return None if found is None else found.replace("{id}", quote(record_id, safe=""))


def password_hash_variable(user: str) -> str:
    return PASSWORD_HASH_PREFIX + user.upper()


def token_variable(user: str) -> str:
    return TOKEN_PREFIX + user.upper()


def secret_variables(settings: ConsoleSettings | None) -> list[str]:
    """The environment variables that may hold the console users' credentials."""
    if settings is None:
        return []
    return [
        variable
        for user in sorted(settings.users)
        for variable in (password_hash_variable(user), token_variable(user))
    ]


def console_problems(config: Config) -> list[ConfigProblem]:
    """What keeps the console from serving, beyond the file's own validation: no port to
    serve it on, a user with no credential, a credential that cannot be one. Empty without
    a [console]."""
    from leadsync.console.passwords import is_password_hash
    from leadsync.problems import ConfigProblem, TomlLines

    settings = config.model.console
    if settings is None:
        return []
    name = str(config.path or "config")
    lines = TomlLines(_text(config.path))
    problems = []
    if not config.model.service.metrics_port:
        problems.append(
            ConfigProblem(
                name,
                "service.metrics_port",
                "the console is served on this port, with /metrics and /healthz: 0 serves "
                "nothing (remove [console], or give a port)",
                lines.line_of("service.metrics_port"),
            )
        )
    for user in sorted(settings.users):
        key = f"console.users.{user}"
        hashed, token = password_hash_variable(user), token_variable(user)
        stored, given = config.secrets.get(hashed), config.secrets.get(token)
        message = None
        if stored is None and given is None:
            message = (
                f"no credential: set {hashed} (a hash from `leadsync hash-password`) or "
                f"{token}, in the environment or the secrets file"
            )
        elif stored is not None and not is_password_hash(stored.reveal()):
            message = f"{hashed} is not a hash made by `leadsync hash-password`"
        elif given is not None and len(given.reveal()) < MIN_TOKEN_LENGTH:
            message = (
                f"{token} is too short to be a token: at least {MIN_TOKEN_LENGTH} random "
                "characters (`openssl rand -hex 32`)"
            )
        if message is not None:
            # `users = { ada = "editor" }` has no line of its own for the user: the table's.
            problems.append(ConfigProblem(name, key, message, lines.line_of(key)))
    return problems


def _text(path: Path | None) -> str:
    from leadsync.problems import FILE_ENCODING

    if path is None:
        return ""
    try:
        return path.read_text(encoding=FILE_ENCODING)
    except OSError:
        return ""
