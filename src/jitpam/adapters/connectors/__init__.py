"""Connectors' adapters: the target systems a just-in-time grant is made real in."""
