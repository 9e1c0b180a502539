"""The relational schema. Alembic migrations (``migrations/``) must match it: a test checks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in Python on every database (SQLite stores naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), uuid.UUID: Uuid()}  # noqa: RUF012


class OrganizationRow(Base):
    __tablename__ = "organizations"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    created_at: Mapped[datetime]
    control_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # No foreign key: groups refer to organizations already; removing a group in use is refused.
    default_approver_group_id: Mapped[uuid.UUID | None]
    ticket_pattern: Mapped[str | None] = mapped_column(String(200))
    max_policies: Mapped[int | None] = mapped_column(Integer)
    pending_hours: Mapped[int] = mapped_column(Integer, default=24)
    # Who last set the default approver group (None: the installation, or set before 0006).
    default_approver_group_set_by: Mapped[uuid.UUID | None]
    # Customer Lockbox: whether the organization's approvers must approve the operator's data
    # access requests, and the longest access it allows (organizations made before 0007: off, 4).
    lockbox_approval_required: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    lockbox_max_hours: Mapped[int] = mapped_column(Integer, default=4, server_default="4")
    # SCIM (0009): the approver groups whose memberships the organization lets SCIM set, a JSON
    # array of group ids read with the rest of the row (a removed group's id matches nothing).
    synced_approver_groups: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")


class SystemAccountRow(Base):
    __tablename__ = "system_accounts"
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    designated_by: Mapped[uuid.UUID | None]  # None: the installation, or designated before 0006


class UserRow(Base):
    __tablename__ = "users"
    # The identity provider's ids are unique in an organization (0010; NULLs repeat freely).
    __table_args__ = (Index("ix_users_external_id", "org_id", "external_id", unique=True),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    upn: Mapped[str] = mapped_column(String(256), unique=True)
    display_name: Mapped[str] = mapped_column(String(256))
    email: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    # SCIM (0009): the identity provider's id, who manages the user, whether SCIM deleted it
    # (hidden from SCIM, kept for the audit log), and when it last changed.
    external_id: Mapped[str | None] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(String(8), default="jitpam", server_default="jitpam")
    scim_deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    modified_at: Mapped[datetime | None]
    # 0010: an administrator disabled the user by hand (SCIM does not enable them again).
    disabled_by_hand: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class GroupRow(Base):
    __tablename__ = "groups"
    __table_args__ = (
        UniqueConstraint("org_id", "name_key"),
        UniqueConstraint("org_id", "email_key"),
        Index("ix_groups_external_id", "org_id", "external_id", unique=True),  # 0010, as users'
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    name: Mapped[str] = mapped_column(String(256))
    name_key: Mapped[str] = mapped_column(String(256))
    email: Mapped[str] = mapped_column(String(256))
    email_key: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    external_id: Mapped[str | None] = mapped_column(String(256))  # SCIM (0009), as users'
    source: Mapped[str] = mapped_column(String(8), default="jitpam", server_default="jitpam")
    modified_at: Mapped[datetime | None]


class GroupMemberRow(Base):
    __tablename__ = "group_members"
    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    added_by: Mapped[uuid.UUID | None]  # None: the installation, or added before 0006


class AccountStewardRow(Base):
    """Who steers an account: created it, or set one of its credentials (separation of duties).
    Rows are never deleted: a steward keeps the hand they once had."""

    __tablename__ = "account_stewards"
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    steward_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id"), primary_key=True, index=True
    )
    how: Mapped[str] = mapped_column(String(16), primary_key=True)
    at: Mapped[datetime]


class CatalogEntryRow(Base):
    """A task, role, role group or data scope: one table, told apart by ``kind``."""

    __tablename__ = "catalog_entries"
    __table_args__ = (
        UniqueConstraint("org_id", "kind", "key"),
        # Leads with the bare name so the planner never prefers it for exact Scope\Name look-ups.
        Index("ix_catalog_entries_bare", "name_key", "org_id", "kind"),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    kind: Mapped[str] = mapped_column(String(16))  # task | role | role_group | data_access
    scope: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(260))  # casefolded Scope\Name
    name_key: Mapped[str] = mapped_column(String(128))  # casefolded Name
    description: Mapped[str] = mapped_column(Text, default="")


class CatalogLinkRow(Base):
    """Role -> task and role group -> role."""

    __tablename__ = "catalog_links"
    parent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_entries.id"), primary_key=True)
    child_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("catalog_entries.id"), primary_key=True, index=True
    )


class AssignmentRow(Base):
    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("org_id", "principal_kind", "principal_id", "target_kind", "target_key"),
        # A role's holders, oldest first, a keyset page at a time.
        Index("ix_assignments_target", "org_id", "target_kind", "target_key", "created_at", "id"),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    principal_kind: Mapped[str] = mapped_column(String(8))
    principal_id: Mapped[uuid.UUID] = mapped_column(index=True)
    target_kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(260))
    target_key: Mapped[str] = mapped_column(String(260))
    created_at: Mapped[datetime]


class PolicyRow(Base):
    __tablename__ = "policies"
    __table_args__ = (UniqueConstraint("org_id", "type", "target_key"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    type: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(260))
    target_key: Mapped[str] = mapped_column(String(260))
    approval_type: Mapped[str] = mapped_column(String(8))
    approver_group_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("groups.id"))
    approvals_required: Mapped[int] = mapped_column(Integer)
    max_duration_hours: Mapped[int | None] = mapped_column(Integer)
    require_ticket: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    # Who last set the settings that decide whose votes count (None: set before 0006).
    approver_group_set_by: Mapped[uuid.UUID | None]
    approval_type_set_by: Mapped[uuid.UUID | None]
    approvals_required_set_by: Mapped[uuid.UUID | None]
    eligible_set_by: Mapped[uuid.UUID | None]


class PolicyEligibleRow(Base):
    __tablename__ = "policy_eligible"
    policy_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("policies.id", ondelete="CASCADE"), primary_key=True
    )
    principal_kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    principal_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class RequestRow(Base):
    __tablename__ = "requests"
    __table_args__ = (
        # Every listing reads one of these in (created_at, id) order, from a keyset cursor on.
        Index("ix_requests_org_created", "org_id", "created_at", "id"),
        Index("ix_requests_status", "org_id", "status", "created_at", "id"),
        Index("ix_requests_requester", "org_id", "requester_id", "created_at", "id"),
        # The requests of an application (data access requests), and its one open request.
        Index("ix_requests_subject", "org_id", "subject_id", "created_at", "id"),
        CheckConstraint("duration_hours > 0", name="positive_duration"),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    requester_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    requester_upn: Mapped[str] = mapped_column(String(256))
    policy_id: Mapped[uuid.UUID] = mapped_column()  # kept when the policy is removed
    type: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(260))
    reason: Mapped[str] = mapped_column(Text)
    duration_hours: Mapped[int] = mapped_column(Integer)
    approvals_required: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    pending_until: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    decided_at: Mapped[datetime | None]
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer, default=1)
    # A data access request's application account (who receives the grant) and the data it
    # covers, a JSON array of "kind:name" strings; other requests (and those made before 0008):
    # no subject, "[]".
    subject_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    subject_upn: Mapped[str | None] = mapped_column(String(256))
    resources: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")


class InstallationOperatorRow(Base):
    """The installation's operator organization (Customer Lockbox): at most one row, its key
    fixed at 1."""

    __tablename__ = "installation_operator"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    since: Mapped[datetime]


class LockboxRequestRow(Base):
    """A Customer Lockbox request of the operator's engineer to a customer (domain/lockbox.py)."""

    __tablename__ = "lockbox_requests"
    __table_args__ = (
        # The listings, newest first: the customer's, the operator's, one engineer's.
        Index("ix_lockbox_requests_customer", "customer_org_id", "created_at", "id"),
        Index("ix_lockbox_requests_operator", "operator_org_id", "created_at", "id"),
        Index(
            "ix_lockbox_requests_requester",
            "operator_org_id",
            "requester_id",
            "created_at",
            "id",
        ),
        # The check: one engineer's approved requests to one customer.
        Index("ix_lockbox_requests_check", "customer_org_id", "requester_id", "status"),
        # The sweeper: pending past the deadline, approved past the end.
        Index("ix_lockbox_requests_pending", "status", "pending_until"),
        Index("ix_lockbox_requests_end", "status", "end_at"),
        CheckConstraint("duration_hours > 0", name="positive_duration"),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    operator_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    requester_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    requester_upn: Mapped[str] = mapped_column(String(256))
    service: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    case_reference: Mapped[str] = mapped_column(String(64))
    duration_hours: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    pending_until: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[uuid.UUID | None]  # None once decided: automatically
    decision_comment: Mapped[str] = mapped_column(Text)
    start_at: Mapped[datetime | None]
    end_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[uuid.UUID | None]
    revocation_comment: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)


