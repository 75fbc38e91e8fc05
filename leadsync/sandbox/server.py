"""The sandbox server: both CRMs and the `/_sandbox/` inspection API on one port.

`Sandbox` runs it in-process (tests, the demo, benchmarks); `leadsync sandbox` runs it in the
foreground. HTTP/1.1 with keep-alive and one thread per connection: the official clients reuse
connections, and a benchmark must measure leadsync, not connection set-up.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from leadsync.sandbox.control import control_router, handle_control
from leadsync.sandbox.faults import Fault, FaultInjector, FaultSpec
from leadsync.sandbox.http import Request, Response
from leadsync.sandbox.hubspot import HubSpotEmulator, HubSpotSettings
from leadsync.sandbox.salesforce import SalesforceEmulator, SalesforceSettings
from leadsync.sandbox.seed import generate

MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    host: str = "127.0.0.1"
    port: int = 8765  # 0 picks a free port
    seed: int = 42
    leads: int = 1_000  # per CRM
    overlap: float = 0.5  # share of people present in both CRMs
    faults: FaultSpec = field(default_factory=FaultSpec)
    hubspot: HubSpotSettings = field(default_factory=HubSpotSettings)
    salesforce: SalesforceSettings = field(default_factory=SalesforceSettings)
    # The moment the seeded history ends; None means the time the sandbox starts.
    seed_until: datetime | None = None


@dataclass
class Stats:
    """Request counts for the inspection API: by CRM, by endpoint and status, and faults."""

    requests: Counter[str] = field(default_factory=Counter)
    by_endpoint: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)
    faulted: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, crm: str, endpoint: str, status: int, fault: Fault | None) -> None:
        if crm == "sandbox":
            return  # the inspection API is not CRM traffic
        with self.lock:
            self.requests[crm] += 1
            self.by_endpoint[endpoint] += 1
            self.statuses[f"{endpoint} {status}"] += 1
            if fault is not None:
                self.faulted[f"{crm} {fault.value}"] += 1
            elif status == 429 or (crm == "salesforce" and status == 403):
                self.throttled[crm] += 1

    def as_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": dict(self.requests),
                "endpoints": dict(self.by_endpoint),
                "statuses": dict(self.statuses),
                "throttled": dict(self.throttled),
                "faulted": dict(self.faulted),
            }

    def clear(self) -> None:
        with self.lock:
            for counter in (
                self.requests,
                self.by_endpoint,
                self.statuses,
                self.throttled,
                self.faulted,
            ):
                counter.clear()


class Sandbox:
    """Both emulated CRMs behind one HTTP server; use as a context manager or start()/stop()."""

    def __init__(
        self,
        settings: SandboxSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings or SandboxSettings()
        self._clock = clock
        self.faults = FaultInjector(self.settings.faults, seed=self.settings.seed)
        self.stats = Stats()
        self.hubspot = HubSpotEmulator(self.settings.hubspot, clock, self._now_ms)
        self.salesforce = SalesforceEmulator(
            self.settings.salesforce,
            clock,
            self._now_ms,
            record_lock_share=lambda: self.faults.spec.record_lock,
        )
        self._control = control_router(self)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reseed(
            seed=self.settings.seed, leads=self.settings.leads, overlap=self.settings.overlap
        )

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    @property
    def clock(self) -> Callable[[], float]:
        """The clock both CRMs stamp their records with (seconds since the epoch)."""
        return self._clock

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Sandbox:
        server = _Server((self.settings.host, self.settings.port), _Handler)
        server.sandbox = self
        self._server = server
        self._thread = threading.Thread(
            # A short poll interval makes stop() quick: tests start and stop many sandboxes.
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="leadsync-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_forever(self) -> None:
        """Serve in the calling thread until `stop()` is called from elsewhere."""
        if self._server is None:
            self.start()
        assert self._thread is not None
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            return self.settings.port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    # ---------------------------------------------------------------- control

    def reseed(self, *, seed: int, leads: int, overlap: float) -> None:
        """Replace both CRMs' records with freshly seeded ones and clear limits and stats."""
        until = self.settings.seed_until or datetime.fromtimestamp(self._clock(), UTC)
        data = generate(seed=seed, leads=leads, overlap=overlap, now=until)
        self.hubspot.load((c.id, c.properties) for c in data.hubspot_contacts)
        self.salesforce.load(
            {
                "Lead": data.salesforce_leads,
                "Contact": data.salesforce_contacts,
                "Opportunity": data.salesforce_opportunities,
                "OpportunityContactRole": data.salesforce_contact_roles,
            }
        )
        self.settings = replace(self.settings, seed=seed, leads=leads, overlap=overlap)
        self.hubspot.reset_limits()
        self.salesforce.reset_limits()
        self.stats.clear()

    def credentials(self) -> dict[str, dict[str, str]]:
        sf = self.settings.salesforce.credentials
        return {
            "hubspot": {"base_url": self.url, "access_token": self.settings.hubspot.token},
            "salesforce": {
                "instance_url": self.url,
                "username": sf.username,
                "password": sf.password,
                "security_token": sf.security_token,
                "consumer_key": sf.consumer_key,
                "consumer_secret": sf.consumer_secret,
            },
        }

    # ---------------------------------------------------------------- dispatch

    def dispatch(self, request: Request) -> tuple[str, str, Response | None, Fault | None]:
        """Route one request: (crm, endpoint, response or None to drop the connection, fault)."""
        if request.path.startswith("/_sandbox"):
            endpoint, answer = handle_control(self._control, request)
            return "sandbox", endpoint, answer, None
        if request.path.startswith("/crm/"):
            crm, emulator = "hubspot", self.hubspot
        elif request.path.startswith("/services/"):
            crm, emulator = "salesforce", self.salesforce  # type: ignore[assignment]
        else:
            return "unknown", "unknown", Response.json(404, {"message": "not found"}), None
        spec = self.faults.spec
        if spec.latency_seconds:
            time.sleep(spec.latency_seconds)
        status = self.faults.matched(request.method, request.path, request.body)
        if status is not None:
            return crm, f"{crm}.fault", emulator.fault_response(status), Fault.MATCHED
        fault = self.faults.draw()
        if fault is Fault.DROP:
            return crm, f"{crm}.fault", None, fault
        if fault is Fault.SERVER_ERROR:
            return crm, f"{crm}.fault", emulator.fault_response(503), fault
        if fault is Fault.RATE_LIMITED:
            return crm, f"{crm}.fault", emulator.fault_response(429), fault
        endpoint, response = emulator.handle(request)
        return crm, endpoint, response, None


