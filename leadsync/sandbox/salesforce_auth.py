"""Salesforce logins: SOAP partner login, the OAuth token endpoint, and the session table.

simple-salesforce reads the SOAP answer by its unprefixed `sessionId` and `serverUrl` tags and
takes the instance from `serverUrl`'s host, so the sandbox answers with its own address; the
client's routing session then sends every later call back here.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import jwt

from leadsync.sandbox.http import Request, Response

ORG_ID = "00D5g000000SANDBOX"
USER_ID = "0055g0000000001AAA"  # the first sandbox owner, as whom the API user logs in


@dataclass(frozen=True, slots=True)
class SalesforceCredentials:
    username: str = "sandbox@leadsync.test"
    password: str = "sandbox"  # noqa: S105 - the sandbox's documented fake credential
    security_token: str = "sandbox"  # noqa: S105
    consumer_key: str = "sandbox-client"
    consumer_secret: str = "sandbox-secret"  # noqa: S105
    # PEM public key (or certificate) that JWT-bearer assertions must be signed for. None
    # accepts any signature but still checks issuer, subject, audience and expiry.
    jwt_public_key: str | None = None


class SessionTable:
    """Issued session ids; all of them can be expired at once to test re-authentication.

    With a `timeout` (seconds on `clock`), a session also expires that long after its login.
    """

    def __init__(
        self, clock: Callable[[], float] = time.time, timeout: float | None = None
    ) -> None:
        self._sessions: dict[str, float] = {}  # session id -> when it was issued
        self._lock = threading.Lock()
        self._clock = clock
        self._timeout = timeout
        self.logins = 0

    def issue(self) -> str:
        token = f"{ORG_ID}!{secrets.token_urlsafe(40)}"
        with self._lock:
            self._sessions[token] = self._clock()
            self.logins += 1
        return token

    def valid(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Bearer "):
            return False
        with self._lock:
            issued = self._sessions.get(authorization[len("Bearer ") :])
        if issued is None:
            return False
        return self._timeout is None or self._clock() < issued + self._timeout

    def expire_all(self) -> int:
        with self._lock:
            count = len(self._sessions)
            self._sessions.clear()
            return count


def _base_url(request: Request) -> str:
    return f"http://{request.header('host', '127.0.0.1')}"


def _xml_value(body: str, tag: str) -> str | None:
    found = re.search(rf"<(?:\w+:)?{tag}>(.*?)</(?:\w+:)?{tag}>", body, re.DOTALL)
    if found is None:
        return None
    return (
        found.group(1)
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", '"')
        .replace("&apos;", "'")
        .replace("&amp;", "&")
    )


def soap_login(
    request: Request, credentials: SalesforceCredentials, sessions: SessionTable
) -> Response:
    """`POST /services/Soap/u/{version}` with a partner `login` envelope."""
    body = request.body.decode("utf-8", errors="replace")
    username = _xml_value(body, "username")
    password = _xml_value(body, "password")
    expected = credentials.password + credentials.security_token
    if username != credentials.username or password != expected:
        return _soap_fault(
            "INVALID_LOGIN",
            "Invalid username, password, security token; or user locked out.",
        )
    session_id = sessions.issue()
    version = request.path.rstrip("/").rsplit("/", 1)[-1]
    server = f"{_base_url(request)}/services/Soap/u/{version}/{ORG_ID}"
    envelope = f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" \
xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\
<soapenv:Body><loginResponse><result>\
<metadataServerUrl>{escape(server.replace("/u/", "/m/"))}</metadataServerUrl>\
<passwordExpired>false</passwordExpired><sandbox>true</sandbox>\
<serverUrl>{escape(server)}</serverUrl><sessionId>{escape(session_id)}</sessionId>\
<userId>{USER_ID}</userId><userInfo><organizationId>{ORG_ID}</organizationId>\
<userEmail>{escape(credentials.username)}</userEmail>\
<userName>{escape(credentials.username)}</userName></userInfo>\
</result></loginResponse></soapenv:Body></soapenv:Envelope>"""
    return Response.text(200, envelope, "text/xml;charset=UTF-8")


def _soap_fault(code: str, message: str) -> Response:
    envelope = f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" \
xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\
<soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode>\
<faultstring>{code}: {escape(message)}</faultstring><detail>\
<sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}</sf:exceptionCode>\
<sf:exceptionMessage>{escape(message)}</sf:exceptionMessage></sf:LoginFault></detail>\
</soapenv:Fault></soapenv:Body></soapenv:Envelope>"""
    return Response.text(500, envelope, "text/xml;charset=UTF-8")


def oauth_token(
    request: Request, credentials: SalesforceCredentials, sessions: SessionTable
) -> Response:
    """`POST /services/oauth2/token`: the username-password and JWT-bearer flows."""
    form = request.form()
    grant = form.get("grant_type")
    if grant == "password":
        if (
            form.get("client_id") != credentials.consumer_key
            or form.get("client_secret") != credentials.consumer_secret
        ):
            return _oauth_error("invalid_client_id", "client identifier invalid")
        password = form.get("password") or ""
        if form.get("username") != credentials.username or password not in (
            credentials.password + credentials.security_token,
            credentials.password,
        ):
            return _oauth_error("invalid_grant", "authentication failure")
    elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
        problem = _jwt_problem(form.get("assertion") or "", credentials)
        if problem is not None:
            return _oauth_error(*problem)
    else:
        return _oauth_error("unsupported_grant_type", "grant type not supported")
    token = sessions.issue()
    base = _base_url(request)
    issued = str(int(time.time() * 1000))
    signature = base64.b64encode(secrets.token_bytes(32)).decode()
    return Response.json(
        200,
        {
            "access_token": token,
            "instance_url": base,
            "id": f"{base}/id/{ORG_ID}/{USER_ID}",
            "token_type": "Bearer",
            "issued_at": issued,
            "signature": signature,
        },
    )


def _jwt_problem(assertion: str, credentials: SalesforceCredentials) -> tuple[str, str] | None:
    try:
        if credentials.jwt_public_key is not None:
            claims: Mapping[str, Any] = jwt.decode(
                assertion,
                credentials.jwt_public_key,
                algorithms=["RS256"],
                options={"verify_aud": False, "verify_exp": False},
            )
        else:
            claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.InvalidSignatureError:
        return "invalid_grant", "invalid assertion"
    except jwt.PyJWTError:
        return "invalid_grant", "invalid assertion"
    if claims.get("iss") != credentials.consumer_key:
        return "invalid_client_id", "client identifier invalid"
    if claims.get("sub") != credentials.username:
        return "invalid_grant", "user hasn't approved this consumer"
    audience = str(claims.get("aud", ""))
    if not audience.startswith(("https://login.salesforce.com", "https://test.salesforce.com")):
        return "invalid_grant", "audience is invalid"
    try:
        expires = float(claims.get("exp", 0))
    except (TypeError, ValueError):
        return "invalid_grant", "expiration is invalid"
    if expires < time.time():
        return "invalid_grant", "expired authorization code"
    return None


def _oauth_error(code: str, description: str) -> Response:
    return Response.json(400, {"error": code, "error_description": description})


def unauthorized() -> Response:
    return Response.json(
        401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    )
