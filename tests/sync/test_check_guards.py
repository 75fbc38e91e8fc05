"""The check before a write keeps a person's edit made since the pull where a cheaper check
would lose it: guards for the options issue 20's step 5 tried and did not take."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from leadsync.config import Config, load_config
from leadsync.connectors.base import Connector
from leadsync.sandbox import Sandbox, SandboxSettings
from leadsync.sandbox_config import write_sandbox_config
from tests.support import set_up_sandbox_config
from tests.sync.test_attack_handoff_deals import _delete
from tests.sync.test_engine import OPEN_LIMITS, _linked_pair, cycle


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(port=0, seed=21, leads=150, hubspot=OPEN_LIMITS)


class _BeforeFirst:
    """Wraps a connector; runs `act` once, just before the first call of any of `names`."""

    def __init__(self, inner: Connector, act: Callable[[], None], names: Sequence[str]) -> None:
        self._inner = inner
        self._act: Callable[[], None] | None = act
        self._names = frozenset(names)
        self.crm = inner.crm
        self.read: list[str] = []

    def fetch(self, record_ids: Sequence[str], **kwargs: Any) -> Any:
        if "fetch" in self._names and self._act is not None:
            act, self._act = self._act, None
            act()
        self.read.extend(record_ids)
        return self._inner.fetch(record_ids, **kwargs)

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._inner, name)
        if name not in self._names or not callable(found):
            return found

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._act is not None:
                act, self._act = self._act, None
                act()
            return found(*args, **kwargs)

        return call


def _title_rule(sandbox: Sandbox, tmp_path: Path, rule: str) -> Config:
    own = tmp_path / "own"
    write_sandbox_config(own / "leadsync.toml", sandbox.url, sandbox.credentials(), copies=True)
    mapping = own / "mapping.toml"
    text = mapping.read_text(encoding="utf-8")
    title = '[fields.title]\ntype = "string"\ndirection = "both"\n'
    shipped = title + 'rule = "prefer_salesforce_unless_blank"'
    assert shipped in text
    mapping.write_text(text.replace(shipped, title + f'rule = "{rule}"'), encoding="utf-8")
    set_up_sandbox_config(sandbox, tmp_path)  # HubSpot's write-back properties
    return load_config(own / "leadsync.toml")


def test_a_hubspot_edit_since_the_pull_survives_a_preferred_salesforce_write_whose_lead_goes(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # title: prefer_salesforce. Skipping the check for a field whose HubSpot edit "loses the
    # next merge anyway" was tried (issue 20, step 5) and dropped for this: when the
    # Salesforce lead is deleted in the same window, the next merge has no Salesforce title
    # and the person's HubSpot title is the lead's; an unchecked write would have replaced it
    # with the deleted lead's old title for good. The check holds the write back.
    config = _title_rule(sandbox, tmp_path, "prefer_salesforce")
    cycle(config)
    sandbox.hubspot.settle_search()
    contact_id, lead_id = _linked_pair(sandbox, config)
    sandbox.salesforce.update_record("Lead", lead_id, {"Title": "Head of Widgets"})

    def meanwhile() -> None:
        sandbox.hubspot.set_activity(int(contact_id), {"jobtitle": "Chief Widget Officer"})
        _delete(sandbox, "Lead", lead_id)

    def wrap(crm: str, connector: Connector) -> Any:
        return (
            _BeforeFirst(connector, meanwhile, ("stamps", "fetch", "write"))
            if crm == "hubspot"
            else connector
        )

    cycle(config, wrap=wrap)
    sandbox.hubspot.settle_search()
    cycle(config)
    sandbox.hubspot.settle_search()
    cycle(config)
    assert sandbox.hubspot.contact(int(contact_id)).properties["jobtitle"] == (
        "Chief Widget Officer"
    )