# "In each REST call, the maximum length for the combined URI and headers is 16,384 bytes. A
# request exceeding this limit returns a 431 Request Header Fields Too Large error. If the URI
# itself exceeds this limit, the request returns a 414 URI Too Long error" (Salesforce
# Developer Limits, "API Request Limits"). The answer is the web server's HTML page, not the
# API's JSON (simple-salesforce#271: "<h1>Bad Message 414</h1><pre>reason: URI Too Long</pre>").
SALESFORCE_URI_AND_HEADERS_LIMIT = 16_384


def _salesforce_too_long(
    path: str, target: str, headers: Iterable[tuple[str, str]]
) -> tuple[str, Response] | None:
    """The endpoint label and Salesforce's refusal of a request whose URI, or URI and headers
    together, pass the limit; None for any other request (HubSpot's included)."""
    if not path.startswith("/services/"):
        return None
    uri = len(target.encode("utf-8"))
    if uri > SALESFORCE_URI_AND_HEADERS_LIMIT:
        return "salesforce.uri_too_long", _bad_message(414, "URI Too Long")
    header_bytes = sum(len(f"{name}: {value}\r\n".encode()) for name, value in headers)
    if uri + header_bytes > SALESFORCE_URI_AND_HEADERS_LIMIT:
        return "salesforce.headers_too_large", _bad_message(431, "Request Header Fields Too Large")
    return None


def _bad_message(status: int, reason: str) -> Response:
    page = f"<h1>Bad Message {status}</h1><pre>reason: {reason}</pre>"
    return Response(status, page.encode(), "text/html;charset=iso-8859-1", {})


class _BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    sandbox: Sandbox


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, each answer on a kept-alive
    # connection waits for the client's delayed ACK (about 40 ms on Linux).
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the inspection API's stats say what happened."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header, on the clock the CRMs stamp records with: a real server dates its
        answers by its own clock, and leadsync reads Salesforce's clock from it."""
        moment = self.server.sandbox.clock() if timestamp is None else timestamp
        return super().date_time_string(moment)

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        too_long = _salesforce_too_long(parts.path, self.path, self.headers.items())
        try:
            body = self._body()
        except _BodyError as problem:
            # The connection cannot be trusted to carry another request after a bad body.
            self.close_connection = True
            self._write(Response.json(problem.status, {"message": str(problem)}))
            return
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
        )
        sandbox = self.server.sandbox
        if too_long is not None:
            sandbox.stats.record("salesforce", too_long[0], too_long[1].status, None)
            self._write(too_long[1])
            return
        try:
            crm, endpoint, response, fault = sandbox.dispatch(request)
        except Exception as error:  # noqa: BLE001 - a bug must answer 500, not kill the server
            crm, endpoint, fault = "sandbox", "sandbox.bug", None
            response = Response.json(500, {"message": f"sandbox error: {error!r}"})
        if response is None:
            sandbox.stats.record(crm, endpoint, 0, fault)
            self._drop()
            return
        sandbox.stats.record(crm, endpoint, response.status, fault)
        self._write(response)

    def _body(self) -> bytes:
        """The request body, sent with a Content-Length or in HTTP/1.1 chunks (RFC 9112 7.1):
        Node's HTTP clients (jsforce, @hubspot/api-client) stream bodies chunked."""
        encoding = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in encoding:
            return self._chunked_body()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise _BodyError(413, "request body too large")
        return self.rfile.read(length) if length else b""

    def _chunked_body(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            size_text = line.split(b";", 1)[0].strip()  # chunk extensions are ignored
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _BodyError(400, "malformed chunked request body") from None
            if size == 0:
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise _BodyError(413, "request body too large")
            chunks.append(self.rfile.read(size))
            if self.rfile.read(2) != b"\r\n":
                raise _BodyError(400, "malformed chunked request body")
        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
            pass  # trailer fields, unused
        return b"".join(chunks)

    def _drop(self) -> None:
        # A dropped connection: close the socket without an answer, as a failing proxy does.
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    # BaseHTTPRequestHandler dispatches on these names.
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815
