"""Signing in and out, sessions, CSRF on every change, roles, and the audit log of it all."""

from __future__ import annotations

import itertools
import re
import select
import socket
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from leadsync.console import pages
from leadsync.console.app import MAX_REFUSED, SESSION_COOKIE
from leadsync.console.audit import NOBODY, AuditLog
from leadsync.console.sessions import Sessions
from leadsync.sync import tables
from tests.console.conftest import ADA_TOKEN, GRACE_PASSWORD, Served, csrf_of, sign_in


def _routes(method: str) -> list[str]:
    """Every route of the console for `method`, from its own table (none can be left out),
    each {parameter} given a value."""
    return [
        "/console" + re.sub(r"\{crm\}", "hubspot", re.sub(r"\{(?!crm)[a-z_]+\}", "x", path))
        for path, _, _, methods in pages.PAGES
        if method in methods
    ]


PAGES = [*_routes("GET"), "/console/leads?q=a"]
CHANGES = _routes("POST")


def test_the_route_table_has_every_page_and_change() -> None:
    assert {"/console/leads/x", "/console/exceptions", "/console/edits"} <= set(PAGES)
    assert {"/console/edits/apply", "/console/exceptions/review/hubspot/x"} <= set(CHANGES)


def actions(served: Served) -> list[tuple[str, str, str]]:
    """The audit log, oldest first: (who, role, what)."""
    log = AuditLog(served.runtime.store.engine, replica="test")
    return [(entry.actor, entry.role, entry.action) for entry in reversed(log.entries())]


def sessions(served: Served, *, hours_later: float = 0) -> Sessions:
    return Sessions(
        served.runtime.store.engine,
        lifetime=timedelta(hours=12),
        clock=lambda: datetime.now(UTC) + timedelta(hours=hours_later),
    )


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_a_stranger_to_sign_in_and_back(served: Served, path: str) -> None:
    answer = served.client.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/login?next=")
    signed = sign_in(served.client, "ada", ADA_TOKEN, next_path=path)
    assert signed.status_code == 303
    assert signed.headers["location"] == path


@pytest.mark.parametrize("path", CHANGES)
def test_every_change_is_refused_to_a_stranger(served: Served, path: str) -> None:
    answer = served.client.post(path, data={"crm": "all"}, follow_redirects=False)
    assert answer.status_code == 403
    assert "signed out" in answer.text
    assert served.runtime.backfill_queue().list() == []
    assert actions(served) == []


@pytest.mark.parametrize("path", CHANGES)
def test_every_change_is_refused_to_a_viewer(served: Served, path: str) -> None:
    assert sign_in(served.client, "grace", GRACE_PASSWORD).status_code == 303
    csrf = csrf_of(served.page("/console/"))
    answer = served.client.post(
        path, data={"csrf": csrf, "crm": "all", "action": "ignore"}, follow_redirects=False
    )
    assert answer.status_code == 403
    assert "grace is a viewer" in answer.text
    assert served.runtime.backfill_queue().list() == []
    assert actions(served) == [("grace", "viewer", "login")]


@pytest.mark.parametrize("path", CHANGES)
def test_every_change_without_the_sessions_form_token_is_refused(ada: Served, path: str) -> None:
    for token in ({}, {"csrf": "forged"}):
        answer = ada.client.post(
            path, data={**token, "crm": "all", "action": "ignore"}, follow_redirects=False
        )
        assert answer.status_code == 403
        assert "This form has expired or came from another site" in answer.text
    assert ada.runtime.backfill_queue().list() == []
    assert actions(ada) == [("ada", "editor", "login")]


def test_a_token_signs_in_an_editor_with_a_session_cookie_kept_from_scripts(
    served: Served,
) -> None:
    signed = sign_in(served.client, "ada", ADA_TOKEN)
    assert signed.status_code == 303
    assert signed.headers["location"] == "/console/"
    cookie = next(
        header
        for header in signed.headers.get_list("set-cookie")
        if header.startswith(SESSION_COOKIE)
    )
    for attribute in ("HttpOnly", "Path=/console/", "SameSite=lax", "expires="):
        assert attribute in cookie
    assert "Secure" not in cookie  # secure_cookies is off in this config
    page = served.page("/console/")
    assert "ada" in page
    assert "editor" in page
    assert actions(served) == [("ada", "editor", "login")]


def test_a_password_signs_in_a_viewer(served: Served) -> None:
    assert sign_in(served.client, "grace", GRACE_PASSWORD).status_code == 303
    assert "viewer" in served.page("/console/")


@pytest.mark.parametrize(
    ("user", "secret", "actor"),
    [
        ("grace", "not her password", "grace"),
        ("ada", "not the token", "ada"),
        ("ada", GRACE_PASSWORD, "ada"),  # someone else's password
        ("grace", ADA_TOKEN, "grace"),  # someone else's token
        ("mallory", GRACE_PASSWORD, NOBODY),  # nobody of that name: the name is not kept
        ("", "x", NOBODY),
    ],
)
def test_a_wrong_secret_is_refused_and_written_down(
    served: Served, user: str, secret: str, actor: str
) -> None:
    refused = sign_in(served.client, user, secret)
    assert refused.status_code == 401
    assert "Wrong name or password." in refused.text
    assert served.client.get("/console/", follow_redirects=False).status_code == 303
    role = {"ada": "editor", "grace": "viewer"}.get(user, "-")
    assert actions(served) == [(actor, role, "login.refused")]
    (entry,) = AuditLog(served.runtime.store.engine, replica="test").entries()
    assert entry.details == {"known_user": actor != NOBODY}
    assert secret not in str(entry) or not secret


