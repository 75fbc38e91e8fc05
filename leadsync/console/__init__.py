"""The web console `leadsync run` serves under /console/ when config.toml has a [console].

    settings    [console]: users and their roles, sessions, links into the CRMs
    passwords   scrypt password hashes (`leadsync hash-password`)
    accounts    who may sign in, with what, as which role
    sessions    server-side sessions with the token that guards each user's forms (CSRF)
    audit       the audit log of every change made from the console, with who made it
    status      the figures of the Status page
    app         the pages (Starlette routes, Jinja2 templates) over the CLI's own functions

This package imports nothing at import time: `leadsync.config` reads its settings from here.
"""
