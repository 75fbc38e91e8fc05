"""`leadsync status` and `leadsync apply`: which version runs, and accepting an edit after
its check and its what-if."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from leadsync.cli import main
from leadsync.config import Config
from leadsync.edits import running_version
from leadsync.sync.store import Store
from tests.cli.conftest import EXAMPLES, MQL_SCORE, on_a_terminal, with_definition


def _status(config: Config, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["status", "--json", "--config", str(config.path)]) == 0
    body: dict[str, Any] = json.loads(capsys.readouterr().out)
    return body


def _lowered(config: Config, folder: Path, score: int = 30) -> Config:
    shipped = (EXAMPLES / "lead_definition.toml").read_text()
    return with_definition(
        config, shipped.replace(MQL_SCORE, MQL_SCORE.replace("gte = 60", f"gte = {score}")), folder
    )


def test_status_and_apply_from_first_version_to_an_edit(
    config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(config.path)
    assert main(["sync", "--once", "--config", path]) == 0
    before = _status(config, capsys)
    assert before["running"] is None
    assert before["files_differ"] is True
    assert main(["status", "--config", path]) == 0
    assert "running: nothing applied yet" in capsys.readouterr().out
    assert main(["apply", "--yes", "--config", path]) == 0
    assert "applied version" in capsys.readouterr().out
    first = _status(config, capsys)
    assert first["running"]["accepted_by"].startswith("cli:")
    assert first["files_differ"] is False
    assert main(["apply", "--yes", "--config", path]) == 0
    assert "the files on disk are the version running" in capsys.readouterr().out
    # An edit: status says the files differ; apply shows its what-if, then accepts it.
    edited = _lowered(config, tmp_path)
    assert _status(edited, capsys)["files_differ"] is True
    assert main(["status", "--config", path]) == 0
    assert "files on disk: changed since" in capsys.readouterr().out
    assert main(["apply", "--yes", "--json", "--config", path]) == 0
    body = json.loads(capsys.readouterr().out)
    assert any(move["to"] == "mql" for move in body["what_if"]["stage_moves"])
    assert body["applied"]["model_version"] != first["running"]["model_version"]
    after = _status(edited, capsys)
    assert after["running"]["digest"] == body["applied"]["digest"]
    assert after["files_differ"] is False


def test_status_says_plainly_that_nothing_is_applied_yet_and_labels_each_hash(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(config.path)
    before = _status(config, capsys)
    assert main(["status", "--config", path]) == 0
    out = capsys.readouterr().out
    # Nothing applied: nothing for the files to differ from.
    assert "differ" not in out
    assert "running: nothing applied yet" in out
    disk = before["disk_digest"][:12]
    assert f"files on disk: files version {disk} (a digest of the two files), not applied" in out
    assert main(["apply", "--yes", "--config", path]) == 0
    running = _status(config, capsys)["running"]
    assert main(["status", "--config", path]) == 0
    out = capsys.readouterr().out
    assert (
        f"running: files version {running['digest'][:12]}, scoring model version "
        f"{running['model_version']}, applied"
    ) in out


def test_a_file_with_mistakes_is_not_applied_and_status_lists_them(
    config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(config.path)
    assert main(["apply", "--yes", "--config", path]) == 0
    broken = with_definition(
        config,
        (EXAMPLES / "lead_definition.toml").read_text().replace("[scoring]\n", "[scoring\n"),
        tmp_path,
    )
    capsys.readouterr()
    assert main(["apply", "--yes", "--config", path]) == 2
    assert f"{broken.definition_path}:" in capsys.readouterr().err
    status = _status(broken, capsys)
    assert status["problems"]
    assert status["running"]["accepted_by"].startswith("cli:")
    assert main(["status", "--config", path]) == 0
    assert "files on disk: 1 problem(s); the version above runs" in capsys.readouterr().out


def test_apply_on_a_terminal_asks_and_a_no_applies_nothing(
    config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["apply", "--yes", "--config", str(config.path)]) == 0
    _lowered(config, tmp_path)
    with Store(config.database_url) as store:
        running = running_version(store.engine)
    done = on_a_terminal(config, "apply", answer="n")
    assert done.returncode == 1, done.stderr
    assert "what-if over " in done.stdout
    assert "apply these files? [y/N]" in done.stdout
    assert "not applied" in done.stderr
    with Store(config.database_url) as store:
        assert running_version(store.engine) == running


def test_a_replica_that_loses_the_race_to_accept_the_first_version_runs_the_winners(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Replicas started together each see no version and try to accept their files; the one
    # whose compare-and-swap loses must run the version the other accepted, not exit.
    import leadsync.edits as edits

    edited = _lowered(config, tmp_path)
    with Store(config.database_url) as store:
        winner = edits.apply_edit(edited, store.engine, by="replica a", expect_running="")
        seen = iter([None])
        real = edits.running_version
        monkeypatch.setattr(edits, "running_version", lambda engine: next(seen, real(engine)))
        loser = edits.accept_first(config, store.engine)
    assert loser.digest == winner.digest
    assert loser.accepted_by == "replica a"
