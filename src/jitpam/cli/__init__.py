"""The ``jitpam`` command line: server commands and client commands."""
