"""Reports: the shared numbers marketing and sales align on.

data      what is read from the store
figures   funnel, SLA compliance, score calibration, sync health (no I/O)
build     the whole report as a stable JSON-ready dict
text      a table for a terminal
html      one self-contained file with charts, for a browser offline
"""
