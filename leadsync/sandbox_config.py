"""The files a user starts from: `leadsync init FOLDER` and `leadsync sandbox --config-out FILE`.

`init` writes a config, the field mapping and the lead definition into the user's folder, the
last two copied from the shipped examples, so every file the config names is the user's to edit
(never the installed package's). `sandbox --config-out` writes a config pointed at a running
sandbox, its secrets file, and the same copies beside it where none is there yet.

The sandbox's credentials are public defaults, but they still go into a secrets file of their
own beside the config, the way real ones must: the config file never holds a secret.

A config that is there already is the user's: `sandbox --config-out` changes in it only the keys
that point it at the sandbox (its URLs, its user, its secrets file), line by line, and keeps
everything else, its database first of all. What it cannot change that way it refuses.
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from leadsync.config import (
    HUBSPOT_TOKEN_VAR,
    SALESFORCE_PASSWORD_VAR,
    SALESFORCE_TOKEN_VAR,
    SECRETS_FILE_VAR,
)
from leadsync.errors import UsageError
from leadsync.problems import FILE_ENCODING

# The shipped mapping and lead definition: what `init` copies (and tests read as they ship).
EXAMPLES = Path(__file__).resolve().parent / "examples"
MAPPING = "mapping.toml"
DEFINITION = "lead_definition.toml"
# Where `leadsync sandbox` listens by default, and the user its Salesforce knows.
SANDBOX_URL = "http://127.0.0.1:8765"
SANDBOX_USERNAME = "sandbox@leadsync.test"


def write_starter(folder: Path, *, force: bool = False) -> list[Path]:
    """`leadsync init`: config.toml, mapping.toml and lead_definition.toml in `folder`.

    Refuses (UsageError, naming the file) to replace a file that is there, unless `force`."""
    config = folder / "config.toml"
    written = [config, folder / MAPPING, folder / DEFINITION]
    if not force:
        for path in written:
            if path.exists():
                raise UsageError(f"{path} exists; leadsync init replaces no file (--force does)")
    folder.mkdir(parents=True, exist_ok=True)
    for path in written[1:]:
        shutil.copyfile(EXAMPLES / path.name, path)
    secrets = (
        "# A TOML file of the variables above, outside version control (the environment wins).\n"
        "# `leadsync sandbox --config-out` writes one for the sandbox.\n"
        '# file = "config.secrets.toml"'
    )
    header = (
        "# leadsync config, written by `leadsync init`. As it stands it points at the local\n"
        "# sandbox (`leadsync sandbox`); for production, point [hubspot] and [salesforce] at the\n"
        "# real CRMs and use PostgreSQL. Keys left out take their defaults.\n"
        "#\n"
        "# Secrets never go in this file: leadsync reads them from the environment\n"
        f"# ({HUBSPOT_TOKEN_VAR}, {SALESFORCE_PASSWORD_VAR},\n"
        f"# {SALESFORCE_TOKEN_VAR}) or from the file named under [secrets]\n"
        f"# (or in {SECRETS_FILE_VAR})."
    )
    config.write_text(
        _config_text(header, SANDBOX_URL, SANDBOX_USERNAME, "leadsync.db", secrets),
        encoding="utf-8",
    )
    return written


def write_sandbox_config(
    path: Path,
    url: str,
    credentials: Mapping[str, Mapping[str, str]],
    *,
    copies: bool = False,
) -> list[Path]:
    """Write `path` and `<stem>.secrets.toml` beside it; returns the paths written.

    With `copies` (what `leadsync sandbox --config-out` does), the config names a mapping and a
    lead definition beside it, copied from the examples where none is there yet (a file the user
    edited is kept); without, it names the shipped examples themselves (tests and benchmarks).

    A config or secrets file that is there keeps all it holds but the keys pointing it at the
    sandbox (its database too); one that cannot be changed so is refused (UsageError, naming
    it), before anything is written."""
    secrets_path = path.with_name(f"{path.stem}.secrets.toml")
    hubspot, salesforce = credentials["hubspot"], credentials["salesforce"]
    secret_values = {
        HUBSPOT_TOKEN_VAR: hubspot["access_token"],
        SALESFORCE_PASSWORD_VAR: salesforce["password"],
        SALESFORCE_TOKEN_VAR: salesforce["security_token"],
    }
    if path.exists():
        config_text, files = _pointed_at_sandbox(path, url, salesforce["username"], secrets_path)
    else:
        header = f"# leadsync config for the local sandbox at {url}, written by `leadsync sandbox`."
        config_text = _config_text(
            header,
            url,
            salesforce["username"],
            path.with_suffix(".db").name,
            f'file = "{secrets_path.name}"',
            files=None if copies else EXAMPLES,
        )
        files = [path.parent / MAPPING, path.parent / DEFINITION]
    if secrets_path.exists():
        secrets_text = _edited(secrets_path, {("", key): v for key, v in secret_values.items()})
    else:
        secrets_text = (
            "# The local sandbox's public default credentials (see `leadsync sandbox`).\n"
        )
        secrets_text += "".join(f"{key} = {_quoted(v)}\n" for key, v in secret_values.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    written = [path, secrets_path]
    if copies:
        # The files the config names beside it, where none is there yet.
        for copy in files:
            beside = copy.parent == path.parent and copy.name in (MAPPING, DEFINITION)
            if beside and not copy.exists():
                shutil.copyfile(EXAMPLES / copy.name, copy)
                written.append(copy)
    secrets_path.write_text(secrets_text, encoding="utf-8")
    path.write_text(config_text, encoding="utf-8")
    return written


def _pointed_at_sandbox(
    path: Path, url: str, username: str, secrets_path: Path
) -> tuple[str, list[Path]]:
    """The text of the config at `path` pointed at the sandbox, and the mapping and lead
    definition it names. Its database, sections and comments stay as the user has them."""
    if not path.is_file():
        raise _refused(path, "it is not a file")
    named = _parsed(path, path.read_text(encoding=FILE_ENCODING))
    own_secrets = _table(named, "secrets").get("file")
    if own_secrets is not None and (path.parent / str(own_secrets)) != secrets_path:
        raise _refused(
            path,
            f"it names a secrets file of its own ({own_secrets}), which the sandbox's "
            "credentials must not replace",
        )
    text = _edited(
        path,
        {
            ("hubspot", "base_url"): url,
            ("salesforce", "auth"): "password",
            ("salesforce", "instance_url"): url,
            ("salesforce", "username"): username,
            ("secrets", "file"): secrets_path.name,
        },
    )
    files = _table(named, "files")
    return text, [
        path.parent / str(files.get("mapping", MAPPING)),
        path.parent / str(files.get("definition", DEFINITION)),
    ]


def _edited(path: Path, values: Mapping[tuple[str, str], str]) -> str:
    """The text of the TOML file at `path` with each (table, key) set to its string value:
    the line of a key there has its value replaced (its comment kept), a key not there goes
    at the top of its table, a table not there at the end. Proven by parsing the result:
    those keys changed, nothing else did; else refused (a layout this cannot follow, such as
    dotted keys or inline tables)."""
    text = path.read_text(encoding=FILE_ENCODING) if path.is_file() else ""
    before = _parsed(path, text)
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    for (table, key), value in values.items():
        _set(lines, table, key, _quoted(value))
    result = "".join(lines)
    try:
        after: dict[str, Any] | None = tomllib.loads(result)
    except tomllib.TOMLDecodeError:
        after = None
    expected = json.loads(json.dumps(before, default=str))
    for (table, key), value in values.items():
        if table and not isinstance(expected.setdefault(table, {}), dict):
            raise _refused(path, f"its {table} is not a table")
        (expected[table] if table else expected)[key] = value
    if after is None or json.loads(json.dumps(after, default=str)) != expected:
        raise _refused(
            path, "its layout (dotted keys, inline tables) cannot be changed line by line"
        )
    return result


def _set(lines: list[str], table: str, key: str, value: str) -> None:
    """`key = value` in `table` ("": the top level) of the TOML `lines`."""
    current = ""
    # Where a key not there goes: below its table's header; at the top level, above the
    # first header (below the file's opening comments).
    insert_at = None if table else len(lines)
    for index, line in enumerate(lines):
        header = _HEADER.match(line)
        if header:
            if not table and insert_at == len(lines):
                insert_at = index
            # An array of tables is never the table sought.
            current = header.group(2).strip() if header.group(1) == "[" else "[["
            if current == table and insert_at is None:
                insert_at = index + 1
            continue
        pair = _PAIR.match(line)
        if current == table and pair and pair.group(2) == key:
            lines[index] = f"{pair.group(1)}{value}{pair.group(3) or ''}\n"
            return
    if insert_at is None:
        lines.append(f"\n[{table}]\n{key} = {value}\n")
    else:
        lines.insert(insert_at, f"{key} = {value}\n")


# `[table]` or `[[array]]`; `key = "value"  # comment`.
_HEADER = re.compile(r"^\s*(\[\[?)([^\[\]]+)\]\]?\s*(?:#.*)?$")
_PAIR = re.compile(
    r'^(\s*([A-Za-z0-9_-]+)\s*=\s*)(?:"(?:[^"\\]|\\.)*"|\'[^\']*\'|[^#\s]+)(\s*#.*)?$'
)


def _table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    found = data.get(name)
    return found if isinstance(found, Mapping) else {}


def _quoted(value: str) -> str:
    return json.dumps(value)  # a TOML basic string for any text a CRM URL or name holds


def _parsed(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as problem:
        raise _refused(path, f"it is not valid TOML ({problem})") from None


def _refused(path: Path, why: str) -> UsageError:
    return UsageError(
        f"{path} is there and is kept as it is: {why}; give --config-out a new file name, "
        "or remove this one"
    )


def _config_text(
    header: str, url: str, username: str, database: str, secrets: str, *, files: Path | None = None
) -> str:
    """The config both write; `files` is the folder of the mapping and the lead definition,
    None for the config's own (the config reads relative paths from its folder)."""
    mapping, definition = (
        (MAPPING, DEFINITION) if files is None else (files / MAPPING, files / DEFINITION)
    )
    return f"""{header}

[database]
# SQLite beside this file; production: "postgresql+psycopg://leadsync@db.internal/leadsync".
url = "sqlite:///{database}"

[files]
# RevOps' files, relative to this file's folder: `leadsync check`, then `leadsync plan
# --what-if`, then `leadsync apply` after each edit.
mapping = "{mapping}"
definition = "{definition}"

[secrets]
{secrets}

[hubspot]
base_url = "{url}"                  # production: "https://api.hubapi.com"

[salesforce]
auth = "password"                   # "password", "jwt" or "session"
instance_url = "{url}"              # production: "https://yourorg.my.salesforce.com"
username = "{username}"
"""
