"""`leadsync run`, `leadsync db upgrade` and `leadsync hash-password`: running the service."""

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
        description="Database maintenance. `db upgrade` creates or migrates the database.",
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
