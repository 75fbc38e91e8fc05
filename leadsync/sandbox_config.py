"""The files a user starts from: `leadsync init FOLDER` and `leadsync sandbox --config-out FILE`.

`init` writes a config, the field mapping and the lead definition into the user's folder, the
last two copied from the shipped examples, so every file the config names is the user's to edit
(never the installed package's). `sandbox --config-out` writes a config pointed at a running
sandbox, its secrets file, and the same copies beside it where none is there yet.

The sandbox's credentials are public defaults, but they still go into a secrets file of their
own beside the config, the way real ones must: the config file never holds a secret.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from leadsync.config import (
    HUBSPOT_TOKEN_VAR,
    SALESFORCE_PASSWORD_VAR,
    SALESFORCE_TOKEN_VAR,
    SECRETS_FILE_VAR,
)
from leadsync.errors import UsageError

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
    edited is kept); without, it names the shipped examples themselves (tests and benchmarks)."""
    secrets_path = path.with_name(f"{path.stem}.secrets.toml")
    hubspot, salesforce = credentials["hubspot"], credentials["salesforce"]
    path.parent.mkdir(parents=True, exist_ok=True)
    written = [path, secrets_path]
    if copies:
        files = path.parent
        for name in (MAPPING, DEFINITION):
            if not (files / name).exists():
                shutil.copyfile(EXAMPLES / name, files / name)
                written.append(files / name)
    secrets_path.write_text(
        "# The local sandbox's public default credentials (see `leadsync sandbox`).\n"
        f'{HUBSPOT_TOKEN_VAR} = "{hubspot["access_token"]}"\n'
        f'{SALESFORCE_PASSWORD_VAR} = "{salesforce["password"]}"\n'
        f'{SALESFORCE_TOKEN_VAR} = "{salesforce["security_token"]}"\n',
        encoding="utf-8",
    )
    header = f"# leadsync config for the local sandbox at {url}, written by `leadsync sandbox`."
    path.write_text(
        _config_text(
            header,
            url,
            salesforce["username"],
            path.with_suffix(".db").name,
            f'file = "{secrets_path.name}"',
            files=None if copies else EXAMPLES,
        ),
        encoding="utf-8",
    )
    return written


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
