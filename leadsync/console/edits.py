"""The console's Edits page: the mapping and lead definition as they run and as they are on
disk (a diff), `check`'s problems, the what-if of the difference, and apply, on the functions
behind `leadsync status`, `plan --what-if` and `leadsync apply`.

Apply compares and swaps: the form carries the digests of the files whose what-if the editor
saw and of the version running then; if either changed since, nothing is applied.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from urllib.parse import urlencode

from starlette.responses import RedirectResponse, Response

from leadsync.console.web import Visit
from leadsync.edits import EditStatus, StaleEditError, apply_edit, disk_files, edit_status
from leadsync.errors import ConfigError
from leadsync.sync.whatif import WhatIf, what_if

__all__ = ["apply_files", "edits"]

DIFF_CONTEXT = 2


def edits(visit: Visit, *, problem: str = "", status_code: int = 200) -> Response:
    runtime = visit.runtime()
    status = edit_status(runtime.config, runtime.store.engine)
    found: WhatIf | None = None
    if visit.request.query_params.get("what_if") and status.differs and not status.problems:
        field_map, definition = disk_files(runtime.config)
        # The files on disk over the stored leads, with no connection: no CRM is called.
        trial = replace(runtime, field_map=field_map, definition=definition, connectors={})
        found = what_if(trial.engine(), runtime.store, field_map)
    return visit.render(
        "edits.html",
        status_code=status_code,
        page="edits",
        status=status,
        diffs=_diffs(status),
        what_if=found,
        problem=problem,
        notice=visit.request.query_params.get("done", ""),
    )


def apply_files(visit: Visit) -> Response:
    runtime = visit.runtime()
    try:
        version = apply_edit(
            runtime.config,
            runtime.store.engine,
            by=f"console:{visit.user.name}",
            expect_disk=visit.field("disk_digest"),
            expect_running=visit.field("running_digest"),
        )
    except StaleEditError as stale:
        return edits(visit, problem=str(stale), status_code=409)
    except ConfigError as mistakes:
        return edits(visit, problem=f"the files have mistakes: {mistakes}", status_code=400)
    visit.audit(
        "edit.apply",
        version.short,
        {"digest": version.digest, "model_version": version.model_version},
    )
    done = (
        f"applied version {version.short} (model {version.model_version}): "
        "every replica's next job runs it"
    )
    return RedirectResponse(f"{visit.path('edits')}?{urlencode({'done': done})}", 303)


def _diffs(status: EditStatus) -> list[tuple[str, list[str]]]:
    """Per file, the unified diff from the version running to the file on disk."""
    running = status.running
    if running is None or not status.differs:
        return []
    pairs = (
        ("mapping", running.mapping, status.mapping_text),
        ("lead definition", running.definition, status.definition_text),
    )
    found = []
    for name, before, after in pairs:
        lines = list(
            difflib.unified_diff(
                before.splitlines(),
                after.splitlines(),
                fromfile=f"{name}, running",
                tofile=f"{name}, on disk",
                n=DIFF_CONTEXT,
                lineterm="",
            )
        )
        if lines:
            found.append((name, lines))
    return found
