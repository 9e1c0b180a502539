"""A Python client for a jitpam server. Imports nothing from the server side of jitpam.

``Client`` (blocking) and ``AsyncClient`` (asyncio) make the API's calls with typed answers;
``guard`` protects a block or a function with a check and raises ``AccessDenied`` when the check
denies, or when no answer comes (never a silent allow).
"""

from jitpam.sdk.client import ApiError, AsyncClient, Client, Unreachable
from jitpam.sdk.guard import AccessDenied, guard
from jitpam.sdk.models import AccessRequest, Authorization, Decision, Review, TaskRun

__all__ = [
    "AccessDenied",
    "AccessRequest",
    "ApiError",
    "AsyncClient",
    "Authorization",
    "Client",
    "Decision",
    "Review",
    "TaskRun",
    "Unreachable",
    "guard",
]
