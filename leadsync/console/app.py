"""The console's app: its routes, sign-in and sign-out, and what guards every page.

    app = console_app(ConsoleContext(settings, accounts, runtime=..., replica=...))

Mounted under /console/ by the service's listener (`leadsync.serving.service_app`). Every page
needs a session; every change (a POST) also needs the session's CSRF token in the form, an
editor, and (when the browser names it) the console's own origin. A refused sign-in is written
to the audit log; after MAX_REFUSED of them in REFUSED_WINDOW a name is refused outright
for a while.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadsync.console import pages
from leadsync.console.audit import NOBODY
from leadsync.console.sessions import csrf_matches
from leadsync.console.web import Console, ConsoleContext, Visit
from leadsync.secrets import cut

__all__ = ["LOGIN_CSRF_COOKIE", "SESSION_COOKIE", "console_app"]

log = logging.getLogger("leadsync.console")

SESSION_COOKIE = "leadsync_session"
LOGIN_CSRF_COOKIE = "leadsync_login"
MAX_REFUSED = 10
REFUSED_WINDOW = timedelta(minutes=15)

Page = Callable[[Visit], Response]


def console_app(context: ConsoleContext) -> Starlette:
    console = Console(context)

    def page(view: Page, *, change: bool = False) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            form = await request.form() if request.method == "POST" else None
            return await run_in_threadpool(_visit, console, request, form, view, change)

        return endpoint

    async def login(request: Request) -> Response:
        form = await request.form() if request.method == "POST" else None
        return await run_in_threadpool(_login, console, request, form)

    async def logout(request: Request) -> Response:
        form = await request.form()
        return await run_in_threadpool(_logout, console, request, form)

    routes: list[BaseRoute] = [
        Route("/login", login, methods=["GET", "POST"], name="login"),
        Route("/logout", logout, methods=["POST"], name="logout"),
        Mount(
            "/static",
            StaticFiles(packages=[("leadsync.console", "static")]),
            name="static",
        ),
        Route("/static-report.css", pages.report_css, name="report_css"),
    ]
    for path, name, view, methods in pages.PAGES:
        change = "POST" in methods
        routes.append(Route(path, page(view, change=change), methods=list(methods), name=name))
    app = Starlette(routes=routes)
    app.add_middleware(_SecurityHeaders)
    return app


# ------------------------------------------------------------------------------ each visit


def _visit(
    console: Console, request: Request, form: FormData | None, view: Page, change: bool
) -> Response:
    session = console.sessions.find(request.cookies.get(SESSION_COOKIE))
    user = console.context.accounts.user(session.user) if session is not None else None
    if session is None or user is None:
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            login = request.url_for("login").path
            return RedirectResponse(f"{login}?{urlencode({'next': target})}", status_code=303)
        return _refusal(console, request, 403, "You are signed out: sign in again, then retry.")
    if change:
        why = _forged(request, session.csrf_token, form)
        if why:
            log.warning("console: a change %s was refused", why)
            return _refusal(
                console,
                request,
                403,
                "This form has expired or came from another site: reload the page and retry.",
            )
        if not user.may_change:
            return _refusal(
                console, request, 403, f"{user.name} is a viewer: only editors change things."
            )
    return view(Visit(console, request, user, session, form))


def _refusal(console: Console, request: Request, status: int, message: str) -> Response:
    return console.render(request, "refused.html", status_code=status, message=message)


def _forged(request: Request, csrf_token: str, form: FormData | None) -> str:
    """Why a change may not be this session's own doing (for the log), or ""."""
    if not _same_origin(request):
        # The Origin the browser named: a site's address, nothing of a person's.
        origin = "".join(c for c in request.headers.get("origin", "") if c.isprintable())
        return f"posted from another origin ({cut(origin, limit=200)})"
    if not csrf_matches(csrf_token, _field(form, "csrf")):
        return "without this session's form token"
    return ""


