"""Which opportunity counts for a person record among its contact roles (`sync.deals`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leadsync.connectors.traits import SALESFORCE
from leadsync.sync.deals import chosen_opportunities
from leadsync.sync.related import Related

T0 = datetime(2026, 5, 1, tzinfo=UTC)
ROLES = SALESFORCE.contact_roles
assert ROLES is not None


def _role(
    role_id: str, opportunity: str, *, primary: object, at: datetime = T0, deleted: bool = False
) -> Related:
    fields = {"OpportunityId": opportunity, "ContactId": "0031", "IsPrimary": primary}
    return Related("salesforce", ROLES.object_name, role_id, at, fields, deleted, "0031")


def test_a_primary_role_counts_before_a_later_one_that_is_not() -> None:
    later = T0 + timedelta(days=1)
    roles = [_role("00K1", "006A", primary=True), _role("00K2", "006B", primary=False, at=later)]
    assert chosen_opportunities(roles, ROLES) == {"0031": "006A"}


def test_among_equals_the_role_changed_last_counts_and_a_deleted_one_never() -> None:
    later = T0 + timedelta(days=1)
    roles = [
        _role("00K1", "006A", primary="false"),
        _role("00K2", "006B", primary="false", at=later),
        _role("00K3", "006C", primary="true", deleted=True),
    ]
    assert chosen_opportunities(roles, ROLES) == {"0031": "006B"}
    assert chosen_opportunities(roles[2:], ROLES) == {}
