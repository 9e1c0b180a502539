"""The web admin center: server-rendered pages over the same service functions as the API.

No rule lives here: a page asks the services what the signed-in user may see and do, shows that,
and hands every form to the use case that decides it again.
"""