def _same_origin(request: Request) -> bool:
    """A browser names the page a POST came from: it must be this console's own."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _field(form: FormData | None, name: str) -> str:
    value = form.get(name) if form is not None else None
    return value if isinstance(value, str) else ""


# ------------------------------------------------------------------------ signing in and out


def _login(console: Console, request: Request, form: FormData | None) -> Response:
    next_path = _safe_next(request, _field(form, "next") or request.query_params.get("next", ""))
    if form is None:
        return _login_page(console, request, next_path)
    name = _field(form, "user").strip()
    if not csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE, ""), _field(form, "csrf")):
        return _login_page(
            console, request, next_path, "This form has expired: please sign in again.", 403
        )
    accounts = console.context.accounts
    known = accounts.is_user(name)
    actor = name if known else NOBODY
    since = console.context.clock() - REFUSED_WINDOW
    if console.audit.count(actor, "login.refused", since=since) >= MAX_REFUSED:
        return _login_page(
            console,
            request,
            next_path,
            f"Too many refused sign-ins for this name: wait {REFUSED_WINDOW} and retry.",
            429,
        )
    user = accounts.authenticate(name, _field(form, "secret"))
    if user is None:
        role = accounts.user(name)
        console.audit.record(
            actor, role.role.value if role else "-", "login.refused", "", {"known_user": known}
        )
        return _login_page(console, request, next_path, "Wrong name or password.", 401)
    token, session = console.sessions.open(user.name)
    console.audit.record(user.name, user.role.value, "login")
    response = RedirectResponse(next_path, status_code=303)
    _set_cookie(console, request, response, SESSION_COOKIE, token, session.expires_at)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=_cookie_path(request))
    return response


def _login_page(
    console: Console,
    request: Request,
    next_path: str,
    problem: str = "",
    status: int = 200,
) -> Response:
    # A login form has no session yet: its token is a cookie the form must repeat.
    token = secrets.token_urlsafe(24)
    response = console.render(
        request,
        "login.html",
        status_code=status,
        csrf=token,
        next_path=next_path,
        problem=problem,
    )
    _set_cookie(console, request, response, LOGIN_CSRF_COOKIE, token, None)
    return response


def _logout(console: Console, request: Request, form: FormData) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    session = console.sessions.find(token)
    if session is not None:
        if not csrf_matches(session.csrf_token, _field(form, "csrf")):
            # Another site's form: nobody is signed out, not even in this browser.
            return _refusal(console, request, 403, "This form came from elsewhere: not signed out.")
        console.sessions.close(token)
        user = console.context.accounts.user(session.user)
        console.audit.record(session.user, user.role.value if user else "-", "logout")
    response = RedirectResponse(request.url_for("login").path, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=_cookie_path(request))
    return response


def _safe_next(request: Request, wanted: str) -> str:
    """Where to go after signing in: a page of this console only, never another site."""
    home = request.url_for("status").path
    root = home.rstrip("/") + "/"
    if wanted.startswith(root) and not wanted.startswith("//") and "\\" not in wanted:
        return wanted
    return home


def _cookie_path(request: Request) -> str:
    return str(request.scope.get("root_path") or "") + "/"


def _set_cookie(
    console: Console,
    request: Request,
    response: Response,
    name: str,
    value: str,
    expires: Any,
) -> None:
    response.set_cookie(
        name,
        value,
        expires=expires,
        path=_cookie_path(request),
        httponly=True,
        samesite="lax",
        secure=console.context.settings.secure_cookies,
    )


# ------------------------------------------------------------------------------ every answer

_HEADERS = [
    # Scripts and styles from the console itself only: a value that slipped through escaping
    # could still not run. Images: the report's inline SVG needs nothing else.
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    # Pages show leads' personal data: no cache keeps them.
    (b"cache-control", b"no-store"),
]


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in _HEADERS if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self._app(scope, receive, sending)
