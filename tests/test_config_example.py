"""config.example.toml: complete, commented, and working against the sandbox as it stands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel

from leadsync.config import ConfigModel, load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def test_the_example_config_loads_as_it_stands() -> None:
    config = load_config(EXAMPLE, environ={})
    assert config.hubspot_connection().base_url == "http://127.0.0.1:8765"
    assert config.mapping_path.is_file()
    assert config.definition_path.is_file()


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        # An optional section (`ConsoleSettings | None`): its keys, shown commented out.
        inner = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(inner) == 1:
            annotation = inner[0]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(_keys(annotation, f"{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


@pytest.mark.parametrize("dotted", _keys(ConfigModel))
def test_the_example_config_shows_every_key(dotted: str) -> None:
    text = EXAMPLE.read_text()
    table, key = dotted.rsplit(".", 1)
    section = re.split(rf"^#? ?\[{table}\]$", text, maxsplit=1, flags=re.MULTILINE)[1]
    section = section.split("\n[", 1)[0]
    assert re.search(rf"^#? ?{key} =", section, re.MULTILINE), f"{dotted} missing from the example"


def test_the_example_console_section_uncommented_is_a_valid_console(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    head, console = text.split("\n# [console]\n", 1)
    lines = [line.removeprefix("# ") for line in console.splitlines()]
    settings = [line for line in lines if re.match(r"^[a-z_]+ =", line)]
    path = tmp_path / "config.toml"
    path.write_text(
        head.replace('"leadsync/', f'"{EXAMPLE.parent}/leadsync/')
        + "\n[console]\n"
        + "\n".join(settings)
        + "\n"
    )
    config = load_config(path, environ={})
    assert config.model.console is not None
    assert config.model.console.users == {"ada": "editor", "grace": "viewer"}
    assert config.model.console.record_url("hubspot", "51") == (
        "https://app.hubspot.com/contacts/1234567/record/0-1/51"
    )
