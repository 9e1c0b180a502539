"""The ports the use cases need (adapters and ``jitpam.runtime`` implement them, ``bootstrap``
wires them), by aggregate: ``directory`` (organizations, users, groups, credentials), ``catalog``
(tasks, roles, assignments), ``connectors`` (target systems), ``policies``, ``requests``,
``lockbox`` (Customer Lockbox), ``audit``, ``delivery`` (outbox, webhooks), ``security``
(hasher, login throttle, signer), ``unit_of_work``, ``runtime`` (the runtime's machinery) and
``common`` (Clock, Page). Import them from here."""

from jitpam.services.ports.audit import AuditFilter, AuditRepository
from jitpam.services.ports.catalog import AssignmentRepository, CatalogRepository
from jitpam.services.ports.common import Clock, Page
from jitpam.services.ports.connectors import (
    ConnectorRepository,
    ConnectorSource,
    ConnectorTarget,
)
from jitpam.services.ports.delivery import OutboxRepository, WebhookRepository
from jitpam.services.ports.directory import (
    CredentialRepository,
    GroupRepository,
    GroupSummary,
    OrganizationRepository,
    RoleMember,
    Stamped,
    UserRepository,
)
from jitpam.services.ports.lockbox import LockboxFilter, LockboxRepository, Operator
from jitpam.services.ports.policies import PolicyRepository
from jitpam.services.ports.requests import SEARCH_WINDOW, RequestFilter, RequestRepository, Reviewer
from jitpam.services.ports.runtime import AsyncGroupCommit, DecisionIndex, GroupCommit, WriteQueue
from jitpam.services.ports.security import LoginThrottle, PasswordHasher, Signer
from jitpam.services.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

__all__ = [
    "SEARCH_WINDOW",
    "AssignmentRepository",
    "AsyncGroupCommit",
    "AuditFilter",
    "AuditRepository",
    "CatalogRepository",
    "Clock",
    "ConnectorRepository",
    "ConnectorSource",
    "ConnectorTarget",
    "CredentialRepository",
    "DecisionIndex",
    "GroupCommit",
    "GroupRepository",
    "GroupSummary",
    "LockboxFilter",
    "LockboxRepository",
    "LoginThrottle",
    "Operator",
    "OrganizationRepository",
    "OutboxRepository",
    "Page",
    "PasswordHasher",
    "PolicyRepository",
    "RequestFilter",
    "RequestRepository",
    "Reviewer",
    "RoleMember",
    "Signer",
    "Stamped",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "UserRepository",
    "WebhookRepository",
    "WriteQueue",
]
