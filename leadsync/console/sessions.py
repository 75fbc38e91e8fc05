"""The console's sessions, kept in the store: the browser holds a random token, the store its
SHA-256 with the user and the token that must come back with each of the user's forms (CSRF).

Server-side, so signing out ends a session for good, any replica on the same database knows
it, and no signing key has to be shared between replicas.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadsync.connectors.base import utc
from leadsync.sync import tables as t
from leadsync.sync.database import retry_transient, writing

__all__ = ["Session", "Sessions", "csrf_matches"]

_TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class Session:
    user: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime


def csrf_matches(expected: str, given: str | None) -> bool:
    """Whether a form's CSRF token is the one expected (in constant time)."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Sessions:
    def __init__(
        self,
        engine: Engine,
        *,
        lifetime: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._lifetime = lifetime
        self._clock = clock

    def open(self, user: str) -> tuple[str, Session]:
        """A new session for `user`: the token for its cookie, and the session. Expired
        sessions of anyone are cleared on the way."""
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        now = utc(self._clock())
        session = Session(user, secrets.token_urlsafe(_TOKEN_BYTES), now, now + self._lifetime)
        self._insert(_digest(token), session)
        return token, session

    @retry_transient
    def _insert(self, digest: str, session: Session) -> None:
        with writing(self._engine) as connection:
            connection.execute(
                t.console_sessions.delete().where(
                    t.console_sessions.c.expires_at <= session.created_at
                )
            )
            connection.execute(
                t.console_sessions.insert(),
                {
                    "token_digest": digest,
                    "user": session.user,
                    "csrf_token": session.csrf_token,
                    "created_at": session.created_at,
                    "expires_at": session.expires_at,
                },
            )

    @retry_transient
    def find(self, token: str | None) -> Session | None:
        """The live session of this token, or None (none, expired or ended)."""
        if not token:
            return None
        column = t.console_sessions.c
        query = sa.select(t.console_sessions).where(
            column.token_digest == _digest(token), column.expires_at > utc(self._clock())
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).mappings().one_or_none()
        if row is None:
            return None
        return Session(row["user"], row["csrf_token"], row["created_at"], row["expires_at"])

    @retry_transient
    def close(self, token: str | None) -> None:
        """End the session of this token (signing out), if there is one."""
        if not token:
            return
        with writing(self._engine) as connection:
            connection.execute(
                t.console_sessions.delete().where(
                    t.console_sessions.c.token_digest == _digest(token)
                )
            )
