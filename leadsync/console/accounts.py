"""Who may sign in to the console, with what, and as which role.

Users and roles come from `[console.users]`; each one's credential from the secrets (a
password hash, a token, or both: either signs in). A name nobody has costs the same scrypt
work as a real one, so the time a refusal takes does not tell which names exist.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from leadsync.config import Config
from leadsync.console.passwords import hash_password, verify_password
from leadsync.console.settings import (
    ConsoleSettings,
    Role,
    console_problems,
    password_hash_variable,
    token_variable,
)
from leadsync.problems import ConfigError, ConfigProblem
from leadsync.secrets import Secret

__all__ = ["Accounts", "User"]


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role

    @property
    def may_change(self) -> bool:
        """Editors change things; viewers look."""
        return self.role is Role.EDITOR


@dataclass(frozen=True, slots=True)
class _Credentials:
    password_hash: Secret | None
    token: Secret | None


class Accounts:
    def __init__(
        self, settings: ConsoleSettings, credentials: Mapping[str, tuple[Secret | None, ...]]
    ) -> None:
        """`credentials`: user -> (password hash, token), either None."""
        self._settings = settings
        self._credentials = {
            user: _Credentials(*pair)
            for user, pair in credentials.items()
            if user in settings.users
        }

    @cached_property
    def _decoy(self) -> str:
        """What a sign-in under an unknown name is checked against (made at the first one)."""
        return hash_password("no such user")

    @classmethod
    def from_config(cls, config: Config) -> Accounts:
        """The accounts `[console]` names; ConfigError when one cannot sign in (or there is
        no [console])."""
        settings = config.model.console
        problems = console_problems(config)
        if settings is None or problems:
            raise ConfigError(problems or [_no_console(config)])
        return cls(
            settings,
            {
                user: (
                    config.secrets.get(password_hash_variable(user)),
                    config.secrets.get(token_variable(user)),
                )
                for user in settings.users
            },
        )

    def user(self, name: str) -> User | None:
        """The user of this name as the config says now, or None."""
        role = self._settings.role_of(name)
        return None if role is None else User(name, role)

    def is_user(self, name: str) -> bool:
        return name in self._settings.users

    def authenticate(self, name: str, secret: str) -> User | None:
        """The user, when `secret` is its password or its token; else None."""
        credentials = self._credentials.get(name)
        if credentials is None:
            verify_password(self._decoy, secret)  # the same work as for a real user
            return None
        accepted = False
        if credentials.token is not None:
            accepted = hmac.compare_digest(
                credentials.token.reveal().encode(), secret.encode("utf-8")
            )
        if credentials.password_hash is not None:
            accepted = verify_password(credentials.password_hash.reveal(), secret) or accepted
        return self.user(name) if accepted else None


def _no_console(config: Config) -> ConfigProblem:
    return ConfigProblem(str(config.path or "config"), "console", "no [console] section")
