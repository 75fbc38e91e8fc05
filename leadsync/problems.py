"""Mistakes in the files people edit, reported the same way everywhere.

A `ConfigProblem` names the file, the key (dotted, as in the TOML) and, where it can be found,
the line. `ConfigError` carries all the problems of a load at once, so `leadsync check` lists
every one and every command exits 2 without a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


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


class ConfigError(Exception):
    """Raised with every problem found; the CLI prints them and exits 2."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = list(problems)


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
        header = re.fullmatch(r"\[\[?\s*([^\]]+?)\s*\]\]?", line)
        if header:
            current = header.group(1)
            if current == dotted:
                return number
            continue
        assigned = re.match(r"([A-Za-z0-9_\-\"']+)\s*=", line)
        if assigned and current == table and assigned.group(1).strip("\"'") == key:
            return number
    return None
