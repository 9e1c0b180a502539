"""jitpam's operations: the names its audit records carry, and how each can change a decision.

Every audit record names one of these operations, and jitpam's own management tasks (the built-in
``jitpam`` catalog) are named after the operations they guard. Each member states how a successful
record of it can change what ``decide`` answers: the decision index follows the audit chain and
forgets exactly what that says (runtime/decision_index.py). A member cannot be written without
its effect, so no operation can be added without saying whether it changes decisions.

The values are what the audit log stores and hashes: never change one. A record whose operation
this version does not know (written by another version) is read as it is, as text.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum, StrEnum

REQUESTER = "requester"  # in a GRANTS record: the UPN of the user whose grants changed
STEWARD = "steward"  # in a CREDENTIALS record: who set a credential for another account


class DecisionEffect(Enum):
    """How a successful record of an operation can change a decision of its organization."""

    NONE = "none"
    """It changes no decision (a read, a request still pending, a check, a sign-in)."""

    GRANTS = "grants"
    """It changes the grants of one user, the one its record names as ``REQUESTER``."""

    TOKENS = "tokens"
    """It revokes API tokens (one token, the one signed out, or all of a user's)."""

    CREDENTIALS = "credentials"
    """It gives an account a credential. For oneself that changes nothing; for another account
    its record names a ``STEWARD``, who now steers the account: that can end the account's
    exemption (separation of duties), so it may change any decision."""

    CREDENTIALS_AND_TOKENS = "credentials and tokens"
    """As CREDENTIALS, and it revokes API tokens (a password set)."""

    ORGANIZATION = "organization"
    """It may change any decision of the organization (a role, a group, a policy, control, the
    catalog, a user's state)."""


class AuditOperation(StrEnum):
    """An operation as the audit log names it, with its effect on decisions (``effect``)."""

    effect: DecisionEffect

    def __new__(cls, value: str, effect: DecisionEffect) -> AuditOperation:
        member = str.__new__(cls, value)
        member._value_ = value
        member.effect = effect
        return member

    @classmethod
    def named(cls, text: str) -> AuditOperation | None:
        """The operation a stored record names, or None for a name this version does not know."""
        return _BY_NAME.get(text)

    # Organizations, installation-level (recorded as done by jitpam itself).
    NEW_ORGANIZATION = "New-Organization", DecisionEffect.ORGANIZATION
    ADD_ORGANIZATION_DOMAIN = "Add-OrganizationDomain", DecisionEffect.NONE
    ADD_SYSTEM_ACCOUNT = "Add-SystemAccount", DecisionEffect.ORGANIZATION
    IMPORT_TASK_CATALOG = "Import-TaskCatalog", DecisionEffect.ORGANIZATION

    # Access control and the organization's settings.
    ENABLE_ACCESS_CONTROL = "Enable-ElevatedAccessControl", DecisionEffect.ORGANIZATION
    DISABLE_ACCESS_CONTROL = "Disable-ElevatedAccessControl", DecisionEffect.ORGANIZATION
    SET_ORGANIZATION_CONFIG = "Set-OrganizationConfig", DecisionEffect.ORGANIZATION

    # Approval policies.
    NEW_POLICY = "New-ElevatedAccessApprovalPolicy", DecisionEffect.ORGANIZATION
    SET_POLICY = "Set-ElevatedAccessApprovalPolicy", DecisionEffect.ORGANIZATION
    REMOVE_POLICY = "Remove-ElevatedAccessApprovalPolicy", DecisionEffect.ORGANIZATION

    # Requests and the authorizations approvals create. A request grants nothing until it is
    # approved (an Auto approval is an Approve record of its own); an expiry or a completion is
    # bookkeeping of what the clock decided already.
    NEW_REQUEST = "New-ElevatedAccessRequest", DecisionEffect.NONE
    GET_REQUEST = "Get-ElevatedAccessRequest", DecisionEffect.NONE  # see every request
    APPROVE_REQUEST = "Approve-ElevatedAccessRequest", DecisionEffect.GRANTS
    DENY_REQUEST = "Deny-ElevatedAccessRequest", DecisionEffect.NONE
    CANCEL_REQUEST = "Cancel-ElevatedAccessRequest", DecisionEffect.NONE
    EXPIRE_REQUEST = "Expire-ElevatedAccessRequest", DecisionEffect.NONE
    REVOKE_AUTHORIZATION = "Revoke-ElevatedAccessAuthorization", DecisionEffect.GRANTS
    COMPLETE_AUTHORIZATION = "Complete-ElevatedAccessAuthorization", DecisionEffect.NONE

    # Applications and their data access requests: installing one creates its account (as
    # New-User does) and files its requests; a check of its data access changes nothing.
    INSTALL_APPLICATION = "Install-Application", DecisionEffect.ORGANIZATION
    TEST_DATA_ACCESS = "Test-DataAccess", DecisionEffect.NONE

    # Customer Lockbox (domain/lockbox.py): recorded in the customer's chain and the operator's.
    # A lockbox grant is decided from the lockbox requests themselves, never from the decision
    # index, so none of them changes a decision the index keeps.
    SET_LOCKBOX_OPERATOR = "Set-LockboxOperator", DecisionEffect.NONE
    NEW_LOCKBOX_REQUEST = "New-AccessToCustomerDataRequest", DecisionEffect.NONE
    SET_LOCKBOX_REQUEST = "Set-AccessToCustomerDataRequest", DecisionEffect.NONE
    GET_LOCKBOX_REQUEST = "Get-AccessToCustomerDataRequest", DecisionEffect.NONE
    REVOKE_LOCKBOX_REQUEST = "Revoke-AccessToCustomerDataRequest", DecisionEffect.NONE
    EXPIRE_LOCKBOX_REQUEST = "Expire-AccessToCustomerDataRequest", DecisionEffect.NONE
    COMPLETE_LOCKBOX_REQUEST = "Complete-AccessToCustomerDataRequest", DecisionEffect.NONE
    TEST_CUSTOMER_DATA_ACCESS = "Test-AccessToCustomerData", DecisionEffect.NONE

    # The directory: users, groups, standing role assignments.
    NEW_USER = "New-User", DecisionEffect.ORGANIZATION
    SET_USER = "Set-User", DecisionEffect.ORGANIZATION
    NEW_GROUP = "New-Group", DecisionEffect.ORGANIZATION
    SET_GROUP = "Set-Group", DecisionEffect.ORGANIZATION  # SCIM: a group renamed or taken over
    REMOVE_GROUP = "Remove-Group", DecisionEffect.ORGANIZATION
    ADD_GROUP_MEMBER = "Add-GroupMember", DecisionEffect.ORGANIZATION
    REMOVE_GROUP_MEMBER = "Remove-GroupMember", DecisionEffect.ORGANIZATION
    NEW_ROLE_ASSIGNMENT = "New-ManagementRoleAssignment", DecisionEffect.ORGANIZATION
    REMOVE_ROLE_ASSIGNMENT = "Remove-ManagementRoleAssignment", DecisionEffect.ORGANIZATION
    # The identity provider's changes (SCIM): the task its account needs; each change is
    # recorded as the directory operation it is (New-User, Set-User, ...) with ``via: scim``.
    SYNC_DIRECTORY = "Sync-Directory", DecisionEffect.ORGANIZATION

    # Signing in and credentials. Linking one's own OIDC identity steers nobody else.
    SIGN_IN = "Sign-In", DecisionEffect.NONE
    SIGN_OUT = "Sign-Out", DecisionEffect.TOKENS
    ADD_OIDC_LINK = "Add-OidcLink", DecisionEffect.NONE
    SET_PASSWORD = "Set-Password", DecisionEffect.CREDENTIALS_AND_TOKENS
    NEW_API_TOKEN = "New-ApiToken", DecisionEffect.CREDENTIALS
    REVOKE_API_TOKEN = "Revoke-ApiToken", DecisionEffect.TOKENS

    # Checks and task runs.
    TEST_ACCESS = "Test-ElevatedAccess", DecisionEffect.NONE
    START_TASK_RUN = "Start-TaskRun", DecisionEffect.NONE
    COMPLETE_TASK_RUN = "Complete-TaskRun", DecisionEffect.NONE

    # Connectors (domain/connectors.py): jitpam's changes in target systems, recorded as jitpam's
    # own (or, for a pass someone asked for, theirs). They make real what grants decided and
    # change no decision of jitpam's.
    ADD_CONNECTOR_MEMBER = "Add-ConnectorMember", DecisionEffect.NONE
    REMOVE_CONNECTOR_MEMBER = "Remove-ConnectorMember", DecisionEffect.NONE
    REGISTER_CONNECTOR_MEMBER = "Register-ConnectorMember", DecisionEffect.NONE  # found there
    REPORT_CONNECTOR_DRIFT = "Report-ConnectorDrift", DecisionEffect.NONE
    SYNC_CONNECTOR = "Sync-Connector", DecisionEffect.NONE
    GET_CONNECTOR = "Get-Connector", DecisionEffect.NONE

    # The audit log.
    SEARCH_AUDIT_LOG = "Search-AuditLog", DecisionEffect.NONE
    EXPORT_AUDIT_CHECKPOINT = "Export-AuditCheckpoint", DecisionEffect.NONE

    # Notifications: webhooks and the outbox.
    NEW_WEBHOOK = "New-Webhook", DecisionEffect.NONE
    GET_WEBHOOK = "Get-Webhook", DecisionEffect.NONE
    REMOVE_WEBHOOK = "Remove-Webhook", DecisionEffect.NONE
    TEST_WEBHOOK = "Test-Webhook", DecisionEffect.NONE
    GET_OUTBOX = "Get-Outbox", DecisionEffect.NONE
    RETRY_OUTBOX_MESSAGE = "Retry-OutboxMessage", DecisionEffect.NONE


_BY_NAME: dict[str, AuditOperation] = {op.value: op for op in AuditOperation}


def record_effect(operation: str, details: Mapping[str, object]) -> DecisionEffect:
    """What a successful record of ``operation`` with ``details`` changed, as one of NONE,
    GRANTS (of the user named as REQUESTER), TOKENS or ORGANIZATION. An operation this version
    does not know (another version wrote it) may have changed anything: ORGANIZATION."""
    known = AuditOperation.named(operation)
    if known is None:
        return DecisionEffect.ORGANIZATION
    effect = known.effect
    if effect not in (DecisionEffect.CREDENTIALS, DecisionEffect.CREDENTIALS_AND_TOKENS):
        return effect
    if STEWARD in details:
        return DecisionEffect.ORGANIZATION  # its steward may have ended an exemption
    if effect is DecisionEffect.CREDENTIALS_AND_TOKENS:
        return DecisionEffect.TOKENS
    return DecisionEffect.NONE  # a credential of one's own
