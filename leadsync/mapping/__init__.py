"""The files RevOps edit: field mappings and the lead definition; loading, validation, transforms.

Imports nothing of `leadsync.sync`.
"""
