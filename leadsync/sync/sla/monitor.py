"""The SLA check: record breaches, announce each event once, warn on volume, post the webhook.

Run at the end of every sync run and by the service's SLA job (`leadsync run`):

1. running clocks past due are recorded as breached;
2. each breach and each late resolution becomes one event, and so does each volume period
   that falls behind its pace or ends short of its target (periods that began before
   leadsync's first run are not judged); the check that adds an event logs it, as one
   structured line (`extra={"sla_event": {...}}`);
3. events waiting in the outbox are POSTed to the webhook, when one is configured; failures
   wait there with a growing delay, up to `max_attempts`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from leadsync.mapping.definition import LeadDefinition
from leadsync.sync.run_log import RunLog
from leadsync.sync.sla.clocks import SlaRules
from leadsync.sync.sla.ledger import BREACHED, RESOLVED, SlaEvent, SlaLedger
from leadsync.sync.sla.volume import PeriodStatus, VolumePeriod, period_starts, volume_periods
from leadsync.sync.sla.webhook import WebhookError, WebhookSender

__all__ = ["VOLUME_BEHIND", "VOLUME_MISSED", "SlaCheckResult", "SlaMonitor"]

log = logging.getLogger("leadsync.sla")

# (lead ids, canonical field) -> each lead's value of it.
SegmentValues = Callable[[Sequence[str], str], Mapping[str, Any]]

VOLUME_BEHIND = "volume_behind"
VOLUME_MISSED = "volume_missed"
DEFAULT_MAX_ATTEMPTS = 12
# The wait before delivery attempt n + 1: 1, 2, 4 ... minutes, at most six hours.
_FIRST_RETRY = timedelta(minutes=1)
_LONGEST_RETRY = timedelta(hours=6)
# How long a claimed event is not posted by another check: longer than one post with retries.
_CLAIM = timedelta(minutes=2)


@dataclass
class SlaCheckResult:
    breached: int = 0  # clocks this check found past due
    announced: list[SlaEvent] = field(default_factory=list)
    volume: list[VolumePeriod] = field(default_factory=list)
    delivered: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "clocks_breached": self.breached,
            "events": [event.event_id for event in self.announced],
            "volume": [period.as_dict() for period in self.volume],
            "webhook_delivered": self.delivered,
            "webhook_failed": self.failed,
        }


class SlaMonitor:
    """The check of one store's ledger against one definition's service levels."""

    def __init__(
        self,
        ledger: SlaLedger,
        rules: SlaRules,
        *,
        segments: SegmentValues | None = None,
        watching_since: Callable[[], datetime | None] = lambda: None,
        webhook: WebhookSender | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        """`segments(lead_ids, field)` gives each lead's value of a canonical field (the
        store's leads), for per-segment volume rules; `watching_since()` when leadsync began
        watching (its first run): a period that started before is not judged, as nobody
        counted its leads."""
        self._ledger = ledger
        self._rules = rules
        self._segments = segments
        self._watching_since = watching_since
        self._webhook = webhook
        self._max_attempts = max_attempts

    @property
    def rules(self) -> SlaRules:
        return self._rules

    def check(
        self,
        now: datetime,
        *,
        volume: bool = True,
        deliver: bool = True,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> SlaCheckResult:
        """Record breaches and announce events; with `volume`, judge the volume periods too;
        with `deliver`, post what waits for the webhook (until `should_stop`)."""
        result = SlaCheckResult()
        result.breached = self._ledger.mark_breached(now, rules=self._rules.names)
        delivered_at = now if self._webhook is None else None
        result.announced = self._ledger.announce(now, delivered=self._webhook is None)
        if volume:
            result.volume = self.volume(now)
            # Not judged without a run to count from, nor a period leadsync began in.
            since = self._watching_since()
            judged = [
                p for p in result.volume if since is not None and p.status != PeriodStatus.PARTIAL
            ]
            result.announced += self._ledger.add_events(
                _volume_events(judged, now), delivered_at=delivered_at
            )
        for event in result.announced:
            _log_event(event)
        if self._webhook is not None and deliver:
            self._deliver(now, result, should_stop)
        return result

    def volume(self, now: datetime, *, since: datetime | None = None) -> list[VolumePeriod]:
        """Each volume rule's periods from the one holding `since` (default: the previous
        period) to the current one, per segment; none that ended before leadsync's first run,
        and the one it began in as `partial` (see `volume_periods`)."""
        found: list[VolumePeriod] = []
        watching = self._watching_since()
        for rule in self._rules.volume:
            calendar = self._rules.calendars[rule.calendar]
            current = calendar.period(now, rule.period)[0]
            first = since if since is not None else current - timedelta(seconds=1)
            starts = period_starts(
                rule, calendar, since=min(first, current), now=now, watching_since=watching
            )
            if not starts:
                continue  # no run yet, or only before it
            window_start = starts[0]
            window_end = calendar.period(starts[-1], rule.period)[1]
            entered = self._ledger.entries(rule.stage, window_start, window_end)
            values = (
                self._segments(sorted(entered), rule.segment_field)
                if rule.segment_field and self._segments is not None
                else {}
            )
            entries = {lead: (at, values.get(lead)) for lead, at in entered.items()}
            for start in starts:
                found.extend(
                    volume_periods(
                        rule, calendar, entries, start=start, now=now, watching_since=watching
                    )
                )
        return found

    def _deliver(
        self, now: datetime, result: SlaCheckResult, should_stop: Callable[[], bool]
    ) -> None:
        assert self._webhook is not None
        for event in self._ledger.due_deliveries(now):
            if should_stop():
                return
            if not self._ledger.claim_delivery(event.event_id, now, hold=_CLAIM):
                continue  # another replica's check is posting it
            try:
                self._webhook.send(event)
            except WebhookError as problem:
                result.failed += 1
                attempts = event.attempts + 1
                give_up = attempts >= self._max_attempts
                retry_in = (
                    None if give_up else min(_FIRST_RETRY * 2**event.attempts, _LONGEST_RETRY)
                )
                self._ledger.delivery_failed(
                    event.event_id, now, error=str(problem), retry_in=retry_in
                )
                if give_up:
                    log.error(
                        "SLA webhook: gave up on %s after %d attempts: %s",
                        event.event_id,
                        attempts,
                        problem,
                    )
                else:
                    log.warning("SLA webhook: %s not delivered: %s", event.event_id, problem)
                if problem.retriable:
                    return  # the receiver is down or busy: the rest waits for the next check
                continue
            self._ledger.delivered(event.event_id, now)
            result.delivered += 1


def _volume_events(periods: Sequence[VolumePeriod], now: datetime) -> list[SlaEvent]:
    kinds = {PeriodStatus.BEHIND: VOLUME_BEHIND, PeriodStatus.MISSED: VOLUME_MISSED}
    return [
        SlaEvent(
            event_id=f"{kinds[period.status]}:{period.event_key}",
            kind=kinds[period.status],
            rule=period.rule,
            at=now,
            payload={"event": f"sla.{kinds[period.status]}", **period.as_dict()},
        )
        for period in periods
        if period.status in kinds
    ]


_MESSAGES = {
    BREACHED: "SLA breach",
    RESOLVED: "SLA breach resolved late",
    VOLUME_BEHIND: "SLA volume behind pace",
    VOLUME_MISSED: "SLA volume missed",
}


# What a breach's event carries for its webhook and the ledger but never for a log line:
# personal data. Logs name the lead by its id.
_NOT_LOGGED = frozenset({"email"})


def _log_event(event: SlaEvent) -> None:
    data = {name: value for name, value in event.payload.items() if name not in _NOT_LOGGED}
    if event.kind in (BREACHED, RESOLVED):
        detail = (
            f"rule {event.rule}, lead {event.lead_id}, "
            f"owner {data.get('owner') or 'none'}, started {data.get('started_at')}, "
            f"due {data.get('due_at')}"
        )
        if event.kind == RESOLVED:
            detail += f", stopped {data.get('stopped_at')} ({data.get('reason')})"
    else:
        segment = data.get("segment") or "overall"
        detail = (
            f"rule {event.rule} ({segment}), period from {data.get('start')}: "
            f"{data.get('delivered')} of {data.get('target')} delivered, "
            f"{data.get('expected_by_now')} expected by now"
        )
    level = logging.INFO if event.kind == RESOLVED else logging.WARNING
    log.log(level, "%s: %s", _MESSAGES[event.kind], detail, extra={"sla_event": dict(data)})


class _Store(Protocol):
    @property
    def sla(self) -> SlaLedger: ...

    def leads(self, lead_ids: Sequence[str]) -> Mapping[str, Any]: ...

    @property
    def run_log(self) -> RunLog: ...


def monitor_for(
    store: _Store,
    definition: LeadDefinition,
    *,
    webhook: WebhookSender | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> SlaMonitor | None:
    """The monitor of `definition`'s service levels over `store`; None when it has none."""
    rules = SlaRules.of(definition)
    if rules is None:
        return None

    def segments(lead_ids: Sequence[str], name: str) -> dict[str, Any]:
        return {lead_id: lead.values.get(name) for lead_id, lead in store.leads(lead_ids).items()}

    return SlaMonitor(
        store.sla,
        rules,
        segments=segments,
        watching_since=store.run_log.first_started_at,
        webhook=webhook,
        max_attempts=max_attempts,
    )
