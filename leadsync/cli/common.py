"""What every command group shares: argument types, the config option, signals."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from leadsync.config import Config


def share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def day(text: str) -> datetime:
    try:
        parsed = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    return datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)


def add_config_option(parser: argparse.ArgumentParser, *, nested: bool = False) -> None:
    """`--config FILE`; `nested` for a sub-subcommand whose parent has it too, so that the
    parent's value is not overwritten by the child's default."""
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        default=argparse.SUPPRESS if nested else None,
        help="config file (default: $LEADSYNC_CONFIG, else ./config.toml if present)",
    )


def confirm(question: str) -> bool:
    """Ask on a terminal; True for y or yes."""
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def load(args: argparse.Namespace) -> Config:
    """The config the command names, with logging set up as it says."""
    # Imported here: `leadsync --help` must not pay for the config's validation stack.
    from leadsync.config import load_config
    from leadsync.logs import configure_logging

    config = load_config(config_path(args))
    settings = config.model.logging
    configure_logging(level=settings.level, format=settings.format)
    return config


def config_path(args: argparse.Namespace) -> Path | None:
    if args.config is not None:
        return Path(args.config)
    if os.environ.get("LEADSYNC_CONFIG"):
        return Path(os.environ["LEADSYNC_CONFIG"])
    default = Path("config.toml")
    return default if default.exists() else None


def stop_on_signals() -> threading.Event:
    """An event set by the first SIGINT or SIGTERM: work stops at the next batch boundary."""
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            raise KeyboardInterrupt
        print("stopping after the batch in hand (again to stop at once)", file=sys.stderr)
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return stopping
