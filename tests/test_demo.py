"""`leadsync demo`, the README's first command: a full cycle against the embedded sandbox."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_demo_syncs_both_crms_then_writes_nothing_the_second_time(tmp_path: Path) -> None:
    report = tmp_path / "demo-report.html"
    result = subprocess.run(
        [sys.executable, "-m", "leadsync.cli", "demo", "--leads", "120", "--report", str(report)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "First sync" in out
    written = re.search(r"hubspot\s+120\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+\s+(\d+)", out)
    assert written is not None, out
    assert int(written.group(1)) > 0
    assert "Second sync, nothing changed in either CRM: 0 records written, 0 handed off." in out
    handed = re.search(r"handoff: (\d+) handed off", out)
    assert handed is not None, out
    assert int(handed.group(1)) > 0
    funnel = dict(re.findall(r"^  (lead|mql|sal|sql|opportunity)\s+(\d+)", out, re.MULTILINE))
    assert set(funnel) == {"lead", "mql", "sal", "sql", "opportunity"}
    assert sum(int(count) for count in funnel.values()) > 0
    assert "Traceback" not in result.stderr
    # It ends by pointing at the report it wrote.
    assert out.rstrip().splitlines()[-3].startswith(f"Report: {report.resolve()}")
    assert report.read_text().lstrip().lower().startswith("<!doctype html>")