class ReviewRow(Base):
    __tablename__ = "reviews"
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("requests.id"), primary_key=True)
    approver_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    decision: Mapped[str] = mapped_column(String(8))
    comment: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]


class AuthorizationRow(Base):
    __tablename__ = "authorizations"
    __table_args__ = (
        Index("ix_authorizations_user", "org_id", "user_id", "end_at"),  # grants, active
        Index("ix_authorizations_user_start", "org_id", "user_id", "start_at", "id"),  # history
        Index("ix_authorizations_start", "org_id", "start_at", "id"),  # history, newest first
        Index("ix_authorizations_end", "org_id", "end_at", "id"),  # active, soonest ending
        # a role's just-in-time holders, soonest ending first
        Index("ix_authorizations_target", "org_id", "type", "target", "end_at", "id"),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("requests.id"), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    type: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(260))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[uuid.UUID | None]
    revocation_comment: Mapped[str | None] = mapped_column(Text)


class AuditHeadRow(Base):
    """The chain head per organization; locked by every audit write, so order = commit order."""

    __tablename__ = "audit_heads"
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(String(64))


class AuditRow(Base):
    __tablename__ = "audit_records"
    __table_args__ = (
        Index("ix_audit_records_at", "org_id", "at"),
        Index("ix_audit_records_operation", "org_id", "operation"),
    )
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor_id: Mapped[str] = mapped_column(String(64))
    actor_name: Mapped[str] = mapped_column(String(256))
    operation: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(512))
    outcome: Mapped[str] = mapped_column(String(16))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON, exactly as hashed
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class PasswordRow(Base):
    __tablename__ = "passwords"
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    hash: Mapped[str] = mapped_column(String(256))
    changed_at: Mapped[datetime]


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user", "org_id", "user_id"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(128))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    created_by: Mapped[uuid.UUID]
    revoked_at: Mapped[datetime | None]


