"""Helpers shared by tests (import as `from tests.support import ...`)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import pytest

from leadsync.mapping.fields import load_mapping

# Tests that time real processes or threads (leases, SIGTERM, SIGKILL, replicas, the fault
# suite): under pytest-xdist (`--dist loadgroup`) they share one worker and so run one at a
# time, never two of them contending for the machine's cores at once.
REAL_PROCESSES = pytest.mark.xdist_group("real_processes")

# Recorded real Salesforce bodies (their sources and licences in INDEX.md there).
SALESFORCE_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "salesforce"


class FakeClock:
    """A wall clock that moves only when told to, for limits and timestamps in tests."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def recorded(name: str) -> Any:
    """A recorded real Salesforce response body, from tests/fixtures/salesforce."""
    return json.loads((SALESFORCE_FIXTURES / f"{name}.json").read_text())


@dataclass
class Scripted:
    """One scripted answer: a status, headers and a JSON body (or `raw` bytes, as they are);
    `drop` closes the connection unanswered, `cut` after half the body it announced."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    raw: bytes | None = None
    cut: bool = False


class ScriptedServer:
    """A real HTTP server on loopback that answers from a script, in order, and records what it
    was asked. For clients whose transport `responses` cannot intercept (urllib3)."""

    def __init__(self) -> None:
        self.script: list[Scripted] = []
        self.requests: list[tuple[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                owner.requests.append((self.command, self.path))
                answer = owner.script.pop(0) if owner.script else Scripted(500, {"message": "?"})
                if answer.drop:
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if answer.raw is not None:
                    body = answer.raw
                else:
                    body = json.dumps(answer.body).encode() if answer.body is not None else b""
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if answer.cut:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def shipped_canonical_fields() -> dict[str, str]:
    """Canonical field name -> type, from the shipped mapping: what the shipped lead
    definition is validated against in production."""
    examples = Path(__file__).resolve().parents[1] / "leadsync" / "examples"
    return load_mapping(examples / "mapping.toml").canonical_types()


def set_up_sandbox_config(sandbox: Any, folder: Path) -> Any:
    """A leadsync config pointed at `sandbox` (written into `folder`), with HubSpot's
    write-back properties created: what `leadsync sandbox --config-out` then `setup` give."""
    from leadsync.config import load_config
    from leadsync.connectors.hubspot import HubSpotConnector
    from leadsync.sandbox_config import write_sandbox_config

    path = folder / "leadsync.toml"
    write_sandbox_config(path, sandbox.url, sandbox.credentials())
    config = load_config(path)
    connector = HubSpotConnector(config.hubspot_connection())
    connector.ensure_properties()
    connector.close()
    return config


def wait_until_backfills_claimable(database_url: str, *, lease_seconds: float) -> None:
    """Wait until no backfill runs with a heartbeat fresher than `lease_seconds`: then the
    next `leadsync backfill` may claim it (`BackfillQueue.claim`'s `stale_after`), as it would
    after a fixed sleep of the lease. A runner killed before it claimed leaves nothing fresh."""
    from leadsync.sync.backfill import BackfillQueue, Status
    from leadsync.sync.store import Store

    deadline = time.monotonic() + 30 + lease_seconds
    with Store(database_url) as store:
        queue = BackfillQueue(store.engine)
        while True:
            # Judged at this moment; the claim comes later still, so never too early.
            fresh_after = datetime.now().astimezone() - timedelta(seconds=lease_seconds)
            if not any(
                found.status == Status.RUNNING
                and found.heartbeat_at is not None
                and found.heartbeat_at >= fresh_after
                for found in queue.list()
            ):
                return
            assert time.monotonic() < deadline, "a backfill's heartbeat never went stale"
            time.sleep(0.05)


def twin_of_a_linked_salesforce_lead(sandbox: Any, config: Any) -> tuple[dict[str, Any], str, str]:
    """A second Salesforce lead with the email of an open one leadsync linked (a duplicate
    review waits for once it is pulled): (the original's fields, its lead id, the twin's id)."""
    from leadsync.sync.store import Store

    with Store(config.database_url) as store:
        for original in sandbox.salesforce.snapshot("Lead"):
            if original["IsConverted"] or not original.get("Email"):
                continue
            lead_id = store.lead_ids_for("salesforce", [original["Id"]]).get(original["Id"])
            if lead_id is not None:
                break
        else:  # pragma: no cover - the seed always has some
            pytest.fail("no linked Salesforce lead")
    created = sandbox.salesforce.create_record(
        "Lead",
        {"LastName": "Twin", "Company": original["Company"], "Email": original["Email"]},
    )
    assert created.record_id is not None
    return original, lead_id, created.record_id


class Cut(BaseException):
    """Stands for the process dying: not an Exception, so nothing may catch it."""


class Tripwire:
    """Counts calls; raises Cut at call number `at`, before or after the call's work. Not
    `armed`, it counts from the first call wrapped with `arms=True` on."""

    def __init__(self, at: int | None, after: bool, *, armed: bool = True) -> None:
        self.at = at
        self.after = after
        self.calls = 0
        self.armed = armed

    def wrap(self, call: Callable[..., Any], *, arms: bool = False) -> Callable[..., Any]:
        def tripped(*args: Any, **kwargs: Any) -> Any:
            self.armed = self.armed or arms
            if not self.armed:
                return call(*args, **kwargs)
            self.calls += 1
            if self.calls == self.at and not self.after:
                raise Cut
            result = call(*args, **kwargs)
            if self.calls == self.at and self.after:
                raise Cut
            return result

        return tripped


# Fields the CRMs move on every write: equal states may differ there.
VOLATILE = frozenset({"lastmodifieddate", "LastModifiedDate", "SystemModstamp"})
# What depends on the clock, which a subprocess cannot freeze: engagement decays, and the score,
# grade, reasons and stage follow it; SLA flags follow time itself. The fit score and the
# model version do not: `mapped_state` compares them.
CLOCK_BOUND = re.compile(
    r"^leadsync_(score|engagement|grade|sla|stage)|^lifecyclestage$", re.IGNORECASE
)


class NinetySecondsAhead(datetime):
    """The wall clock of a host running 90 s ahead (its NTP broken): monkeypatched in for a
    module's `datetime`, its `now` is that host's."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> NinetySecondsAhead:
        moment = datetime.now(tz) + timedelta(seconds=90)
        return cls.fromtimestamp(moment.timestamp(), tz)


def write_calls(sandbox: Any) -> int:
    """How many calls `sandbox` answered that write (update, upsert, create, ingest)."""
    endpoints = sandbox.stats.as_dict()["endpoints"]
    return sum(
        count
        for name, count in endpoints.items()
        if "update" in name or "ingest" in name or "upsert" in name or "create" in name
    )


def crm_state(sandbox: Any) -> dict[str, Any]:
    """Every HubSpot contact's properties and Salesforce lead's fields, less VOLATILE ones.

    Leads a handoff created are keyed by their email, not their id, and without their
    creation time or leadsync's lead id (random): two runs create them in another
    order. The HubSpot link to one names that key too."""
    handed = {
        lead["Id"]: f"handoff:{str(lead['Email']).lower()}"
        for lead in sandbox.salesforce.snapshot("Lead")
        if lead.get("Leadsync_Id__c")
    }
    contacts = {
        c["id"]: {
            k: handed.get(v, v) if k == "salesforceleadid" else v
            for k, v in c["properties"].items()
            if k not in VOLATILE
        }
        for c in sandbox.hubspot.snapshot()
    }
    leads = {
        handed.get(lead["Id"], lead["Id"]): {
            k: v
            for k, v in lead.items()
            if k not in VOLATILE
            and not (lead["Id"] in handed and k in ("Id", "CreatedDate", "Leadsync_Id__c"))
            and k != "attributes"
        }
        for lead in sandbox.salesforce.snapshot("Lead")
    }
    return {"hubspot": contacts, "salesforce": leads}


def mapped_state(sandbox: Any) -> dict[str, Any]:
    """`crm_state` less what depends on leadsync's clock (scores decay, stages follow them)."""
    return {
        crm: {
            record_id: {k: v for k, v in fields.items() if not CLOCK_BOUND.search(k)}
            for record_id, fields in records.items()
        }
        for crm, records in crm_state(sandbox).items()
    }


def search_caught_up(config: Any) -> None:
    """Let the sandbox's HubSpot search catch up with every write, through the inspection
    API of the sandbox that `config` points at: the minutes between two scheduled runs, for
    tests whose runs stand for those and whose subject is not the search lag itself."""
    import requests

    base = config.hubspot_connection().base_url.rstrip("/")
    with requests.Session() as session:
        session.trust_env = False
        session.post(f"{base}/_sandbox/hubspot/settle-search", timeout=10).raise_for_status()


def caught_up_runs(config: Any, run: Callable[[Any], Any], times: int = 2) -> Any:
    """`times` runs of `run(config)`, each once the sandbox's HubSpot search has caught up with
    every write (`search_caught_up`): scheduled runs minutes apart. The last run's result."""
    result = None
    for _ in range(times):
        search_caught_up(config)
        result = run(config)
    return result


def chromium() -> str:
    """Headless Chromium's binary (Debian's `chromium`); skips without one, unless CI says
    it must be there (LEADSYNC_REQUIRE_CHROMIUM=1)."""
    found = (
        os.environ.get("LEADSYNC_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if not found:
        _missing("no Chromium: set LEADSYNC_CHROMIUM or install the chromium package")
    return found


def chromedriver() -> str:
    """The WebDriver for it (Debian's `chromium-driver`), likewise."""
    found = os.environ.get("LEADSYNC_CHROMEDRIVER") or shutil.which("chromedriver")
    if not found:
        _missing(
            "no chromedriver: set LEADSYNC_CHROMEDRIVER or install the chromium-driver package"
        )
    return found


def _missing(message: str) -> NoReturn:
    if os.environ.get("LEADSYNC_REQUIRE_CHROMIUM") == "1":
        pytest.fail(message)
    pytest.skip(message)


def pixels_near(colours: Sequence[tuple[int, Any]], hex_colour: str) -> int:
    """Pixels of a screenshot (`Image.getcolors()`) within a few levels of `hex_colour`
    (leaves room for colour management)."""
    wanted = tuple(int(hex_colour[at : at + 2], 16) for at in (1, 3, 5))
    return sum(
        count
        for count, rgb in colours
        if all(abs(got - want) <= 6 for got, want in zip(rgb, wanted, strict=True))
    )


def follow_next_hint(text: str, folder: Path, sandbox: Any) -> list[tuple[str, int]]:
    """Run, in order, the leadsync commands in backquotes of the "Next:" hint in `text` (what
    `demo` and `init` print) from `folder`, against `sandbox` (a running one: `leadsync
    sandbox --config-out FILE` points FILE at it): each command's words and exit code. A
    command without --config gets the one the hint names."""
    import shlex

    from leadsync.cli import main
    from leadsync.sandbox_config import write_sandbox_config

    hint = text[text.index("Next:") :]
    commands = [shlex.split(found) for found in re.findall(r"`(leadsync [^`]*)`", hint)]
    config = re.search(r"--config ([^\s`]+)", hint)
    assert config is not None, hint
    outcomes = []
    with contextlib.chdir(folder):
        for words in commands:
            args = words[1:]
            if args[0] == "sandbox":
                out = Path(args[args.index("--config-out") + 1])
                write_sandbox_config(out, sandbox.url, sandbox.credentials(), copies=True)
                outcomes.append((" ".join(words), 0))
                continue
            if args[0] != "init" and "--config" not in args:
                args += ["--config", config.group(1)]
            if args[0] == "apply":
                args.append("--yes")
            outcomes.append((" ".join(words), main(args)))
    return outcomes
