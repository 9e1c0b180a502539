"""A server process's machinery that is not business logic: the decision index, group commit
and the writer queue.

The services know them only by the protocols in ``jitpam.services.ports`` (``DecisionIndex``,
``GroupCommit``, ``AsyncGroupCommit``, ``WriteQueue``); ``jitpam.bootstrap`` chooses these
classes, as it chooses the adapters. This package may import the services' ports and rules and
the domain, never an entry point or an adapter.
"""
