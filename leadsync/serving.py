"""The service's one HTTP listener: an ASGI app, served by uvicorn from a thread of `leadsync run`.

    server = HttpServer(service_app(metrics, console=app), host="127.0.0.1", port=9108)
    server.start(); ...; server.stop()

`service_app` answers /metrics and /healthz, and mounts the console under /console/ when one is
given. The socket is bound when the server is made, so a port another process holds stops the
service at its start (exit 1, saying so), not a thread later. A request that fails is logged by
its exception's type alone: database errors carry the row's values (emails, names) in their text.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadsync.metrics import ServiceMetrics, metrics_routes

__all__ = [
    "CONSOLE_PATH",
    "MAX_BODY_BYTES",
    "BodyLimit",
    "HttpServer",
    "ServerErrorGuard",
    "service_app",
]

log = logging.getLogger("leadsync.service")

CONSOLE_PATH = "/console"
# How long a stopping server waits for requests in flight (a browser's keep-alive does not count).
GRACEFUL_SECONDS = 3.0
# The console's forms are a few fields: a bigger body is refused before it is read.
MAX_BODY_BYTES = 64 * 1024


def service_app(metrics: ServiceMetrics, *, console: ASGIApp | None = None) -> Starlette:
    """/metrics and /healthz, and the console under /console/ when given."""
    routes: list[Route | Mount] = list(metrics_routes(metrics))
    hint = "not found: try /metrics or /healthz"
    if console is not None:
        routes.append(Route("/", _to_console))
        routes.append(Mount(CONSOLE_PATH, app=console))
        hint += f" or {CONSOLE_PATH}/"

    async def not_found(request: Request, problem: Exception) -> Response:
        return PlainTextResponse(hint + "\n", status_code=404)

    app = Starlette(routes=routes, exception_handlers={404: not_found})
    app.add_middleware(BodyLimit)
    app.add_middleware(ServerErrorGuard)
    return app


async def _to_console(request: Request) -> Response:
    return RedirectResponse(f"{CONSOLE_PATH}/", status_code=307)


class BodyLimit:
    """Refuses a request body over MAX_BODY_BYTES with 413: at once when Content-Length says
    so, unread; else as soon as the bytes read pass it (a chunked body), never holding more."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES) -> None:
        self._app = app
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self._max:
            await self._refuse(scope, receive, send)
            return
        read = 0

        async def counting() -> Message:
            nonlocal read
            message = await receive()
            read += len(message.get("body", b""))
            if read > self._max:
                # Raised in the handler reading the body: each app's exception middleware
                # answers it (the console is an app of its own, mounted).
                raise HTTPException(413, self._too_large(), headers={"Connection": "close"})
            return message

        await self._app(scope, counting, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = PlainTextResponse(
            self._too_large() + "\n", status_code=413, headers={"Connection": "close"}
        )
        await answer(scope, receive, send)

    def _too_large(self) -> str:
        return f"request body too large: at most {self._max // 1024} KiB"


class ServerErrorGuard:
    """Answers 500 for a request whose handler raised, and logs the exception's type and the
    path only (uvicorn would log its text, and a database error's text holds the row)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = False

        async def sending(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self._app(scope, receive, sending)
        except Exception as problem:  # noqa: BLE001 - the listener outlives any request
            cause = getattr(problem, "orig", None)
            kind = type(problem).__name__ + (f" ({type(cause).__name__})" if cause else "")
            log.error("HTTP %s %s failed: %s", scope.get("method"), scope.get("path"), kind)
            if not started:
                answer = PlainTextResponse(
                    "leadsync could not answer this request (see the service's log)\n",
                    status_code=500,
                )
                await answer(scope, receive, send)


class HttpServer:
    """An ASGI app on host:port, served in a thread until `stop()`. OSError when the port
    cannot be had."""

    def __init__(self, app: ASGIApp, *, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family)
        config = uvicorn.Config(
            app,
            loop="asyncio",
            http="h11",
            lifespan="off",
            log_config=None,  # leadsync's logging, as configured
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=int(GRACEFUL_SECONDS),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=GRACEFUL_SECONDS + 5)
        self._socket.close()
