"""`leadsync init`: the three files a team edits, written into its own folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from leadsync.errors import EXIT_OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = commands.add_parser(
        "init",
        help="write config.toml, mapping.toml and lead_definition.toml into a folder, to edit",
        description="Write a config, the field mapping and the lead definition (copies of the "
        "shipped examples) into FOLDER, the config naming the other two by relative paths. "
        "Replaces no file unless --force: exit 2 naming the file that is there.",
    )
    init.add_argument(
        "folder",
        nargs="?",
        type=Path,
        default=Path("."),
        metavar="FOLDER",
        help="where the files go, created if missing (default: the current folder)",
    )
    init.add_argument("--force", action="store_true", help="replace files that are there")
    init.set_defaults(handler=run_init)


def run_init(args: argparse.Namespace) -> int:
    from leadsync.sandbox_config import write_starter  # the config stack: lazily

    written = write_starter(args.folder, force=args.force)
    print(f"wrote {', '.join(str(path) for path in written)}")
    config = written[0]
    print(
        "Next: to try them against the local sandbox, `leadsync sandbox --config-out "
        f"{config}` (it keeps running; it changes only the config's URLs, user and secrets "
        f"file), then `leadsync setup --config {config}` once (it creates the HubSpot "
        "properties leadsync writes: `plan` and `sync` refuse to run without them), "
        f"`leadsync check --config {config}`, `leadsync plan --config {config}` and `leadsync "
        f"sync --once --config {config}`. After each edit of the mapping or the definition: "
        "`leadsync check`, `leadsync plan --what-if` and `leadsync apply`, each with "
        f"`--config {config}`."
    )
    return EXIT_OK
