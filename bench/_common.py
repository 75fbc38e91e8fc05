"""Helpers shared by the benchmarks in `bench/`: the sandbox as a server process, HTTP set-up,
statistics, the machine description and the Markdown section each benchmark writes.

Benchmarks run the sandbox as a separate process, the way leadsync meets it: its CPU time can
then be read from /proc and told apart from the benchmark's own.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import requests

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = REPO / "docs" / "BENCHMARKS.md"
LEADSYNC = Path(sys.executable).with_name("leadsync")

# Limits high enough never to be met: a benchmark measures speed, not the CRMs' quotas.
UNLIMITED = 1_000_000_000
# The config's HubSpot pacing at the highest it accepts (check refuses more than 1,000,000):
# benchmarks measure leadsync, not its pacing.
UNPACED = f"requests_per_ten_seconds = {10**6}\nsearches_per_second = {10**6}\n"
NO_LIMITS = {
    "hubspot_ten_second_limit": UNLIMITED,
    "hubspot_daily_limit": UNLIMITED,
    "hubspot_searches_per_second": UNLIMITED,
    "salesforce_daily_limit": UNLIMITED,
}

HUBSPOT_TOKEN = "sandbox-token"  # noqa: S105 - the sandbox's documented fake credential
SALESFORCE_LOGIN = {
    "grant_type": "password",
    "client_id": "sandbox-client",
    "client_secret": "sandbox-secret",
    "username": "sandbox@leadsync.test",
    "password": "sandboxsandbox",  # password + security token, as the password grant wants
}

MB = 1_000_000  # memory is reported in decimal megabytes, so "1 GB" means 1,000 MB

_BANNER_END = "Stop with"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------ statistics


@dataclass(frozen=True, slots=True)
class Spread:
    """The median of several runs with their minimum and maximum."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        samples = list(values)
        return cls(statistics.median(samples), min(samples), max(samples))


def figure_text(value: float) -> str:
    """A figure with the digits a benchmark table needs: about three, thousands split."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


# ------------------------------------------------------------------------------------ processes


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; the fields after its ")" are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS


def memory_bytes(pid: int, field: str) -> int:
    """A memory figure from /proc/<pid>/status: "VmRSS" (now) or "VmHWM" (peak RSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"/proc/{pid}/status has no {field}")


