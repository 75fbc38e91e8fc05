"""`leadsync run`, `leadsync db upgrade|downgrade` and `leadsync hash-password`: running the
service."""

from __future__ import annotations

import argparse
import sys

from leadsync.cli.common import add_config_option, load
from leadsync.errors import EXIT_OK, UsageError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run",
        help="the service: scheduled syncs, SLA checks, the nightly sweep, queued backfills",
        description="Run the scheduled jobs until SIGTERM or SIGINT. Several replicas may run "
        "against one PostgreSQL: each job runs on one of them at a time.",
    )
    add_config_option(run)
    run.set_defaults(handler=run_service)

    hash_password = commands.add_parser(
        "hash-password",
        help="a console user's password hash, for LEADSYNC_CONSOLE_PASSWORD_HASH_<USER>",
        description="Ask for a password (twice on a terminal; one line from standard input "
        "otherwise) and print its scrypt hash, to set as LEADSYNC_CONSOLE_PASSWORD_HASH_<USER>.",
    )
    hash_password.set_defaults(handler=run_hash_password)

    db = commands.add_parser(
        "db",
        help="database maintenance",
        description="Database maintenance. `db upgrade` creates or migrates the database; "
        "`db downgrade --to REVISION` migrates it back for an older release.",
    )
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_commands.add_parser(
        "upgrade",
        help="create or migrate the database",
        description="Create the database the config names, or migrate it to this version's "
        "schema. Safe to run again: an up-to-date database is left as it is.",
    )
    add_config_option(upgrade)
    upgrade.set_defaults(handler=run_db_upgrade)
    downgrade = db_commands.add_parser(
        "downgrade",
        help="migrate the database back to an older release's revision",
        description="Migrate the database down to REVISION, the newest revision of the older "
        "release that is to run on it (the one it names when it refuses the store), in one "
        "transaction. Stop every replica of the service first. It prints the revisions it "
        "undoes before it starts.",
    )
    downgrade.add_argument(
        "--to",
        metavar="REVISION",
        help="the revision to go back to: its id (0016_expected_row_stamps) or a start of it "
        "(0016); required",
    )
    add_config_option(downgrade)
    downgrade.set_defaults(handler=run_db_downgrade)


def run_service(args: argparse.Namespace) -> int:
    from leadsync.jobs import Service

    return Service(load(args)).run()


def run_hash_password(args: argparse.Namespace) -> int:
    from getpass import getpass

    from leadsync.console.passwords import hash_password

    if sys.stdin.isatty():
        password = getpass("password: ")
        if getpass("again: ") != password:
            raise UsageError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        raise UsageError("a console password needs at least 12 characters")
    print(hash_password(password))
    return EXIT_OK


def run_db_upgrade(args: argparse.Namespace) -> int:
    from leadsync.sync.database import shown_url, upgrade_database

    config = load(args)
    upgrade_database(config.database_url)
    print(f"database at {shown_url(config.database_url)} is up to date")
    return EXIT_OK


def run_db_downgrade(args: argparse.Namespace) -> int:
    from leadsync.sync.database import (
        downgrade_database,
        known_revisions,
        revision_named,
        shown_url,
    )

    if not args.to:
        # Undoing revisions may drop what a newer release stored: never a default.
        raise UsageError(
            "say which revision to go back to, --to REVISION (the newest of the release to "
            f"run): one of {', '.join(known_revisions())}"
        )
    to = revision_named(args.to)
    config = load(args)
    shown = shown_url(config.database_url)

    said: set[str] = set()

    def announce(current: str, undo: list[str]) -> None:
        # Once: a transaction retried after a transient error comes here again.
        line = f"the store at {shown} is at {current}: undoing {', '.join(undo)}"
        if undo and line not in said:
            print(line)
            said.add(line)

    if downgrade_database(config.database_url, to, before=announce):
        print(f"the store at {shown} is at {to}: the release whose newest revision it is can run")
    else:
        print(f"the store at {shown} is at {to} already: nothing done")
    return EXIT_OK
