"""Identity, reconcile, scoring, lifecycle, plan, the engine, the SLA ledger, the store, reports."""
