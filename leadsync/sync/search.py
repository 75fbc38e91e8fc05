"""Finding leads by what a person remembers of them: an email, a name, a CRM record id.

    search_leads(store, "ada love", name_fields=("first_name", "last_name"))

An `@` makes the text an email, matched from its start (`ada@` finds ada@example.com); any other
text is a CRM record id, matched whole in either CRM, or words that must each be found in one
of the name fields (anywhere in it, case aside) or start the email. It reads the store only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from leadsync.sync import tables as t
from leadsync.sync.model import Lead
from leadsync.sync.store import Store

__all__ = ["NAME_FIELDS", "search_leads"]

# The canonical fields that hold a person's name, where the mapping has them: the store
# keeps them apart for this search (`leads.names`).
NAME_FIELDS = t.NAME_FIELDS
LIMIT = 50


def search_leads(
    store: Store, text: str, *, name_fields: Sequence[str] = NAME_FIELDS, limit: int = LIMIT
) -> list[Lead]:
    """Up to `limit` leads that `text` names, by lead id. `name_fields` are among
    NAME_FIELDS, the fields the store keeps apart for this search (`leads.names`); another
    field raises ValueError rather than find nothing."""
    unsearchable = [name for name in name_fields if name not in NAME_FIELDS]
    if unsearchable:
        raise ValueError(
            f"leads are searched by {', '.join(NAME_FIELDS)} only, not {', '.join(unsearchable)}"
        )
    text = text.strip()
    if not text:
        return []
    email = sa.func.lower(sa.func.coalesce(t.leads.c.email, ""))
    if "@" in text:
        condition = email.startswith(text.lower(), autoescape=True)
    else:
        by_id = t.leads.c.lead_id.in_(
            sa.select(t.links.c.lead_id).where(t.links.c.record_id == text)
        )
        by_words = sa.and_(
            *(
                sa.or_(
                    email.startswith(word, autoescape=True),
                    *(
                        sa.func.lower(t.leads.c.names[name].as_string()).contains(
                            word, autoescape=True
                        )
                        for name in name_fields
                    ),
                )
                for word in text.lower().split()
            )
        )
        condition = sa.or_(by_id, by_words)
    query = sa.select(t.leads.c.lead_id).where(condition).order_by(t.leads.c.lead_id)
    with store.engine.connect() as connection:
        ids = list(connection.execute(query.limit(limit)).scalars())
    found = store.leads(ids)
    return [found[lead_id] for lead_id in ids if lead_id in found]
