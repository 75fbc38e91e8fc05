"""Weeks of use, replayed: what marketing and sales do in the CRMs between leadsync's syncs.

The demo's sandbox starts as its seeded org stood some weeks ago, on a `ReplayClock`, and
`leadsync demo` syncs through those weeks, calling one of these acts before each sync, so that
its report shows what a team sees after weeks of use: leads that became MQLs on different days,
MQLs accepted by sales in time and late, leads worked or not, deals won and lost.

Every act edits records the way the CRM's users and automations do (`update_record` as a
person would, `system_update` for what the platform sets itself) at the sandbox's current time,
and picks its records with its own seeded random numbers: the same seed replays the same weeks.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from leadsync.sandbox.salesforce import SalesforceEmulator
from leadsync.sandbox.server import Sandbox
from leadsync.sandbox.timestamps import hubspot_iso, salesforce_date

OPEN = "Open - Not Contacted"
ACCEPTED = "Working - Contacted"
NOT_CONVERTED = "Closed - Not Converted"
# What a contact that marketing's campaign reached does: enough to score as an MQL when it fits.
ENGAGED = {
    "hs_analytics_num_page_views": "140",
    "num_conversion_events": "5",
    "hs_email_click": "12",
    "webinars_attended": "2",
    "pricing_page_views": "6",
}


class ReplayClock:
    """A clock that runs at the pace of real time from a moment in the past, and jumps forward
    when told: time flows within a sync (timeouts, rate windows and session ages behave), and
    `jump_to(now)` ends the replay in the present."""

    def __init__(self, start: datetime) -> None:
        self._behind = time.time() - start.timestamp()

    def time(self) -> float:
        return time.time() - self._behind

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def jump_to(self, moment: datetime) -> None:
        behind = time.time() - moment.timestamp()
        if behind > self._behind:
            raise ValueError(f"the replay goes forward only, not back to {moment:%Y-%m-%d %H:%M}")
        self._behind = max(behind, 0.0)


class History:
    """The acts of one replayed org; each returns how many records it changed."""

    def __init__(self, sandbox: Sandbox, *, seed: int) -> None:
        self._sandbox = sandbox
        self._random = random.Random(f"history-{seed}")

    def campaign(self, contacts: int) -> int:
        """Marketing's week: a campaign engages up to `contacts` HubSpot contacts that are not
        qualified yet; those that fit become MQLs at the next sync."""
        hubspot = self._sandbox.hubspot
        waiting = [
            int(row["id"])
            for row in hubspot.snapshot()
            if row["properties"].get("lifecyclestage") in (None, "", "subscriber", "lead")
            and row["properties"].get("email")
        ]
        chosen = self._random.sample(waiting, min(contacts, len(waiting)))
        now = hubspot_iso(self._now_ms())
        for contact_id in chosen:
            hubspot.set_activity(
                contact_id,
                {
                    **ENGAGED,
                    "hs_analytics_last_visit_timestamp": now,
                    "recent_conversion_date": now,
                },
            )
        hubspot.settle_search()  # what happened before the sync is searchable by then
        return len(chosen)

    def accept(self, share: float) -> int:
        """Sales accept a `share` of the leads handed to them and not yet touched."""
        leads = [row for row in self._leads() if row.get("Status") == OPEN and _handed_off(row)]
        return self._edit("Lead", self._some(leads, share), {"Status": ACCEPTED})

    def call(self, share: float, *, at_most: int) -> int:
        """Sales call a `share` of the leads they accepted and never worked (Salesforce sets
        their last activity): what stops the clock of the response to an accepted lead."""
        fresh = [
            row
            for row in self._leads()
            if row.get("Status") == ACCEPTED and not row.get("LastActivityDate")
        ]
        calls = self._some(fresh, share, at_most=at_most)
        for row in calls:
            self._sandbox.salesforce.system_update(
                "Lead", row["Id"], {"LastActivityDate": self._day()}
            )
        return len(calls)

    def work(self) -> int:
        """Sales' week with the leads they accepted and the deals that came of them: a few
        accepted leads get a call (their last activity), turn hot (SQL) or are closed as not
        converting; hot ones are converted to an opportunity; open opportunities are won or
        lost. Each lead moves one step a week; a week touches a few dozen records at most."""
        salesforce = self._sandbox.salesforce
        changed = 0
        for row in self._some(self._open_opportunities(), 0.6, at_most=10):
            stage = "Closed Won" if self._random.random() < 0.65 else "Closed Lost"
            closed = {"StageName": stage, "CloseDate": self._day()}
            changed += self._edit("Opportunity", [row], closed)
        hot = [row for row in self._leads() if row.get("Rating") == "Hot"]
        for row in self._some(hot, 0.7, at_most=8):
            amount = float(self._random.randrange(5, 120) * 1_000)
            try:
                salesforce.convert_lead(row["Id"], opportunity_stage="Prospecting", amount=amount)
            except ValueError:
                continue  # Salesforce refuses to convert it (a broken email): left as it is
            changed += 1
        accepted = [row for row in self._leads() if row.get("Status") == ACCEPTED]
        for row in self._some(accepted, 0.5, at_most=12):
            salesforce.system_update("Lead", row["Id"], {"LastActivityDate": self._day()})
            changed += 1
        changed += self._edit("Lead", self._some(accepted, 0.4, at_most=8), {"Rating": "Hot"})
        quitting = self._some(accepted, 0.1, at_most=3)
        return changed + self._edit("Lead", quitting, {"Status": NOT_CONVERTED})

    # ------------------------------------------------------------------------------ helpers

    def _leads(self) -> list[dict[str, Any]]:
        return [row for row in self._sandbox.salesforce.snapshot("Lead") if not row["IsConverted"]]

    def _open_opportunities(self) -> list[dict[str, Any]]:
        return [
            row
            for row in self._sandbox.salesforce.snapshot("Opportunity")
            if not str(row.get("StageName", "")).startswith("Closed")
        ]

    def _some(
        self, rows: list[dict[str, Any]], share: float, *, at_most: int | None = None
    ) -> list[dict[str, Any]]:
        """About `share` of `rows`, `at_most` of them, oldest records first (sales work the
        queue from its head)."""
        chosen = [row for row in rows if self._random.random() < share]
        return chosen if at_most is None else chosen[:at_most]

    def _edit(self, object_name: str, rows: list[dict[str, Any]], values: Mapping[str, Any]) -> int:
        salesforce: SalesforceEmulator = self._sandbox.salesforce
        for row in rows:
            outcome = salesforce.update_record(object_name, row["Id"], values)
            if not outcome.success:  # the replay's own mistake: say so, loudly
                raise ValueError(f"{object_name} {row['Id']} refused {dict(values)}: {outcome}")
        return len(rows)

    def _now_ms(self) -> int:
        return int(self._sandbox.clock() * 1000)

    def _day(self) -> str:
        return salesforce_date(self._now_ms())


def _handed_off(row: Mapping[str, Any]) -> bool:
    # Created by leadsync's handoff (its key set) and owned by a rep or a queue.
    return bool(row.get("Leadsync_Id__c")) and bool(row.get("OwnerId"))


def week_starts(now: datetime, weeks: int) -> list[datetime]:
    """The Mondays, 15:00 UTC (10:00 in New York, where the shipped calendars work), of the
    `weeks` weeks before the one holding `now`, oldest first."""
    monday = (now - timedelta(days=now.weekday())).replace(
        hour=15, minute=0, second=0, microsecond=0
    )
    return [monday - timedelta(weeks=back) for back in range(weeks, 0, -1)]