class OidcLinkRow(Base):
    """A user signed in through an OIDC issuer, known by (issuer, subject)."""

    __tablename__ = "oidc_links"
    issuer: Mapped[str] = mapped_column(String(512), primary_key=True)
    subject: Mapped[str] = mapped_column(String(256), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime]


class SigningKeyRow(Base):
    """Public halves of every server's signing key: any server verifies any other's signatures."""

    __tablename__ = "signing_keys"
    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(128))  # base64 of the raw Ed25519 public key
    created_at: Mapped[datetime]


class OrganizationDomainRow(Base):
    """The email domains an organization's user names live in; each belongs to one organization."""

    __tablename__ = "organization_domains"
    domain: Mapped[str] = mapped_column(String(253), primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)


class OutboxRow(Base):
    """Notifications to deliver, written in the transaction of the change that causes them."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "state", "next_attempt_at"),
        Index("ix_outbox_org_created", "org_id", "created_at", "id"),  # the listing's order
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    payload: Mapped[str] = mapped_column(Text)
    destination: Mapped[uuid.UUID | None]
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class WebhookRow(Base):
    __tablename__ = "webhooks"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[str] = mapped_column(Text)  # JSON list of event types
    format: Mapped[str] = mapped_column(String(16))
    secret: Mapped[str] = mapped_column(String(128))  # needed to sign each delivery
    created_at: Mapped[datetime]


class ConnectorMembershipRow(Base):
    """A membership jitpam added through a connector, or found there before it (0011)."""

    __tablename__ = "connector_memberships"
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    connector: Mapped[str] = mapped_column(String(64), primary_key=True)
    target: Mapped[str] = mapped_column(String(1024), primary_key=True)
    member: Mapped[str] = mapped_column(String(1024), primary_key=True)
    origin: Mapped[str] = mapped_column(String(16))
    upn: Mapped[str | None] = mapped_column(String(256))
    recorded_at: Mapped[datetime]
    pending: Mapped[str | None] = mapped_column(String(8))  # the change being made


class ConnectorStateRow(Base):
    """How a connector's last passes went (0011); failing and drift are JSON lists."""

    __tablename__ = "connector_states"
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    connector: Mapped[str] = mapped_column(String(64), primary_key=True)
    lease_until: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(36))
    wanted_digest: Mapped[str] = mapped_column(String(64))
    config_digest: Mapped[str] = mapped_column(String(64))
    last_run_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    failures: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    alerted_at: Mapped[datetime | None]
    failing: Mapped[str] = mapped_column(Text)
    drift: Mapped[str] = mapped_column(Text)
