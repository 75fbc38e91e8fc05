"""The sandbox driven by clients leadsync does not use: jsforce and @hubspot/api-client for Node.

"The official clients work against it unchanged" would otherwise hold only for the two Python
clients leadsync chose. The clients are installed from the npm registry into the repository's
ignored `.cache/second-clients/`, pinned by tests/second_clients/package-lock.json, on the
first run and again whenever the lock changes. Where `node` or `npm` is missing, or the
registry cannot be reached, the test skips and says why; CI sets LEADSYNC_REQUIRE_NODE=1, and
there it fails instead, so it never silently stops running.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from leadsync.sandbox import Sandbox, SandboxSettings
from leadsync.sandbox.salesforce_bulk import IN_PROGRESS_POLLS
from leadsync.sandbox.schema import LEAD_STATUSES

# One worker installs and drives the clients: two installing into one folder at once would race.
pytestmark = pytest.mark.xdist_group("second_clients")

HERE = Path(__file__).resolve().parent / "second_clients"
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "second-clients"
LEADS = 450  # more than two query pages of 200


def _unavailable(reason: str) -> None:
    if os.environ.get("LEADSYNC_REQUIRE_NODE") == "1":
        pytest.fail(f"LEADSYNC_REQUIRE_NODE=1 but {reason}")
    pytest.skip(reason)


def _installed_clients() -> Path:
    """The cache folder with the locked clients installed (installing them when needed)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are needed to run the Node clients (apt-get install nodejs npm)")
    problem = install_clients(CACHE, npm)
    if problem is not None:
        _unavailable(f"npm ci of the Node clients failed: {problem}")
    shutil.copyfile(HERE / "drive.mjs", CACHE / "drive.mjs")
    return CACHE


