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
        f"Next: edit them, then `leadsync check --config {config}`, `leadsync plan --what-if "
        f"--config {config}` and `leadsync apply --config {config}`. To try them against the "
        f"local sandbox: `leadsync sandbox --config-out {config}` (changes only its URLs, "
        "user and secrets file, and writes the sandbox's secrets beside it)."
    )
    return EXIT_OK
