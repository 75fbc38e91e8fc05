"""The exception tree's errors survive a pickle: a what-if's forked copy sends the error that
stopped it to the command, which raises it as if it had been its own."""

from __future__ import annotations

import pickle

from leadsync.errors import ConfigError, ConnectorError, TransientError
from leadsync.mapping.transforms import TransformError
from leadsync.problems import ConfigProblem


def test_errors_whose_init_takes_more_than_a_message_come_back_whole() -> None:
    errors = [
        TransformError("salesforce.NumberOfEmployees", "many", "cannot read it"),
        ConnectorError("refused", crm="hubspot", status=400, code="VALIDATION_ERROR"),
        TransientError("away", crm="salesforce", retry_after=2.5),
        ConfigError([ConfigProblem("mapping.toml", "fields.email", "missing", line=3)]),
    ]
    for error in errors:
        back = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
        assert type(back) is type(error)
        assert str(back) == str(error)
        assert back.__dict__ == error.__dict__
        assert back.exit_code == error.exit_code
