"""What every console page shares: the console's state, who is visiting, and rendering.

A page is a plain function `(Visit) -> Response`, run off the event loop (it reads the store);
`app.py` resolves the visit first: the session, the user, and for a change the form's CSRF
token and the user's role.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jinja2
from sqlalchemy.engine import Engine
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from leadsync import __version__
from leadsync.console.accounts import Accounts, User
from leadsync.console.audit import AuditLog
from leadsync.console.sessions import Session, Sessions
from leadsync.console.settings import ConsoleSettings
from leadsync.metrics import Health
from leadsync.runtime import Runtime
from leadsync.sync.explain import shown_value
from leadsync.sync.leases import Leases

__all__ = ["Console", "ConsoleContext", "Visit"]

NONE = "–"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ConsoleContext:
    """What the console reads and acts through: in the service, its own runtime (with the
    mapping and lead definition running now), health and files; in tests, the same kinds."""

    settings: ConsoleSettings
    accounts: Accounts
    runtime: Callable[[], Runtime]
    replica: str
    health: Callable[[], Health] | None = None
    # The model version running, and whether the files on disk differ (leadsync.jobs).
    files: Callable[[], Any] | None = None
    clock: Callable[[], datetime] = field(default=_now)
    # What leases and heartbeats are judged by (Leases' own clock: PostgreSQL's there) unless
    # given (tests): the console's host may run ahead of or behind the replicas'.
    lease_clock: Callable[[], datetime] | None = None

    def leases_now(self, engine: Engine) -> datetime:
        """Now, as a lease's or heartbeat's expiry is judged."""
        return Leases(engine, self.replica, clock=self.lease_clock).now()


@dataclass(frozen=True)
class Visit:
    """One request of a signed-in user; `form` for a POST."""

    console: Console
    request: Request
    user: User
    session: Session
    form: FormData | None = None

    def runtime(self) -> Runtime:
        return self.console.context.runtime()

    def now(self) -> datetime:
        return self.console.context.clock()

    def field(self, name: str) -> str:
        """A form field, stripped ('' when absent)."""
        value = self.form.get(name) if self.form is not None else None
        return value.strip() if isinstance(value, str) else ""

    def path(self, name: str, **params: Any) -> str:
        return str(self.request.url_for(name, **params).path)

    def render(self, template: str, *, status_code: int = 200, **context: Any) -> Response:
        return self.console.render(
            self.request,
            template,
            status_code=status_code,
            user=self.user,
            csrf=self.session.csrf_token,
            **context,
        )

    def audit(
        self, action: str, target: str = "", details: Mapping[str, Any] | None = None
    ) -> None:
        """Write this user's change to the audit log."""
        self.console.audit.record(self.user.name, self.user.role.value, action, target, details)


class Console:
    """The console's state for its lifetime: context, sessions, audit log, templates."""

    def __init__(self, context: ConsoleContext) -> None:
        self.context = context
        engine = context.runtime().store.engine
        self.sessions = Sessions(
            engine,
            lifetime=timedelta(hours=context.settings.session_hours),
            clock=context.clock,
        )
        self.audit = AuditLog(engine, replica=context.replica, clock=context.clock)
        environment = jinja2.Environment(
            loader=jinja2.PackageLoader("leadsync.console", "templates"),
            autoescape=True,  # every value is text: a CRM's field never becomes markup
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        environment.filters.update(
            when=_when, count=_count, share=_share, details=_details, value=_value
        )
        environment.globals.update(path=_path, version=__version__, NONE=NONE)
        self.templates = Jinja2Templates(env=environment)

    def render(
        self, request: Request, template: str, *, status_code: int = 200, **context: Any
    ) -> Response:
        context.setdefault("user", None)
        context.setdefault("csrf", "")
        context.setdefault("page", "")
        return self.templates.TemplateResponse(request, template, context, status_code=status_code)


@jinja2.pass_context
def _path(context: Mapping[str, Any], name: str, **params: Any) -> str:
    request: Request = context["request"]
    return str(request.url_for(name, **params).path)


def _when(value: datetime | str | None) -> str:
    """`2026-12-01 11:02 UTC`."""
    if value is None or value == "":
        return NONE
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _value(value: Any) -> str:
    """A CRM value as `leadsync explain` shows it (`2026-03-07 02:50:48 UTC`, `537000000`),
    text unquoted; nothing as NONE."""
    return NONE if value is None else shown_value(value, quoted=False)


def _count(value: int | float | None) -> str:
    if value is None:
        return NONE
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def _share(value: float | None) -> str:
    return NONE if value is None else f"{value:.1%}"


_DIGEST = re.compile(r"[0-9a-f]{32,}")


def _details(details: Mapping[str, Any]) -> str:
    """An audit entry's details as words: `crms: hubspot; dry run: no` (the empty left out,
    a digest shortened: the audit log keeps it whole)."""

    def word(value: Any) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, list | tuple):
            return ", ".join(word(item) for item in value)
        if isinstance(value, str) and _DIGEST.fullmatch(value):
            return value[:12] + "…"
        return str(value)

    return "; ".join(
        f"{key.replace('_', ' ')}: {word(value)}"
        for key, value in sorted(details.items())
        if value is not None and value not in ("", [])
    )
