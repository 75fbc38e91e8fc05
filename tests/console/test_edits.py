"""The Edits page over HTTP: the version running against the files on disk, their problems,
the what-if of the difference, and apply with compare-and-swap, by an editor only, audited."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from leadsync.config import load_config
from leadsync.edits import apply_edit, running_version
from leadsync.jobs import DefinitionFiles
from leadsync.sandbox_config import EXAMPLES
from tests.console.conftest import (
    ADA_TOKEN,
    ENVIRON,
    GRACE_PASSWORD,
    Served,
    console_config,
    csrf_of,
    serve,
    service_with_console,
    sign_in,
)
from tests.console.test_pages import audit, text_of

PAGE = "/console/edits"
MQL = '{ field = "score", gte = 60 }'


@pytest.fixture
def editable(synced: tuple[Path, str], tmp_path: Path) -> Iterator[Served]:
    """The console on the synced store, its mapping and definition copies it may edit."""
    config = console_config(synced, tmp_path)
    assert config.path is not None
    text = config.path.read_text()
    for name in ("mapping.toml", "lead_definition.toml"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
        text = text.replace(str(EXAMPLES / name), str(tmp_path / name))
    config.path.write_text(text)
    with serve(load_config(config.path, environ=ENVIRON)) as served:
        yield served


def _edit(served: Served, old: str, new: str) -> None:
    path = served.config.definition_path
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_an_editor_sees_the_diff_and_what_if_then_applies_and_it_is_audited(
    editable: Served,
) -> None:
    store = editable.runtime.store
    first = apply_edit(editable.config, store.engine, by="first start")
    assert sign_in(editable.client, "ada", ADA_TOKEN).status_code == 303
    assert "The files on disk are the version running." in text_of(editable.page(PAGE))
    _edit(editable, MQL, MQL.replace("60", "30"))
    page = editable.page(PAGE)
    assert "The files on disk differ from the version running" in text_of(page)
    assert '-  { field = "score", gte = 60 },' in page.replace("&#34;", '"')
    assert '+  { field = "score", gte = 30 },' in page.replace("&#34;", '"')
    assert 'id="apply"' not in page  # only once the what-if was shown
    shown = editable.page(f"{PAGE}?what_if=1")
    text = text_of(shown)
    assert "stored leads re-evaluated from the store (no CRM called)" in text
    assert "lead → mql:" in text
    answer = editable.client.post(
        f"{PAGE}/apply",
        data={
            "csrf": csrf_of(shown),
            "disk_digest": _field(shown, "disk_digest"),
            "running_digest": first.digest,
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303
    after = running_version(store.engine)
    assert after is not None
    assert after.accepted_by == "console:ada"
    assert after.digest != first.digest
    assert "The files on disk are the version running." in text_of(
        editable.client.get(answer.headers["location"]).text
    )
    assert audit(editable) == [
        (
            "ada",
            "edit.apply",
            after.short,
            {"digest": after.digest, "model_version": after.model_version},
        )
    ]


def test_apply_refuses_files_changed_since_the_what_if_or_another_version_applied(
    editable: Served,
) -> None:
    store = editable.runtime.store
    first = apply_edit(editable.config, store.engine, by="first start")
    assert sign_in(editable.client, "ada", ADA_TOKEN).status_code == 303
    _edit(editable, MQL, MQL.replace("60", "30"))
    shown = editable.page(f"{PAGE}?what_if=1")
    previewed = _field(shown, "disk_digest")
    _edit(editable, MQL.replace("60", "30"), MQL.replace("60", "35"))
    stale = editable.client.post(
        f"{PAGE}/apply",
        data={"csrf": csrf_of(shown), "disk_digest": previewed, "running_digest": first.digest},
    )
    assert stale.status_code == 409
    assert "the files changed since the plan" in text_of(stale.text)
    again = editable.page(f"{PAGE}?what_if=1")
    apply_edit(editable.config, store.engine, by="cli:grace")  # someone else, meanwhile
    _edit(editable, MQL.replace("60", "35"), MQL.replace("60", "40"))
    raced = editable.client.post(
        f"{PAGE}/apply",
        data={
            "csrf": csrf_of(again),
            "disk_digest": _field(again, "disk_digest"),
            "running_digest": first.digest,
        },
    )
    assert raced.status_code == 409
    assert running_version(store.engine).accepted_by == "cli:grace"  # type: ignore[union-attr]
    assert audit(editable) == []


def test_files_with_mistakes_are_listed_and_cannot_be_applied(editable: Served) -> None:
    apply_edit(editable.config, editable.runtime.store.engine, by="first start")
    assert sign_in(editable.client, "ada", ADA_TOKEN).status_code == 303
    _edit(editable, "[scoring]\n", "[scoring\n")
    page = editable.page(PAGE)
    assert "The files on disk have 1 mistake(s)" in text_of(page)
    assert str(editable.config.definition_path) in text_of(page)
    refused = editable.client.post(
        f"{PAGE}/apply", data={"csrf": csrf_of(page), "disk_digest": "", "running_digest": ""}
    )
    assert refused.status_code == 400
    assert audit(editable) == []


def test_a_viewer_sees_the_edits_but_cannot_apply(editable: Served) -> None:
    first = apply_edit(editable.config, editable.runtime.store.engine, by="first start")
    assert sign_in(editable.client, "grace", GRACE_PASSWORD).status_code == 303
    _edit(editable, MQL, MQL.replace("60", "30"))
    shown = editable.page(f"{PAGE}?what_if=1")
    assert 'id="apply"' not in shown
    refused = editable.client.post(
        f"{PAGE}/apply",
        data={"csrf": csrf_of(shown), "disk_digest": "x", "running_digest": first.digest},
    )
    assert refused.status_code == 403
    assert running_version(editable.runtime.store.engine) == first


def test_apply_without_this_sessions_token_is_refused(editable: Served) -> None:
    first = apply_edit(editable.config, editable.runtime.store.engine, by="first start")
    assert sign_in(editable.client, "ada", ADA_TOKEN).status_code == 303
    _edit(editable, MQL, MQL.replace("60", "30"))
    shown = editable.page(f"{PAGE}?what_if=1")
    refused = editable.client.post(
        f"{PAGE}/apply",
        data={"disk_digest": _field(shown, "disk_digest"), "running_digest": first.digest},
    )
    assert refused.status_code == 403
    assert running_version(editable.runtime.store.engine) == first


def _field(page: str, name: str) -> str:
    marker = f'name="{name}" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def test_the_status_page_says_which_version_runs_and_whether_the_files_differ(
    editable: Served,
) -> None:
    files = DefinitionFiles(editable.config)
    _, definition = files.bind(editable.runtime.store)  # the service's first start
    running = running_version(editable.runtime.store.engine)
    assert running is not None
    app = service_with_console(editable.config, editable.runtime, files=files.state)
    with TestClient(app, base_url="http://testserver") as client:
        assert sign_in(client, "grace", GRACE_PASSWORD).status_code == 303

        def card() -> str:
            page = client.get("/console/")
            assert page.status_code == 200
            return page.text.split("<h2>Mapping and lead definition</h2>")[1].split("</div>")[0]

        same = card()
        assert f"model {definition.model_version}" in text_of(same)
        assert f"version {running.short} , as applied" in text_of(same)
        assert "The files on disk are the ones running." in text_of(same)
        _edit(editable, MQL, MQL.replace("60", "30"))
        differ = card()
        assert f"model {definition.model_version}" in text_of(differ)
        assert "The files on disk differ from the version running" in text_of(differ)
        assert f'<a href="{PAGE}">' in differ  # where to see the difference and apply it
        _edit(editable, MQL.replace("60", "30"), MQL.replace("60", "'sixty'"))
        wrong = card()
        assert "The files on disk have mistakes" in text_of(wrong)
        assert f'<a href="{PAGE}">' in wrong
