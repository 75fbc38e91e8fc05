"""`leadsync sandbox --config-out FILE`: a config pointed at a running sandbox.

The sandbox's credentials are public defaults, but they still go into a secrets file of their
own beside the config, the way real ones must: the config file never holds a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from leadsync.config import HUBSPOT_TOKEN_VAR, SALESFORCE_PASSWORD_VAR, SALESFORCE_TOKEN_VAR

# The shipped mapping and lead definition, to start from; copy them to edit.
EXAMPLES = Path(__file__).resolve().parent / "examples"


def write_sandbox_config(
    path: Path, url: str, credentials: Mapping[str, Mapping[str, str]]
) -> list[Path]:
    """Write `path` and `<stem>.secrets.toml` beside it; returns both paths."""
    secrets_path = path.with_name(f"{path.stem}.secrets.toml")
    hubspot, salesforce = credentials["hubspot"], credentials["salesforce"]
    path.parent.mkdir(parents=True, exist_ok=True)
    secrets_path.write_text(
        "# The local sandbox's public default credentials (see `leadsync sandbox`).\n"
        f'{HUBSPOT_TOKEN_VAR} = "{hubspot["access_token"]}"\n'
        f'{SALESFORCE_PASSWORD_VAR} = "{salesforce["password"]}"\n'
        f'{SALESFORCE_TOKEN_VAR} = "{salesforce["security_token"]}"\n',
        encoding="utf-8",
    )
    path.write_text(
        f"""# leadsync config for the local sandbox at {url}, written by `leadsync sandbox`.

[database]
url = "sqlite:///{path.with_suffix(".db").name}"

[files]
mapping = "{EXAMPLES / "mapping.toml"}"
definition = "{EXAMPLES / "lead_definition.toml"}"

[secrets]
file = "{secrets_path.name}"

[hubspot]
base_url = "{url}"

[salesforce]
auth = "password"
instance_url = "{url}"
username = "{salesforce["username"]}"
""",
        encoding="utf-8",
    )
    return [path, secrets_path]
