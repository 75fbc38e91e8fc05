"""One connector per CRM behind one small interface: pull, describe, write, quota.

Paging, auth, retry and throttling live inside a connector, not in the engine. Connectors import
nothing of `leadsync.sync`.
"""
