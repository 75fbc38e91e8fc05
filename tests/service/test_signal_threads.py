"""A SIGTERM to the service is honoured whichever of its threads the kernel hands it to.

The kernel delivers a process's signal to any thread not blocking it; Python runs its handler
in the main thread, but only once that thread runs again. A main thread blocked in an untimed
wait (the service's, for the stop) would never: the replica went on running its jobs until
the supervisor's timeout killed it (seen once in the queued-backfill test)."""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import sys
from pathlib import Path

import pytest

from leadsync.sandbox import Sandbox, SandboxSettings
from tests.service.test_service import (
    OPEN_LIMITS,
    Replica,
    free_port,
    replicas,  # noqa: F401 - the fixture
    service_config,
    succeeded,
    wait_for,
)
from tests.support import REAL_PROCESSES

pytestmark = REAL_PROCESSES

# tgkill(2), which signals one thread of a process, by architecture (Linux).
TGKILL = {"x86_64": 234, "aarch64": 131}.get(platform.machine())


def signal_thread(pid: int, thread: int, signum: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(TGKILL, pid, thread, signum) != 0:
        raise OSError(ctypes.get_errno(), f"tgkill({pid}, {thread}, {signum})")


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or TGKILL is None,
    reason="tgkill(2) signals one thread: Linux on x86_64 or aarch64",
)
def test_a_sigterm_handed_to_another_thread_stops_the_service_cleanly(
    tmp_path: Path,
    replicas: list[Replica],  # noqa: F811
) -> None:
    with Sandbox(SandboxSettings(port=0, seed=3, leads=60, hubspot=OPEN_LIMITS)) as sandbox:
        config = service_config(sandbox, tmp_path, port=free_port())
        replicas.append(replica := Replica(config, tmp_path))
        wait_for(lambda: succeeded(config, at_least=2), timeout=60, message="two syncs")
        others = [int(t) for t in os.listdir(f"/proc/{replica.pid}/task") if int(t) != replica.pid]
        assert others  # the scheduler's, the heartbeat's, the metrics server's
        signal_thread(replica.pid, others[-1], signal.SIGTERM)
        assert replica.process.wait(timeout=20) == 0
        assert "SIGTERM: finishing the batch in hand" in replica.log()
        assert "stopped cleanly" in replica.log()
