"""Mistakes in the files people edit, reported the same way everywhere.

A `ConfigProblem` names the file, the key (dotted, as in the TOML) and, where it can be found,
the line. `ConfigError` carries all the problems of a load at once, so `leadsync check` lists
every one and every command exits 2 without a traceback.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leadsync.errors import ConfigError

__all__ = ["ConfigError", "ConfigProblem", "locate_key", "parse_toml", "read_text", "read_toml"]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One mistake in a file the user edits."""

    file: str
    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


def locate_key(text: str, dotted: str) -> int | None:
    """The line of `text` (a TOML document) that defines the key `dotted`, if it can be found.

    Reads only what config files use: `[table]` headers and `key = value` lines.
    """
    if not text or not dotted:
        return None
    *tables, key = dotted.split(".")
    table = ".".join(tables)
    current = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = re.fullmatch(r"\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?", line)
        if header:
            current = header.group(1)
            if current == dotted:
                return number
            continue
        assigned = re.match(r"([A-Za-z0-9_\-\"']+)\s*=", line)
        if assigned and current == table and assigned.group(1).strip("\"'") == key:
            return number
    return None


def read_text(path: Path) -> str:
    """A file the user edits, as text; a ConfigError naming it when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(str(path), "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as problem:
        raise ConfigError([ConfigProblem(str(path), "", f"cannot read: {problem}")]) from None


def parse_toml(text: str, *, file: str) -> dict[str, Any]:
    """`text` parsed as TOML; a ConfigError naming `file` and the line when it is not.

    tomllib says "at end of document" for a text cut short, which is its last line.
    """
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as problem:
        message = str(problem)
        found = re.search(r"line (\d+)", message)
        line = int(found.group(1)) if found else max(1, len(text.splitlines()))
        raise ConfigError([ConfigProblem(file, "", f"not valid TOML: {message}", line)]) from None


def read_toml(path: Path) -> tuple[str, dict[str, Any]]:
    """The text and the parsed table of a TOML file the user edits."""
    text = read_text(path)
    return text, parse_toml(text, file=str(path))
