"""The SLA ledger: service levels at the marketing -> sales handoff.

clocks    when clocks start, stop and fall due (no I/O)
volume    MQLs delivered per period against target and pace (no I/O)
ledger    the clocks and events in the store, each status move and event once
webhook   signed, retried POSTs of each event
monitor   the check run after each sync and by the service: breaches, events, webhook
report    what `leadsync sla` shows
"""
