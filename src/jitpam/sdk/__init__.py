"""A Python client for a jitpam server. Imports nothing from the server side of jitpam, and its
HTTP library only when the first call is made.

``Client`` (blocking) and ``AsyncClient`` (asyncio) offer every endpoint of the API as a typed
method (``jitpam.sdk.calls`` declares each once); the answers are the dataclasses of
``jitpam.sdk.models``. ``guard`` protects a block or a function with a check and raises
``AccessDenied`` when the check denies, or when no answer comes (never a silent allow).
"""

from jitpam.sdk.client import ApiError, AsyncClient, Client, Unreachable
from jitpam.sdk.guard import AccessDenied, guard
from jitpam.sdk.models import (
    UNREACHABLE,
    AccessControl,
    AccessRequest,
    ApiToken,
    Assignment,
    AuditRecord,
    Authorization,
    CatalogEntry,
    CatalogImported,
    ChainReport,
    Checkpoint,
    Connector,
    ConnectorPass,
    Decision,
    Group,
    InstalledApplication,
    IssuedToken,
    LockboxRequest,
    OutboxMessage,
    Policy,
    RequestSignature,
    Review,
    RevokedToken,
    Role,
    RoleMember,
    RolePage,
    TaskDefinition,
    TaskRun,
    User,
    Webhook,
)

__all__ = [
    "UNREACHABLE",
    "AccessControl",
    "AccessDenied",
    "AccessRequest",
    "ApiError",
    "ApiToken",
    "Assignment",
    "AsyncClient",
    "AuditRecord",
    "Authorization",
    "CatalogEntry",
    "CatalogImported",
    "ChainReport",
    "Checkpoint",
    "Client",
    "Connector",
    "ConnectorPass",
    "Decision",
    "Group",
    "InstalledApplication",
    "IssuedToken",
    "LockboxRequest",
    "OutboxMessage",
    "Policy",
    "RequestSignature",
    "Review",
    "RevokedToken",
    "Role",
    "RoleMember",
    "RolePage",
    "TaskDefinition",
    "TaskRun",
    "Unreachable",
    "User",
    "Webhook",
    "guard",
]
