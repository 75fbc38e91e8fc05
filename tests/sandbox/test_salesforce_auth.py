"""Salesforce logins against the sandbox with the real simple-salesforce: SOAP, OAuth password and
JWT bearer, a bare session id, refused credentials, and sessions expired on demand."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce import Salesforce, SalesforceLogin
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
)

from leadsync.connectors.salesforce_routing import RoutingSession
from leadsync.sandbox import (
    SalesforceCredentials,
    SalesforceSettings,
    Sandbox,
    SandboxSettings,
)
from tests.support import FakeClock, recorded

USERNAME = "sandbox@leadsync.test"
ORG_ID = "00D5g000000SANDBOX"
COUNT_LEADS = "SELECT COUNT() FROM Lead"


def _pem_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxSettings(port=0, seed=7, leads=60)) as running:
        yield running


@pytest.fixture
def sandbox(shared_sandbox: Sandbox) -> Sandbox:
    """One server for the module, reset through the inspection API before each test: stopping a
    server costs half a second (its poll interval), too much to pay per test."""
    with requests.Session() as http:
        http.trust_env = False
        base = f"{shared_sandbox.url}/_sandbox"
        http.post(f"{base}/faults", json={"spec": ""}).raise_for_status()
        http.post(f"{base}/limits", json={"salesforce_daily_limit": 100_000}).raise_for_status()
        http.post(f"{base}/reset", json={"seed": 7, "leads": 60}).raise_for_status()
    return shared_sandbox


@pytest.fixture(scope="module")
def key_pair() -> tuple[str, str]:
    return _pem_pair()


@pytest.fixture(scope="module")
def other_private_key() -> str:
    return _pem_pair()[0]


def logins(control: requests.Session) -> int:
    stats = control.get(f"{control.base}/_sandbox/stats").json()  # type: ignore[attr-defined]
    return int(stats["quota"]["salesforce"]["logins"])


def expire_sessions(control: requests.Session) -> int:
    answer = control.post(f"{control.base}/_sandbox/salesforce/expire-sessions")  # type: ignore[attr-defined]
    assert answer.status_code == 200
    return int(answer.json()["expired"])


# ------------------------------------------------------------------------------------ SOAP


def test_soap_login_yields_a_session_on_the_sandbox_instance(
    salesforce: Salesforce, sandbox: Sandbox
) -> None:
    assert salesforce.session_id.startswith(f"{ORG_ID}!")
    # simple-salesforce takes the instance from serverUrl's host: the sandbox itself.
    assert salesforce.sf_instance == f"127.0.0.1:{sandbox.port}"
    assert salesforce.query(COUNT_LEADS)["totalSize"] == 60


@pytest.mark.parametrize(
    ("username", "password", "token"),
    [
        (USERNAME, "wrong", "sandbox"),
        (USERNAME, "sandbox", "wrong-token"),
        ("someone@else.test", "sandbox", "sandbox"),
    ],
    ids=["bad-password", "bad-token", "unknown-user"],
)
def test_soap_login_refuses_bad_credentials(
    sandbox: Sandbox, username: str, password: str, token: str
) -> None:
    with pytest.raises(SalesforceAuthenticationFailed) as refused:
        Salesforce(
            username=username,
            password=password,
            security_token=token,
            session=RoutingSession(sandbox.url),
        )
    assert refused.value.code == "INVALID_LOGIN"
    assert "Invalid username, password, security token" in refused.value.auth_message


# ------------------------------------------------------------------------------------ OAuth


def test_oauth_password_flow_logs_in(sandbox: Sandbox) -> None:
    sf = Salesforce(
        username=USERNAME,
        password="sandbox",
        consumer_key="sandbox-client",
        consumer_secret="sandbox-secret",
        session=RoutingSession(sandbox.url),
    )
    assert sf.auth_type == "password"
    assert sf.session_id.startswith(f"{ORG_ID}!")
    assert sf.query(COUNT_LEADS)["totalSize"] == 60


@pytest.mark.parametrize(
    ("password", "secret", "code"),
    [
        ("sandbox", "not-the-secret", "invalid_client_id"),
        ("wrong", "sandbox-secret", "invalid_grant"),
    ],
    ids=["bad-client-secret", "bad-password"],
)
def test_oauth_password_flow_refuses_bad_credentials(
    sandbox: Sandbox, password: str, secret: str, code: str
) -> None:
    with pytest.raises(SalesforceAuthenticationFailed) as refused:
        Salesforce(
            username=USERNAME,
            password=password,
            consumer_key="sandbox-client",
            consumer_secret=secret,
            session=RoutingSession(sandbox.url),
        )
    assert refused.value.code == code


def test_oauth_token_bodies_have_the_recorded_keys(sandbox: Sandbox) -> None:
    success_keys = set(recorded("auth_success_response"))
    error_keys = set(recorded("auth_error_response"))
    form = {
        "grant_type": "password",
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
        "username": USERNAME,
        "password": "sandboxsandbox",
    }
    with requests.Session() as http:
        http.trust_env = False
        good = http.post(f"{sandbox.url}/services/oauth2/token", data=form)
        bad = http.post(f"{sandbox.url}/services/oauth2/token", data={**form, "password": "x"})
    assert good.status_code == 200
    body = good.json()
    assert success_keys <= set(body)
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == sandbox.url
    assert body["issued_at"].isdigit()
    assert bad.status_code == 400
    assert set(bad.json()) == error_keys
    assert bad.json()["error"] == "invalid_grant"


# ------------------------------------------------------------------------------------ JWT


@pytest.fixture(scope="module")
def jwt_sandbox(key_pair: tuple[str, str]) -> Iterator[Sandbox]:
    credentials = SalesforceCredentials(jwt_public_key=key_pair[1])
    settings = SandboxSettings(
        port=0, seed=7, leads=5, salesforce=SalesforceSettings(credentials=credentials)
    )
    with Sandbox(settings) as running:
        yield running


def _jwt_login(sandbox: Sandbox, private_key: str, **overrides: str) -> Salesforce:
    arguments = {"username": USERNAME, "consumer_key": "sandbox-client", **overrides}
    return Salesforce(privatekey=private_key, session=RoutingSession(sandbox.url), **arguments)


def test_jwt_bearer_login_with_the_registered_key(
    jwt_sandbox: Sandbox, key_pair: tuple[str, str]
) -> None:
    sf = _jwt_login(jwt_sandbox, key_pair[0])
    assert sf.auth_type == "jwt-bearer"
    assert sf.session_id.startswith(f"{ORG_ID}!")
    assert sf.query(COUNT_LEADS)["totalSize"] == 5


def test_jwt_bearer_login_refuses_a_key_it_does_not_know(
    jwt_sandbox: Sandbox, other_private_key: str
) -> None:
    with pytest.raises(SalesforceAuthenticationFailed) as refused:
        _jwt_login(jwt_sandbox, other_private_key)
    assert refused.value.code == "invalid_grant"


def test_jwt_bearer_login_refuses_an_unknown_consumer(
    jwt_sandbox: Sandbox, key_pair: tuple[str, str]
) -> None:
    with pytest.raises(SalesforceAuthenticationFailed) as refused:
        _jwt_login(jwt_sandbox, key_pair[0], consumer_key="someone-else")
    assert refused.value.code == "invalid_client_id"


def test_jwt_bearer_login_refuses_an_unknown_user(
    jwt_sandbox: Sandbox, key_pair: tuple[str, str]
) -> None:
    # simple-salesforce answers "user hasn't approved this consumer" with a UserWarning that
    # tells the user to authorise the app, then raises.
    with (
        pytest.warns(UserWarning, match="self-authorize"),
        pytest.raises(SalesforceAuthenticationFailed) as refused,
    ):
        _jwt_login(jwt_sandbox, key_pair[0], username="nobody@leadsync.test")
    assert refused.value.code == "invalid_grant"


def _claims(*, expires_in: int = 180, **overrides: Any) -> dict[str, Any]:
    """An assertion's claims; `exp` is reckoned from now, when the test runs (an `exp` baked
    at import expires if the suite takes longer than that to reach the test)."""
    return {
        "iss": "sandbox-client",
        "sub": USERNAME,
        "aud": "https://login.salesforce.com",
        "exp": int(time.time()) + expires_in,
        **overrides,
    }


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        pytest.param({}, None, id="valid"),
        pytest.param({"aud": "https://test.salesforce.com"}, None, id="sandbox-audience"),
        pytest.param({"expires_in": -60}, "invalid_grant", id="expired"),
        pytest.param({"aud": "https://evil.example.com"}, "invalid_grant", id="audience"),
        pytest.param({"iss": "other-app"}, "invalid_client_id", id="issuer"),
    ],
)
def test_jwt_token_endpoint_checks_the_assertion(
    jwt_sandbox: Sandbox, key_pair: tuple[str, str], overrides: dict[str, Any], code: str | None
) -> None:
    assertion = jwt.encode(_claims(**overrides), key_pair[0], algorithm="RS256")
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    with requests.Session() as http:
        http.trust_env = False
        answer = http.post(f"{jwt_sandbox.url}/services/oauth2/token", data=form)
    if code is None:
        assert answer.status_code == 200
        assert answer.json()["access_token"].startswith(f"{ORG_ID}!")
    else:
        assert answer.status_code == 400
        assert answer.json()["error"] == code


def test_token_endpoint_refuses_unknown_grant_types(sandbox: Sandbox) -> None:
    with requests.Session() as http:
        http.trust_env = False
        answer = http.post(
            f"{sandbox.url}/services/oauth2/token", data={"grant_type": "authorization_code"}
        )
    assert answer.status_code == 400
    assert answer.json()["error"] == "unsupported_grant_type"


# ------------------------------------------------------------------------------------ session id


def test_session_id_and_instance_url_skip_login(
    salesforce: Salesforce, sandbox: Sandbox, control: requests.Session
) -> None:
    before = logins(control)
    direct = Salesforce(
        session_id=salesforce.session_id,
        instance_url=sandbox.url,
        session=RoutingSession(sandbox.url),
    )
    assert direct.auth_type == "direct"
    assert direct.query(COUNT_LEADS)["totalSize"] == 60
    assert logins(control) == before


def test_unknown_session_id_is_refused_as_expired(sandbox: Sandbox) -> None:
    direct = Salesforce(
        session_id=f"{ORG_ID}!not-a-session",
        instance_url=sandbox.url,
        session=RoutingSession(sandbox.url),
    )
    with pytest.raises(SalesforceExpiredSession) as refused:
        direct.query(COUNT_LEADS)
    assert refused.value.status == 401
    assert refused.value.content == recorded("expired_session_response")


# ------------------------------------------------------------------------------------ expiry


def test_expired_session_answers_401_invalid_session_id(
    salesforce: Salesforce, sandbox: Sandbox, control: requests.Session
) -> None:
    assert expire_sessions(control) >= 1
    with requests.Session() as http:
        http.trust_env = False
        answer = http.get(
            f"{sandbox.url}/services/data/v59.0/limits",
            headers={"Authorization": f"Bearer {salesforce.session_id}"},
        )
    assert answer.status_code == 401
    assert answer.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda sf: sf.query(COUNT_LEADS)["totalSize"], id="query"),
        pytest.param(lambda sf: len(sf.restful("limits")) > 0, id="restful"),
        pytest.param(lambda sf: sf.Lead.describe()["name"], id="sobject"),
    ],
)
def test_client_with_credentials_logs_in_again_after_expiry(
    salesforce: Salesforce, control: requests.Session, call: Any
) -> None:
    old_session = salesforce.session_id
    expected = call(salesforce)
    before = logins(control)
    expire_sessions(control)
    assert call(salesforce) == expected
    assert logins(control) == before + 1
    assert salesforce.session_id != old_session


def test_session_id_only_client_cannot_recover_from_expiry(
    salesforce: Salesforce, sandbox: Sandbox, control: requests.Session
) -> None:
    direct = Salesforce(
        session_id=salesforce.session_id,
        instance_url=sandbox.url,
        session=RoutingSession(sandbox.url),
    )
    assert direct.query(COUNT_LEADS)["totalSize"] == 60
    expire_sessions(control)
    with pytest.raises(SalesforceExpiredSession) as refused:
        direct.query(COUNT_LEADS)
    assert refused.value.content[0]["errorCode"] == "INVALID_SESSION_ID"


def test_bulk2_does_not_log_in_again_after_expiry(
    salesforce: Salesforce, control: requests.Session
) -> None:
    # sf.bulk2 calls Salesforce without simple-salesforce's re-login: the connector must.
    expire_sessions(control)
    with pytest.raises(SalesforceExpiredSession):
        list(salesforce.bulk2.Lead.query("SELECT Id FROM Lead", wait=0.05))
    salesforce.query(COUNT_LEADS)  # logs in again; a fresh sf.bulk2 takes the new session
    pages = list(salesforce.bulk2.Lead.query("SELECT Id FROM Lead", wait=0.05))
    assert sum(len(page.splitlines()) - 1 for page in pages) == 60


def test_sessions_expire_after_the_configured_timeout() -> None:
    clock = FakeClock()
    settings = SandboxSettings(
        port=0, seed=7, leads=5, salesforce=SalesforceSettings(session_timeout_seconds=60)
    )
    with Sandbox(settings, clock=clock) as running:
        sf = Salesforce(
            username=USERNAME,
            password="sandbox",
            security_token="sandbox",
            session=RoutingSession(running.url),
        )
        direct = Salesforce(
            session_id=sf.session_id, instance_url=running.url, session=RoutingSession(running.url)
        )
        clock.advance(59)
        assert direct.query(COUNT_LEADS)["totalSize"] == 5
        clock.advance(1)
        with pytest.raises(SalesforceExpiredSession):
            direct.query(COUNT_LEADS)


def test_a_zero_session_timeout_makes_every_login_useless() -> None:
    settings = SandboxSettings(
        port=0, seed=7, leads=5, salesforce=SalesforceSettings(session_timeout_seconds=0)
    )
    with Sandbox(settings) as running:
        session_id, instance = SalesforceLogin(
            username=USERNAME,
            password="sandbox",
            security_token="sandbox",
            session=RoutingSession(running.url),
        )
        direct = Salesforce(
            session_id=session_id, instance=instance, session=RoutingSession(running.url)
        )
        with pytest.raises(SalesforceExpiredSession):
            direct.query(COUNT_LEADS)