def stop_process(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """Terminate a child, then kill it if it has not stopped within `grace` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)


class SandboxServer:
    """`leadsync sandbox` as a child process with every limit raised; a context manager.

    It listens on a port the OS picks (`--port 0`) and the URL is read from its banner, so two
    benchmarks never race for a port. Stderr goes to a file: a pipe nobody reads could fill and
    stall the server.
    """

    def __init__(self, leads: int, *, seed: int = 42, extra_args: Sequence[str] = ()) -> None:
        self.leads = leads
        self.seed = seed
        self.extra_args = list(extra_args)
        self.url = ""
        self.banner_seconds = 0.0  # from spawning the process to its "Stop with" line
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "the server is not running"
        return self._process.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss(self) -> int:
        return memory_bytes(self.pid, "VmHWM")

    def start(self, timeout: float = 120.0) -> SandboxServer:
        if self._process is not None:
            raise RuntimeError("the sandbox server is already running")
        command = [
            str(LEADSYNC),
            "sandbox",
            "--port",
            "0",
            "--seed",
            str(self.seed),
            "--leads",
            str(self.leads),
            "--hubspot-rate-limit",
            str(UNLIMITED),
            # A benchmark's runs stand for scheduled runs minutes apart, by which time HubSpot's
            # search has caught up with every write: no lag, so each run measures the changes
            # it is meant to (how leadsync copes with the lag is proven by the tests).
            "--search-lag-ms",
            "0",
            *self.extra_args,
        ]
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        started = time.perf_counter()
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._stderr, cwd=REPO
        )
        try:
            banner = self._read_banner(started + timeout)
            self.banner_seconds = time.perf_counter() - started
            found = re.search(r"http://\S+", banner)
            if found is None:
                raise RuntimeError(f"no URL in the sandbox banner:\n{banner}")
            self.url = found.group(0)
            answer = http_session().post(f"{self.url}/_sandbox/limits", json=NO_LIMITS, timeout=30)
            answer.raise_for_status()
        except BaseException:
            # `with` calls __exit__ only once __enter__ has returned: stop the child here.
            self.stop()
            raise
        return self

    def _read_banner(self, deadline: float) -> str:
        # Read raw bytes with select() so a server that hangs or dies fails the benchmark
        # with its stderr instead of blocking it forever.
        assert self._process is not None
        assert self._process.stdout is not None
        stdout = self._process.stdout.fileno()
        text = b""
        while _BANNER_END.encode() not in text:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise RuntimeError(f"the sandbox printed no banner in time:\n{self._errors()}")
            ready, _, _ = select.select([stdout], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(stdout, 65536)
            if not chunk:
                raise RuntimeError(f"the sandbox exited before its banner:\n{self._errors()}")
            text += chunk
        return text.decode("utf-8", "replace")

    def _errors(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-4000:]

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> SandboxServer:
        return self if self._process is not None else self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# ------------------------------------------------------------------------------------ HTTP


def http_session() -> requests.Session:
    """One keep-alive session that ignores proxy settings from the environment: the sandbox is
    local, and a proxy would measure itself."""
    session = requests.Session()
    session.trust_env = False
    return session


def hubspot_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {HUBSPOT_TOKEN}"}


def salesforce_headers(session: requests.Session, url: str) -> dict[str, str]:
    """Log in with the OAuth password grant; the headers for every later Salesforce call."""
    answer = session.post(f"{url}/services/oauth2/token", data=SALESFORCE_LOGIN, timeout=30)
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def expect(answer: requests.Response, status: int) -> Any:
    """The JSON of an answer with the expected status; anything else stops the benchmark, since
    a throttled or failed call would make the figures lie."""
    if answer.status_code != status:
        raise RuntimeError(
            f"{answer.request.method} {answer.url} answered {answer.status_code}, "
            f"not {status}: {answer.text[:500]}"
        )
    return answer.json()


# ------------------------------------------------------------------------------------ reporting


def machine() -> str:
    """One line naming what the figures were measured on."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    today = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; {today}"
    )


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, body: str, *, intro: str, path: Path = BENCHMARKS_MD) -> None:
    """Put `body` between `<!-- name:start -->` and `<!-- name:end -->` in `path`, leaving the
    rest of the file alone. A missing file starts with `intro`; a file without the markers gets
    the section appended."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else intro.strip() + "\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ------------------------------------------------------------------------------------ results

RESULTS_FOLDER = "bench-results"


def results_path(section: str, markdown: Path = BENCHMARKS_MD) -> Path:
    """Where a section's figures are kept machine-readable: beside the Markdown file, in
    `bench-results/<section>.json` (docs/bench-results/ for docs/BENCHMARKS.md)."""
    return markdown.parent / RESULTS_FOLDER / f"{section}.json"


def figure(name: str, value: float, *, unit: str, note: str = "", **scale: int) -> dict[str, Any]:
    """One figure of a results file: its name, value and unit, and the scale it was measured
    at (`leads=100_000`, say), which a target set at one scale checks before it judges."""
    return {"name": name, "value": value, "unit": unit, "scale": scale, "note": note}


def save_results(
    section: str,
    figures: Sequence[Mapping[str, Any]],
    *,
    command: str,
    markdown: Path = BENCHMARKS_MD,
    measured_at: datetime | None = None,
) -> Path:
    """Write a section's figures (see `figure`) to its results file, replacing the last ones:
    what `bench/run_all.py` assembles the targets section from."""
    path = results_path(section, markdown)
    when = measured_at or datetime.now(UTC)
    document = {
        "section": section,
        "command": command,
        "machine": machine(),
        "measured_at": when.isoformat(timespec="seconds"),
        "figures": list(figures),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path
