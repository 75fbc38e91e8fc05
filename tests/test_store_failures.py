"""A database that fails (damaged, empty, locked, unreachable, gone mid-run) ends a command with
exit 1 and one line naming the cause and the database, its password masked; `--debug` adds the
traceback. Nothing of a statement's parameters (customers' emails) is ever printed."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import leadsync.sync.database as database_module
from leadsync.cli import main
from leadsync.sandbox import FaultSpec, HubSpotSettings, Sandbox, SandboxSettings
from tests.support import REAL_PROCESSES, set_up_sandbox_config


def _config(sandbox: Sandbox, folder: Path, database: str) -> Path:
    config = set_up_sandbox_config(sandbox, folder)
    assert config.path is not None
    text = re.sub(r'url = "sqlite:///[^"]*"', f'url = "{database}"', config.path.read_text())
    config.path.write_text(text)
    return config.path


def _leadsync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leadsync.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("leadsync: ")]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        pytest.param(b"not a database at all " * 500, "file is not a database", id="damaged"),
        pytest.param(b"", "is an empty file, not a leadsync database", id="empty"),
    ],
)
def test_a_bad_sqlite_file_is_one_line_and_exit_1_and_debug_shows_the_traceback(
    sandbox: Sandbox, tmp_path: Path, content: bytes, cause: str
) -> None:
    database = tmp_path / "leadsync.db"
    database.write_bytes(content)
    config = _config(sandbox, tmp_path, f"sqlite:///{database}")
    done = _leadsync("sync", "--once", "--config", str(config))
    assert done.returncode == 1
    line = _one_line(done.stderr)
    assert cause in line
    assert str(database) in line
    # Nothing was taken for a new database: the file is as it was.
    assert database.read_bytes() == content
    debug = _leadsync("--debug", "sync", "--once", "--config", str(config))
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr


def test_a_sqlite_file_that_cannot_be_created_is_one_line_not_an_internal_error(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Its folder cannot be made (a file stands in the way; a read-only or missing mount
    # fails the same way): a run-time failure naming the database, not "a bug in leadsync".
    (tmp_path / "not-a-folder").write_text("")
    database = tmp_path / "not-a-folder" / "leadsync.db"
    config = _config(sandbox, tmp_path, f"sqlite:///{database}")
    assert main(["sync", "--once", "--config", str(config)]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "internal error" not in line
    assert f"cannot create the SQLite database {database}" in line


def test_a_sqlite_file_locked_by_another_process_is_one_line(
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    database = tmp_path / "leadsync.db"
    config = _config(sandbox, tmp_path, f"sqlite:///{database}")
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    # In-process, with a short lock wait: every retry of every transaction waits it out in
    # full, ~25 s at the shipped wait, and what is under test is the message, not the wait.
    monkeypatch.setattr(database_module, "SQLITE_LOCK_WAIT_SECONDS", 0.05)
    capsys.readouterr()
    holder = sqlite3.connect(database, timeout=0)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        code = main(["sync", "--once", "--config", str(config)])
    finally:
        holder.close()
    assert code == 1
    line = _one_line(capsys.readouterr().err)
    assert "database is locked" in line
    assert "another process holds it" in line


def test_postgresql_down_at_start_is_one_line_with_the_password_masked(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    with socket_nobody_listens_on() as port:
        url = f"postgresql+psycopg://leadsync:hunter2secret@127.0.0.1:{port}/leadsync"
        config = _config(sandbox, tmp_path, url)
        done = _leadsync("sync", "--once", "--config", str(config))
    assert done.returncode == 1
    line = _one_line(done.stderr)
    assert f"postgresql+psycopg://leadsync:***@127.0.0.1:{port}/leadsync" in line
    assert "hunter2secret" not in done.stderr + done.stdout
    assert "is the database server running?" in line


def test_a_password_in_the_database_urls_query_is_masked_too(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # libpq takes the password as a query parameter as well as in the userinfo.
    with socket_nobody_listens_on() as port:
        url = f"postgresql+psycopg://leadsync@127.0.0.1:{port}/leadsync?password=hunter2secret"
        config = _config(sandbox, tmp_path, url)
        assert main(["sync", "--once", "--config", str(config)]) == 1
    captured = capsys.readouterr()
    line = _one_line(captured.err)
    assert f"database postgresql+psycopg://leadsync@127.0.0.1:{port}/leadsync?password=***" in line
    assert "hunter2secret" not in captured.err + captured.out


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_db_upgrade_names_the_database_without_the_password_in_its_query(
    sandbox: Sandbox, tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = sa.make_url(database_url)
    with_password = url.update_query_dict({"password": "hunter2secret"})
    config = _config(sandbox, tmp_path, with_password.render_as_string(hide_password=False))
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "password=***" in out
    assert "hunter2secret" not in out


@REAL_PROCESSES
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_gone_mid_run_is_one_line_without_parameters(
    tmp_path: Path, database_url: str
) -> None:
    settings = SandboxSettings(
        port=0,
        seed=5,
        leads=400,
        hubspot=HubSpotSettings(ten_second_limit=10**6, searches_per_second=10**6),
        faults=FaultSpec.parse("latency=40ms"),
    )
    with Sandbox(settings) as sandbox:
        config = _config(sandbox, tmp_path, database_url)
        assert _leadsync("db", "upgrade", "--config", str(config)).returncode == 0
        worker = subprocess.Popen(
            [sys.executable, "-m", "leadsync.cli", "sync", "--once", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        engine = sa.create_engine(database_url)
        try:
            deadline = time.monotonic() + 60
            # Once the run has saved records, the database goes: its tables vanish under it.
            while True:
                with engine.connect() as connection:
                    saved = connection.execute(sa.text("SELECT count(*) FROM snapshots")).scalar()
                if saved or worker.poll() is not None:
                    break
                assert time.monotonic() < deadline
                time.sleep(0.05)
            with engine.begin() as connection:
                schema = connection.execute(sa.text("SELECT current_schema()")).scalar()
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
                connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        finally:
            engine.dispose()
        _, err = worker.communicate(timeout=120)
    assert worker.returncode == 1, err
    line = _one_line(err)
    assert "database postgresql+psycopg://" in line
    assert "[parameters" not in err
    assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", err.replace("@127.0.0.1", ""))


class socket_nobody_listens_on:  # noqa: N801 - reads as the context it is
    """A loopback port bound but never listened on: connections to it are refused."""

    def __enter__(self) -> int:
        import socket

        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        return int(self._socket.getsockname()[1])

    def __exit__(self, *_: object) -> None:
        self._socket.close()


@pytest.mark.parametrize("command", [["sync", "--once"], ["status"], ["db", "upgrade"]])
def test_a_store_naming_two_revisions_is_one_line_and_exit_1_and_left_as_it_was(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    # A leadsync store's alembic_version holds one row: two (a restore or a tool gone wrong)
    # make no schema this leadsync may read, newer or older.
    database = tmp_path / "leadsync.db"
    config = _config(sandbox, tmp_path, f"sqlite:///{database}")
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    with sqlite3.connect(database) as db:
        db.execute("INSERT INTO alembic_version VALUES ('0015_own_write_stamps')")
    before = database.read_bytes()
    capsys.readouterr()
    assert main([*command, "--config", str(config)]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "names 2 revisions (0015_own_write_stamps, 0020_backfill_checkpoints)" in line
    assert str(database) in line
    assert database.read_bytes() == before