def test_a_sign_in_without_the_forms_token_is_refused(served: Served) -> None:
    served.client.get("/console/login")
    answer = served.client.post(
        "/console/login",
        data={"user": "ada", "secret": ADA_TOKEN, "csrf": "guessed"},
        follow_redirects=False,
    )
    assert answer.status_code == 403
    assert served.client.get("/console/", follow_redirects=False).status_code == 303


def test_too_many_refused_sign_ins_lock_the_name_for_a_while(served: Served) -> None:
    for _ in range(MAX_REFUSED):
        assert sign_in(served.client, "grace", "wrong").status_code == 401
    locked = sign_in(served.client, "grace", GRACE_PASSWORD)
    assert locked.status_code == 429
    assert "Too many refused sign-ins" in locked.text
    # Another name is not locked with it.
    assert sign_in(served.client, "ada", ADA_TOKEN).status_code == 303


@pytest.mark.parametrize(
    "wanted", ["https://evil.example/", "//evil.example/console/", "/elsewhere", "/console\\x"]
)
def test_after_signing_in_only_a_console_page_is_a_destination(served: Served, wanted: str) -> None:
    signed = sign_in(served.client, "ada", ADA_TOKEN, next_path=wanted)
    assert signed.headers["location"] == "/console/"


def test_signing_out_ends_the_session_for_good(ada: Served) -> None:
    page = ada.page("/console/")
    token = ada.client.cookies.get(SESSION_COOKIE)
    assert sessions(ada).find(token) is not None
    # Without the form's token (a page elsewhere posting here), nobody is signed out.
    forged = ada.client.post("/console/logout", data={"csrf": "forged"}, follow_redirects=False)
    assert forged.status_code == 403
    assert sessions(ada).find(token) is not None
    assert ada.client.get("/console/", follow_redirects=False).status_code == 200
    out = ada.client.post("/console/logout", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert out.status_code == 303
    assert sessions(ada).find(token) is None
    # The old cookie, kept by someone, signs nobody in.
    ada.client.cookies.set(SESSION_COOKIE, token or "", path="/console/")
    assert ada.client.get("/console/", follow_redirects=False).status_code == 303
    assert actions(ada) == [("ada", "editor", "login"), ("ada", "editor", "logout")]


def test_a_session_ends_when_its_time_is_up_and_the_store_keeps_no_token(
    served: Served,
) -> None:
    sign_in(served.client, "ada", ADA_TOKEN)
    token = served.client.cookies.get(SESSION_COOKIE)
    assert token
    assert sessions(served, hours_later=11.9).find(token) is not None
    assert sessions(served, hours_later=12.1).find(token) is None
    with served.runtime.store.engine.connect() as connection:
        kept = connection.execute(sa.select(tables.console_sessions)).mappings().one()
    assert token not in str(dict(kept))


# ------------------------------------------------------------------------------ request bodies


def _answer_to(port: int, head: bytes, body: Iterable[bytes] = ()) -> bytes:
    """What the server answers a raw request: `head` (request line and headers), then
    `body`'s parts, as far as the server reads them."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head)
        try:
            for part in body:
                if select.select([connection], [], [], 0)[0]:
                    break  # the server answered before the body was all sent
                connection.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # and closed
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass  # closed with the body unread: the answer came first
        return answer


def test_a_body_declared_over_64_kib_is_refused_unread(listening: int) -> None:
    head = (
        b"POST /console/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 104857600\r\n\r\n"
    )
    # 100 MB announced, not a byte sent: the answer cannot have waited for them.
    answer = _answer_to(listening, head)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"at most 64 KiB" in answer


def test_a_chunked_body_is_refused_once_it_passes_64_kib(listening: int) -> None:
    head = (
        b"POST /console/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"user=" + b"a" * 16 * 1024
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    # 16 MB on offer; the server stops reading after the first 64 KiB or so.
    answer = _answer_to(listening, head, itertools.repeat(chunk, 1024))
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]


def test_a_body_within_64_kib_is_read(listening: int) -> None:
    body = b"user=ada&secret=" + b"x" * 60 * 1024
    head = (
        b"POST /console/login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    answer = _answer_to(listening, head, [body])
    # Read and judged: no form token, so refused as any such sign-in is.
    assert not answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]


# ------------------------------------------------------------------------------ odd input


@pytest.mark.parametrize("query", ["q=%ED%A0%80", "q=%F0%28%8C%BC", "q=%00"])
def test_a_search_of_bytes_no_text_holds_is_answered_not_crashed(ada: Served, query: str) -> None:
    answer = ada.client.get(f"/console/leads?{query}")
    assert answer.status_code in (200, 400), (answer.status_code, answer.text[:300])


def test_a_form_of_bytes_no_text_holds_is_answered_not_crashed(served: Served) -> None:
    form = served.client.get("/console/login")
    answer = served.client.post(
        "/console/login",
        content=b"user=%ED%A0%80&secret=\xed\xa0\x80&csrf=" + csrf_of(form.text).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    # Refused as any sign-in with a wrong secret: no traceback, no 500.
    assert answer.status_code in (400, 401, 403), (answer.status_code, answer.text[:300])
