"""Fuzz the three files people edit, then use what `check` accepts, as an operator would.

    .venv/bin/python tools/fuzz_files.py [--mutants 1000] [--seed 0] [--run-seconds 2.5]
                                         [--out docs/FUZZ.md]

Each mutant is the shipped config, mapping or lead definition (pointed at a sandbox started
here) with one edit: a line dropped, doubled or swapped, a value replaced by one of another
type or out of range (inf, 1e30, "", in-memory SQLite, a URL with credentials, a regular
expression that backtracks for ever...), a key misspelt, junk inserted, the text cut short.
Every mutant goes through `leadsync check`; what it accepts through `check --online`; what
that accepts through `sync --once` and a brief `run` (SIGTERM after --run-seconds). Counted:
tracebacks (or "internal error" lines) anywhere, problems without a file and key or line, and
accepted mutants that fail later (sync or run exiting non-zero). The goal is 0, 0 and 0.

The test suite runs a small seeded slice of this (tests/test_fuzz_files.py); this script's
figures are in docs/FUZZ.md with the command that produced them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "leadsync" / "examples"
FILES = {
    "config": ROOT / "config.example.toml",
    "mapping": EXAMPLES / "mapping.toml",
    "definition": EXAMPLES / "lead_definition.toml",
}

# Values of other types, out of range, or dangerous: what a hurried edit or an attacker puts in.
VALUES = [
    '"x"',
    '""',
    "-1",
    "0",
    "1e9",
    "1.5",
    "true",
    "[]",
    "{}",
    '["a", 1]',
    "{ a = 1 }",
    '"1-5"',
    "2024-05-01",
    "2024-05-01T10:00:00Z",
    "nan",
    "inf",
    "-inf",
    "1e30",
    "99999999999",
    "-0.0",
    "1e-300",
    '"sqlite://"',
    '"sqlite:///:memory:"',
    '"postgresql://nohost/x"',
    '"ftp://x"',
    '"http://user:pass@example.com/x"',
    '"https://"',
    '"v59.0"',
    '"jwt"',
    '"session"',
    '"not a host!"',
    '"(unclosed"',
    "'^(\\w+\\s?)*manager$'",
    "'(a)\\1'",
    '"Closed - Converted"',
    '"prefer_nobody"',
    '"25:99"',
    '"Mars/Olympus"',
    '"\\u0000"',
]
JUNK = ["[", "]", "=", '"', "\n[fields.", "\x00", "é", "\n[[x]]\n", "#", "\n[sla]\n", "'''"]
KEY_SUFFIXES = ["_x", "s", "Z", ".extra"]
# Edits to draw from: values three times as often, the commonest mistake.
EDITS = ["drop", "double", "swap", "value", "value", "value", "key", "junk", "cut"]


def mutate(text: str, chance: random.Random) -> tuple[str, str]:
    """`text` with one edit, and what the edit was."""
    lines = text.splitlines()
    at = chance.randrange(len(lines))
    kind = chance.choice(
        ["drop", "double", "swap", "value", "value", "value", "key", "junk", "cut"]
    )
    if kind == "drop":
        return "\n".join(lines[:at] + lines[at + 1 :]), f"drop line {at + 1}"
    if kind == "double":
        return "\n".join(lines[: at + 1] + lines[at:]), f"double line {at + 1}"
    if kind == "swap":
        other = chance.randrange(len(lines))
        lines[at], lines[other] = lines[other], lines[at]
        return "\n".join(lines), f"swap lines {at + 1} and {other + 1}"
    assignments = [
        n for n, line in enumerate(lines) if "=" in line and not line.lstrip().startswith("#")
    ]
    if kind in ("value", "key") and assignments:
        at = chance.choice(assignments)
        key, rest = lines[at].split("=", 1)
        if kind == "value":
            value = chance.choice(VALUES)
            lines[at] = f"{key}= {value}"
            return "\n".join(lines), f"line {at + 1}: {key.strip()} = {value}"
        suffix = chance.choice(KEY_SUFFIXES)
        lines[at] = f"{key.rstrip()}{suffix} ={rest}"
        return "\n".join(lines), f"line {at + 1}: key {key.strip()}{suffix}"
    if kind == "junk":
        position = chance.randrange(len(text) + 1)
        junk = chance.choice(JUNK)
        return text[:position] + junk + text[position:], f"insert {junk!r} at {position}"
    cut = chance.randrange(len(text) + 1)
    return text[:cut], f"cut at {cut}"


@dataclass
class Outcome:
    """What happened to one mutant, stage by stage."""

    file: str
    edit: str
    check: int | None = None
    online: int | None = None
    sync: int | None = None
    run: int | None = None
    tracebacks: list[str] = field(default_factory=list)
    unlocated: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.online == 0

    @property
    def failed_later(self) -> bool:
        return self.accepted and (self.sync != 0 or self.run not in (0, None))


def _main(*argv: str) -> tuple[int, str]:
    """`leadsync ARGV` in this process: its exit code and all it printed."""
    from leadsync.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = main(list(argv))
        except SystemExit as exiting:
            code = int(exiting.code or 0)
        except BaseException as escaped:  # noqa: BLE001 - counted, then reported
            code = -1
            out.write(f"Traceback (escaped main): {type(escaped).__name__}: {escaped}\n")
    return code, out.getvalue()


def _bad_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "Traceback" in line or "internal error" in line]


# A problem line: "leadsync: FILE:LINE: KEY: message" or "FILE: KEY: message".
_PROBLEM = re.compile(r"^(?:leadsync: )?(/[^:]+\.toml)(?::(\d+))?: (.+)$")


def _unlocated(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        matched = _PROBLEM.match(line)
        if matched and matched.group(2) is None and ": " not in matched.group(3):
            found.append(line)  # a file, but neither a line nor a key
    return found


class Workspace:
    """A folder with the three files, the config pointed at the sandbox and at the copies."""

    def __init__(self, folder: Path, sandbox_url: str) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / "sandbox.secrets.toml", folder / "sandbox.secrets.toml")
        self.texts = {
            "config": FILES["config"]
            .read_text()
            .replace("http://127.0.0.1:8765", sandbox_url)
            .replace("leadsync/examples/", "")
            .replace("metrics_port = 9108", "metrics_port = 0")
            .replace('url = "sqlite:///leadsync.db"', 'url = "sqlite:///leadsync.db"'),
            "mapping": FILES["mapping"].read_text(),
            "definition": FILES["definition"].read_text(),
        }
        self.paths = {
            "config": folder / "config.toml",
            "mapping": folder / "mapping.toml",
            "definition": folder / "lead_definition.toml",
        }

    def write(self, name: str, text: str) -> None:
        for each, path in self.paths.items():
            path.write_text(text if each == name else self.texts[each], encoding="utf-8")
        for leftover in self.folder.glob("leadsync.db*"):
            leftover.unlink()


def _service(config: Path, seconds: float) -> tuple[int, str]:
    """`leadsync run`: once it says it is running (or after a minute), `seconds` more, then
    SIGTERM. Its exit code and what it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "leadsync.cli", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    said: list[str] = []
    running = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            said.append(line)
            if "running: sync every" in line:
                running.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        running.wait(timeout=60)
        time.sleep(seconds)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=10)
    return process.returncode, "".join(said)


