"""Attacks on a run recorded failed because every write to a CRM failed: the service's job
outcome, its metrics, `leadsync runs`, the report and the health check say the same."""

# ruff: noqa: F811 - `service` is a fixture imported from test_job_log, taken by name

from __future__ import annotations

import logging

import pytest

from leadsync.connectors.base import WriteResult, WriteStatus
from leadsync.jobs import Service
from leadsync.sandbox import RequestFault, Sandbox

# The in-process replica of the job log tests; pytest hands the imported fixtures in by name.
from tests.service.test_job_log import sandbox_settings, service  # noqa: F401

BATCH_UPDATE = "/crm/v3/objects/contacts/batch/update"


def _job_outcomes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        str(record.__dict__["outcome"])
        for record in caplog.records
        if record.name == "leadsync.service" and getattr(record, "job", None) == "sync"
    ]


def test_a_sync_job_whose_run_is_recorded_failed_is_a_failed_job(
    service: Service, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    # A private app without the contacts write scope: every HubSpot batch update is refused.
    sandbox.faults.fail_requests(RequestFault("POST", BATCH_UPDATE, 403))
    caplog.set_level(logging.INFO, logger="leadsync")
    service.sync()
    runs = service._runtime.store.run_log.latest(5)
    assert [run.status for run in runs] == ["failed"]
    assert "every_write_failed" in runs[0].summary
    # The job the service ran says so too: its log line, and leadsync_jobs{outcome}.
    assert _job_outcomes(caplog) == ["failed"]
    jobs = service.metrics.jobs
    assert jobs.labels("sync", "failed")._value.get() == 1
    assert jobs.labels("sync", "done")._value.get() == 0
    # And the health check does not count it as the sync that keeps it green.
    assert service._runtime.store.run_log.last_finished("sync") is None


def test_a_sync_whose_writes_all_land_after_a_failed_one_is_done_again(
    service: Service, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.faults.fail_requests(RequestFault("POST", BATCH_UPDATE, 403))
    caplog.set_level(logging.INFO, logger="leadsync")
    service.sync()
    sandbox.faults.clear_request_faults()
    service.sync()  # the refused writes are tried again, and land
    runs = service._runtime.store.run_log.latest(5)
    assert [run.status for run in runs] == ["succeeded", "failed"]
    assert _job_outcomes(caplog)[-1] == "done"


def _recorded(service: Service, results: list[WriteResult]) -> str:
    """The status the store records for a sync run whose HubSpot writes ended as `results`."""
    engine = service._runtime.engine()
    with engine.recording("sync", write=True) as summary:
        summary.crms["hubspot"].count_results(results)
    (run,) = [
        run for run in service._runtime.store.run_log.latest(50) if run.run_id == summary.run_id
    ]
    return run.status


def test_a_run_where_some_writes_were_deferred_and_others_landed_succeeded(
    service: Service,
) -> None:
    landed = WriteResult("1", WriteStatus.WRITTEN)
    locked = WriteResult("2", WriteStatus.DEFERRED, "rate_limited", "too many requests")
    refused = WriteResult("3", WriteStatus.FAILED, "validation", "bad value")
    assert _recorded(service, [landed, locked, locked]) == "succeeded"
    assert _recorded(service, [landed, refused, locked]) == "succeeded"
    assert _recorded(service, []) == "succeeded"  # nothing to write is no failure
    assert _recorded(service, [refused, locked]) == "failed"
