"""A Python client for a jitpam server. Imports nothing from the server side of jitpam."""

from jitpam.sdk.client import ApiError, Client, Unreachable

__all__ = ["ApiError", "Client", "Unreachable"]