def fuzz(
    workspace: Workspace,
    *,
    mutants: int,
    seed: int,
    run_seconds: float | None,
    progress: Callable[[int, Outcome], None] | None = None,
) -> Iterator[Outcome]:
    """Each mutant through check, check --online, sync --once and (with `run_seconds`) run."""
    chance = random.Random(seed)
    names = sorted(FILES)
    for number in range(mutants):
        name = names[number % len(names)]
        text, edit = mutate(workspace.texts[name], chance)
        outcome = Outcome(name, edit)
        workspace.write(name, text)
        config = str(workspace.paths["config"])
        stages: list[tuple[str, tuple[str, ...]]] = [
            ("check", ("check", "--config", config)),
            ("online", ("check", "--config", config, "--online")),
            ("sync", ("sync", "--once", "--config", config)),
        ]
        for stage, argv in stages:
            code, said = _main(*argv)
            setattr(outcome, stage, code)
            outcome.tracebacks += _bad_lines(said)
            outcome.unlocated += _unlocated(said)
            if code != 0:
                break
        if outcome.sync == 0 and run_seconds is not None:
            outcome.run, said = _service(workspace.paths["config"], run_seconds)
            outcome.tracebacks += _bad_lines(said)
        if progress is not None:
            progress(number, outcome)
        yield outcome