@contextmanager
def clients_lock(cache: Path, *, exclusive: bool) -> Iterator[None]:
    """Held exclusively to install into `cache`, shared to run from it: one process's install
    never renames a `cache` away under another's running node (their files went with it)."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.parent / f".{cache.name}.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield


def install_clients(cache: Path, npm: str) -> str | None:
    """Make `cache` hold the locked clients, unless it does already (its stamp says so);
    None when it does, else why not. npm installs into a folder of its own beside `cache`,
    renamed to `cache` only once complete and stamped: an install killed half-way leaves
    at most a stray folder, never a `cache` a later run would trust. Installs take turns."""
    with clients_lock(cache, exclusive=True):
        return _install(cache, npm)


def _install(cache: Path, npm: str) -> str | None:
    lock = (HERE / "package-lock.json").read_bytes()
    digest = hashlib.sha256(lock + (HERE / "package.json").read_bytes()).hexdigest()
    stamp = cache / ".lock-sha256"
    if stamp.exists() and stamp.read_text() == digest and (cache / "node_modules").is_dir():
        return None
    cache.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{cache.name}-", dir=cache.parent))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(HERE / name, building / name)
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=building,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if installed.returncode != 0:
            return installed.stderr.strip()[-500:] or f"npm exited {installed.returncode}"
        (building / stamp.name).write_text(digest)
        stale = cache.with_name(f"{building.name}-stale")
        if cache.exists():
            cache.rename(stale)
        building.rename(cache)
        shutil.rmtree(stale, ignore_errors=True)
        return None
    finally:
        shutil.rmtree(building, ignore_errors=True)


# Session-scoped, not module-scoped: under xdist other modules' tests run between this one's
# on its worker, and a module fixture was torn down and the clients driven again after them.
# The tests only read what it returns.
@pytest.fixture(scope="session")
def driven() -> dict[str, Any]:
    """What each client call returned, driving a fresh sandbox once for the module."""
    folder = _installed_clients()
    with (
        clients_lock(folder, exclusive=False),
        Sandbox(SandboxSettings(port=0, seed=7, leads=LEADS)) as sandbox,
    ):
        ran = subprocess.run(
            ["node", "drive.mjs", sandbox.url],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"},
        )
        # Node exits 13, saying nothing, when a request never gets an answer (an await that
        # never settles): a body the sandbox could not read, say.
        assert ran.returncode == 0, f"node exited {ran.returncode}: {ran.stderr[-3000:]}"
        result: dict[str, Any] = json.loads(ran.stdout)
        result["sandbox"] = {
            "leads": {lead["Id"]: lead for lead in sandbox.salesforce.snapshot("Lead")},
            "contacts": {c["id"]: c["properties"] for c in sandbox.hubspot.snapshot()},
            "hubspot_ids": sorted((c["id"] for c in sandbox.hubspot.snapshot()), key=int),
            "endpoints": sandbox.stats.as_dict()["endpoints"],
        }
    assert "error" not in result, result["error"]
    return result


def _fake_npm(folder: Path, name: str, script: str) -> str:
    npm = folder / name
    npm.write_text(f"#!/bin/sh\n{script}\n")
    npm.chmod(0o755)
    return str(npm)


def test_an_install_killed_half_way_leaves_no_cache_a_later_run_trusts(tmp_path: Path) -> None:
    cache = tmp_path / ".cache" / "second-clients"
    # npm ci that has written part of node_modules when it is killed.
    killed = _fake_npm(tmp_path, "killed-npm", "mkdir -p node_modules/jsforce && kill -9 $$")
    assert install_clients(cache, killed) is not None
    assert not cache.exists()
    # The next run installs again, and only a complete install is trusted after it.
    calls = tmp_path / "calls"
    good = _fake_npm(tmp_path, "npm", f"echo ci >> {calls} && mkdir -p node_modules/jsforce")
    assert install_clients(cache, good) is None
    assert (cache / "node_modules" / "jsforce").is_dir()
    assert install_clients(cache, killed) is None  # trusted: npm not run again
    assert calls.read_text() == "ci\n"
    strays = [p.name for p in cache.parent.iterdir() if not p.name.endswith(".lock")]
    assert strays == ["second-clients"]  # no strays
    # node_modules went (a clean-up); the reinstall is killed half-way: its part is not
    # taken for the whole, though the stamp of the lock still matches.
    shutil.rmtree(cache / "node_modules")
    assert install_clients(cache, killed) is not None
    assert not (cache / "node_modules").exists()
    assert install_clients(cache, good) is None
    assert calls.read_text() == "ci\nci\n"


def test_jsforce_logs_in_and_pages_a_query(driven: dict[str, Any]) -> None:
    salesforce = driven["salesforce"]
    assert salesforce["login"]["organizationId"].startswith("00D")
    query = salesforce["query"]
    assert query["pages"] == [200, 200, 50]
    assert query["totalSize"] == LEADS
    assert len(set(query["ids"])) == LEADS


def test_jsforce_describes_the_lead(driven: dict[str, Any]) -> None:
    described = driven["salesforce"]["describe"]
    fields = dict(described["fields"])
    assert (fields["Email"], fields["City"], fields["AnnualRevenue"]) == (
        "email",
        "string",
        "currency",
    )
    assert described["status"] == list(LEAD_STATUSES)


def test_jsforce_collection_update_reports_each_record(driven: dict[str, Any]) -> None:
    collection = driven["salesforce"]["collection"]
    a, b, c = collection["ids"]
    results = collection["results"]
    assert [(r["id"], r["success"]) for r in results] == [(a, True), (b, False), (c, True)]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert collection["after"] == [[a, "jsforce A"], [c, "jsforce C"]]


def test_jsforce_bulk_query_and_ingest_wait_for_their_jobs(driven: dict[str, Any]) -> None:
    salesforce = driven["salesforce"]
    assert salesforce["bulkQuery"]["rows"] == LEADS
    a, _, c = salesforce["collection"]["ids"]
    assert sorted(salesforce["bulkIngest"]["successful"]) == sorted([a, c])
    assert salesforce["bulkIngest"]["failed"] == 0
    assert salesforce["bulkIngest"]["after"] == [[a, "bulk A"], [c, "bulk C"]]
    assert driven["sandbox"]["leads"][a]["Title"] == "bulk A"
    # Each job answered InProgress to its first polls: jsforce polled on until it completed
    # (one job of each kind, so every status poll is that job's).
    endpoints = driven["sandbox"]["endpoints"]
    assert IN_PROGRESS_POLLS > 0
    for polled in ("salesforce.bulk.query_info", "salesforce.bulk.ingest_info"):
        assert endpoints[polled] == IN_PROGRESS_POLLS + 1


def test_the_node_hubspot_client_pages_every_contact(driven: dict[str, Any]) -> None:
    listed = driven["hubspot"]["list"]
    assert listed["ids"] == driven["sandbox"]["hubspot_ids"]
    assert listed["calls"] == 5  # 100 a page


def test_the_node_hubspot_client_reads_properties(driven: dict[str, Any]) -> None:
    properties = dict(driven["hubspot"]["properties"])
    assert (properties["city"], properties["lifecyclestage"], properties["closedate"]) == (
        "string",
        "enumeration",
        "datetime",
    )


def test_the_node_hubspot_client_batch_updates_and_meets_a_whole_batch_refusal(
    driven: dict[str, Any],
) -> None:
    hubspot = driven["hubspot"]
    first, second = driven["sandbox"]["hubspot_ids"][:2]
    assert hubspot["batchUpdate"] == {"status": "COMPLETE", "ids": sorted([first, second])}
    refused = hubspot["batchRefused"]
    assert (refused["refused"], refused["code"]) == (True, 400)
    assert refused["body"]["category"] == "VALIDATION_ERROR"
    # Refused whole: the good input of the refused batch was not written either.
    assert hubspot["readBack"] == "Node A"
    assert driven["sandbox"]["contacts"][first]["jobtitle"] == "Node A"


def test_the_node_hubspot_client_searches_and_pages(driven: dict[str, Any]) -> None:
    search = driven["hubspot"]["search"]
    with_email = [i for i, c in driven["sandbox"]["contacts"].items() if c.get("email")]
    assert search["total"] == len(with_email)
    assert search["ids"] == sorted(with_email, key=int)[:5]
    # The properties asked for, and those HubSpot always adds: no others.
    assert search["properties"] == ["createdate", "email", "hs_object_id", "lastmodifieddate"]
    assert search["next"] == "5"
