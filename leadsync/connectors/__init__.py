"""One connector per CRM behind one small interface: pull, describe, write, quota.

Paging, auth, retry and throttling live inside a connector, not in the engine. So does all else
that differs between CRMs (batch sizes, write estimates, writable records, stage order, related
references): a connector's `traits`, also at hand without a connection (`connectors.traits`),
so that `leadsync.sync` names no CRM. Connectors import nothing of `leadsync.sync`.
"""
