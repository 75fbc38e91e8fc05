"""config.example.toml: complete, commented, and working against the sandbox as it stands."""

from __future__ import annotations

import re
from pathlib import Path

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
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(_keys(annotation, f"{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


@pytest.mark.parametrize("dotted", _keys(ConfigModel))
def test_the_example_config_shows_every_key(dotted: str) -> None:
    text = EXAMPLE.read_text()
    table, key = dotted.rsplit(".", 1)
    section = re.split(rf"^\[{table}\]$", text, maxsplit=1, flags=re.MULTILINE)[1]
    section = section.split("\n[", 1)[0]
    assert re.search(rf"^#? ?{key} =", section, re.MULTILINE), f"{dotted} missing from the example"