def summary(outcomes: list[Outcome]) -> dict[str, int]:
    return {
        "mutants": len(outcomes),
        "refused by check": sum(o.check == 2 for o in outcomes),
        "refused by check --online": sum(o.check == 0 and o.online == 2 for o in outcomes),
        "accepted": sum(o.accepted for o in outcomes),
        "synced": sum(o.sync == 0 for o in outcomes),
        "ran and stopped cleanly": sum(o.run == 0 for o in outcomes),
        "tracebacks": sum(bool(o.tracebacks) for o in outcomes),
        "problems without key or line": sum(bool(o.unlocated) for o in outcomes),
        "accepted, then failed": sum(o.failed_later for o in outcomes),
        "other exit codes at check": sum(o.check not in (0, 2) for o in outcomes),
    }


def _markdown(figures: dict[str, int], by_file: Counter[str], command: str, seconds: float) -> str:
    rows = "\n".join(f"| {name} | {count:,} |" for name, count in figures.items())
    files = ", ".join(f"{name} {count:,}" for name, count in sorted(by_file.items()))
    return f"""# Fuzzing the files people edit

`tools/fuzz_files.py` mutates the shipped config, mapping and lead definition one edit at a
time (lines dropped, doubled or swapped; values of other types, out of range or dangerous;
keys misspelt; junk inserted; text cut short) and runs each mutant through `leadsync check`,
what it accepts through `check --online` (which logs in to the sandbox and compares the
mapping with its describe), then `sync --once` and a brief `run` (SIGTERM after a few
seconds) against the sandbox. The goal: no traceback anywhere, every problem located by file
and key or line, and nothing `check` accepts failing later.

```sh
{command}
```

| what | mutants |
|---|---:|
{rows}

Mutants per file: {files}. Wall time: {seconds / 60:.1f} minutes on this two-core machine.
The test suite runs a seeded slice of the same fuzz (`tests/test_fuzz_files.py`).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-seconds", type=float, default=2.5)
    parser.add_argument("--out", type=Path, default=None, help="write the figures there")
    args = parser.parse_args(argv)
    from leadsync.config import load_config
    from leadsync.crm_setup import set_up_crms
    from leadsync.sandbox import HubSpotSettings, Sandbox, SandboxSettings

    for variable in [name for name in os.environ if name.startswith("LEADSYNC_")]:
        del os.environ[variable]  # the files alone decide
    started = time.monotonic()
    limits = HubSpotSettings(ten_second_limit=10**6, searches_per_second=10**6)
    with (
        Sandbox(SandboxSettings(port=0, seed=5, leads=60, hubspot=limits)) as sandbox,
        tempfile.TemporaryDirectory() as folder,
    ):
        workspace = Workspace(Path(folder), sandbox.url)
        workspace.write("config", workspace.texts["config"])
        set_up_crms(load_config(workspace.paths["config"]), None)

        def report(number: int, outcome: Outcome) -> None:
            flag = " TRACEBACK" if outcome.tracebacks else ""
            flag += " FAILED-LATER" if outcome.failed_later else ""
            flag += " UNLOCATED" if outcome.unlocated else ""
            print(
                f"{number + 1:>5} {outcome.file:<10} check={outcome.check} "
                f"online={outcome.online} sync={outcome.sync} run={outcome.run}{flag}  "
                f"{outcome.edit[:60]!r}",
                flush=True,
            )
            for line in [*outcome.tracebacks, *outcome.unlocated][:3]:
                print(f"        {line[:200]}", flush=True)

        outcomes = list(
            fuzz(
                workspace,
                mutants=args.mutants,
                seed=args.seed,
                run_seconds=args.run_seconds,
                progress=report,
            )
        )
    figures = summary(outcomes)
    seconds = time.monotonic() - started
    for name, count in figures.items():
        print(f"{name:<32}{count:>8,}")
    if args.out is not None:
        command = ".venv/bin/python tools/fuzz_files.py " + " ".join(
            f"--{key.replace('_', '-')} {value}"
            for key, value in vars(args).items()
            if value is not None
        )
        by_file = Counter(outcome.file for outcome in outcomes)
        args.out.write_text(_markdown(figures, by_file, command, seconds), encoding="utf-8")
        print(f"wrote {args.out}")
    failures = figures["tracebacks"] + figures["problems without key or line"]
    return 1 if failures + figures["accepted, then failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
