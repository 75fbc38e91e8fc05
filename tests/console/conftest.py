"""The console over HTTP, on a store one real sync filled from the sandbox: two users, Ada
the editor (a token) and Grace the viewer (a password), as the service would serve them."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from leadsync.config import Config, load_config
from leadsync.console.accounts import Accounts
from leadsync.console.app import console_app
from leadsync.console.passwords import hash_password
from leadsync.console.web import ConsoleContext
from leadsync.metrics import ServiceMetrics
from leadsync.runtime import Runtime, open_runtime
from leadsync.sandbox import HubSpotSettings, Sandbox, SandboxSettings
from leadsync.serving import HttpServer, service_app
from tests.support import set_up_sandbox_config

ADA_TOKEN = "ada-token-" + "7" * 40
GRACE_PASSWORD = "grace's long password"
# Cheap parameters for the tests' hash: the cost travels in the hash, and verify honours it.
GRACE_HASH = hash_password(GRACE_PASSWORD, cost=(10, 8, 1))
HUBSPOT_LINK = "https://app.hubspot.com/contacts/1234567/record/0-1/{id}"
CONSOLE = f"""
[console]
hubspot_record_url = "{HUBSPOT_LINK}"

[console.users]
ada = "editor"
grace = "viewer"
"""
ENVIRON = {
    "LEADSYNC_CONSOLE_TOKEN_ADA": ADA_TOKEN,
    "LEADSYNC_CONSOLE_PASSWORD_HASH_GRACE": GRACE_HASH,
}


@pytest.fixture(scope="session")
def synced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A config file and a database one sync of a small sandbox filled (the sandbox is gone
    afterwards: the console reads the store only)."""
    folder = tmp_path_factory.mktemp("synced")
    settings = SandboxSettings(
        port=0, seed=5, leads=40, hubspot=HubSpotSettings(ten_second_limit=100_000)
    )
    with Sandbox(settings) as sandbox:
        config: Config = set_up_sandbox_config(sandbox, folder)
        with open_runtime(config) as runtime:
            summary = runtime.engine().run()
        assert summary.crms["hubspot"].pulled > 0
    assert config.path is not None
    return config.path, config.database_url


@dataclass
class Served:
    client: TestClient
    runtime: Runtime
    config: Config

    def page(self, path: str) -> str:
        answer = self.client.get(path)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:500])
        return answer.text


def console_config(synced: tuple[Path, str], folder: Path, extra: str = CONSOLE) -> Config:
    """The synced config, on a copy of its database, with `extra` (the [console]) added."""
    path, url = synced
    database = Path(url.removeprefix("sqlite:///"))
    shutil.copy(database, folder / "leadsync.db")
    text = re.sub(
        r'url = "sqlite:///[^"]*"', f'url = "sqlite:///{folder}/leadsync.db"', path.read_text()
    )
    # The secrets file stays beside the synced config.
    text = text.replace('\nfile = "', f'\nfile = "{path.parent}/', 1)
    (folder / "leadsync.toml").write_text(text + extra)
    return load_config(folder / "leadsync.toml", environ=ENVIRON)


def service_with_console(config: Config, runtime: Runtime, *, files: Any = None) -> Any:
    """The service's app with the console on `runtime`, as `leadsync run` serves it (with
    `files`, the service's DefinitionFiles.state)."""
    assert config.model.console is not None
    metrics = ServiceMetrics(runtime.store, {}, healthy_within=timedelta(minutes=30))
    context = ConsoleContext(
        config.model.console,
        Accounts.from_config(config),
        runtime=lambda: runtime,
        replica="replica-1",
        health=metrics.health,
        files=files,
    )
    return service_app(metrics, console=console_app(context))


@contextmanager
def serve(config: Config, *, connect: bool = False) -> Iterator[Served]:
    """The console of `config` as the service serves it, on its own runtime (connected to
    the CRMs with `connect`)."""
    with open_runtime(config, connect=connect) as runtime:
        app = service_with_console(config, runtime)
        with TestClient(app, base_url="http://testserver") as client:
            yield Served(client, runtime, config)


@pytest.fixture
def served(synced: tuple[Path, str], tmp_path: Path) -> Iterator[Served]:
    with serve(console_config(synced, tmp_path)) as done:
        yield done


@pytest.fixture
def listening(synced: tuple[Path, str], tmp_path: Path) -> Iterator[int]:
    """The service with the console on a real socket (uvicorn, as `leadsync run`): its port."""
    config = console_config(synced, tmp_path)
    with open_runtime(config, connect=False) as runtime:
        server = HttpServer(service_with_console(config, runtime), host="127.0.0.1", port=0)
        server.start()
        try:
            yield server.port
        finally:
            server.stop()


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in(client: TestClient, user: str, secret: str, *, next_path: str = "") -> Any:
    form = client.get("/console/login" + (f"?next={next_path}" if next_path else ""))
    assert form.status_code == 200
    return client.post(
        "/console/login",
        data={"user": user, "secret": secret, "csrf": csrf_of(form.text), "next": next_path},
        follow_redirects=False,
    )


@pytest.fixture
def ada(served: Served) -> Served:
    """Signed in as Ada, the editor."""
    assert sign_in(served.client, "ada", ADA_TOKEN).status_code == 303
    return served


@pytest.fixture
def grace(served: Served) -> Served:
    """Signed in as Grace, the viewer."""
    assert sign_in(served.client, "grace", GRACE_PASSWORD).status_code == 303
    return served
