"""Audit operations are one enumeration, and each says how its records change decisions.

The decision index follows the audit chain and forgets what each record's operation says it
changed; an operation wrongly said to change nothing would let a check decide on what it no
longer holds. So the classification is pinned here, operation by operation: a new operation
cannot be added without saying, here too, whether and how it changes decisions. The values are
pinned as well, since the audit log stores and hashes them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jitpam.catalogs import BUILTIN, shipped_catalog
from jitpam.domain.catalog import parse_catalog
from jitpam.domain.operations import (
    REQUESTER,
    STEWARD,
    AuditOperation,
    DecisionEffect,
    record_effect,
)

NONE = DecisionEffect.NONE
GRANTS = DecisionEffect.GRANTS
TOKENS = DecisionEffect.TOKENS
CREDENTIALS = DecisionEffect.CREDENTIALS
CREDENTIALS_AND_TOKENS = DecisionEffect.CREDENTIALS_AND_TOKENS
ORGANIZATION = DecisionEffect.ORGANIZATION

CLASSIFIED = {
    "New-Organization": ORGANIZATION,
    "Add-OrganizationDomain": NONE,  # a domain for new users' names: no user changes
    "Add-SystemAccount": ORGANIZATION,
    "Import-TaskCatalog": ORGANIZATION,
    "Enable-ElevatedAccessControl": ORGANIZATION,
    "Disable-ElevatedAccessControl": ORGANIZATION,
    "Set-OrganizationConfig": ORGANIZATION,
    "New-ElevatedAccessApprovalPolicy": ORGANIZATION,
    "Set-ElevatedAccessApprovalPolicy": ORGANIZATION,
    "Remove-ElevatedAccessApprovalPolicy": ORGANIZATION,
    "New-ElevatedAccessRequest": NONE,  # a pending request grants nothing
    "Get-ElevatedAccessRequest": NONE,
    "Approve-ElevatedAccessRequest": GRANTS,
    "Deny-ElevatedAccessRequest": NONE,
    "Cancel-ElevatedAccessRequest": NONE,
    "Expire-ElevatedAccessRequest": NONE,  # the clock decided it already
    "Revoke-ElevatedAccessAuthorization": GRANTS,
    "Complete-ElevatedAccessAuthorization": NONE,  # the clock decided it already
    "New-User": ORGANIZATION,
    "Set-User": ORGANIZATION,
    "New-Group": ORGANIZATION,
    "Set-Group": ORGANIZATION,  # SCIM renames a group, or takes it over
    "Remove-Group": ORGANIZATION,
    "Add-GroupMember": ORGANIZATION,
    "Remove-GroupMember": ORGANIZATION,
    "New-ManagementRoleAssignment": ORGANIZATION,
    "Remove-ManagementRoleAssignment": ORGANIZATION,
    "Sync-Directory": ORGANIZATION,  # SCIM's task; its changes are recorded as the ones above
    "Sign-In": NONE,
    "Sign-Out": TOKENS,
    "Add-OidcLink": NONE,  # one's own identity: steers nobody else
    "Set-Password": CREDENTIALS_AND_TOKENS,
    "New-ApiToken": CREDENTIALS,
    "Revoke-ApiToken": TOKENS,
    "Test-ElevatedAccess": NONE,
    "Start-TaskRun": NONE,
    "Complete-TaskRun": NONE,
    "Search-AuditLog": NONE,
    "Export-AuditCheckpoint": NONE,
    "New-Webhook": NONE,
    "Get-Webhook": NONE,
    "Remove-Webhook": NONE,
    "Test-Webhook": NONE,
    "Get-Outbox": NONE,
    "Retry-OutboxMessage": NONE,
    "Install-Application": ORGANIZATION,  # creates the application's account
    "Test-DataAccess": NONE,
    # Customer Lockbox: decided from the lockbox requests, never from the decision index
    "Set-LockboxOperator": NONE,
    "New-AccessToCustomerDataRequest": NONE,
    "Set-AccessToCustomerDataRequest": NONE,
    "Get-AccessToCustomerDataRequest": NONE,
    "Revoke-AccessToCustomerDataRequest": NONE,
    "Expire-AccessToCustomerDataRequest": NONE,
    "Complete-AccessToCustomerDataRequest": NONE,
    "Test-AccessToCustomerData": NONE,
    # connectors make grants real elsewhere; no decision of jitpam's changes
    "Add-ConnectorMember": NONE,
    "Remove-ConnectorMember": NONE,
    "Register-ConnectorMember": NONE,
    "Report-ConnectorDrift": NONE,
    "Sync-Connector": NONE,
    "Get-Connector": NONE,
}


def test_every_operation_says_whether_and_how_it_changes_decisions() -> None:
    assert {op.value: op.effect for op in AuditOperation} == CLASSIFIED
    assert all(isinstance(op.effect, DecisionEffect) for op in AuditOperation)


def test_operations_are_stored_as_their_names() -> None:
    for op in AuditOperation:
        assert str(op) == op.value == f"{op}"
        assert type(op.value) is str
        assert AuditOperation.named(op.value) is op
    assert len({op.value for op in AuditOperation}) == len(AuditOperation)


def test_every_jitpam_task_is_named_after_an_operation() -> None:
    """``authorize`` and ``may`` take an operation and check the task named after it."""
    catalog = parse_catalog(shipped_catalog(BUILTIN), source="jitpam.toml", allow_builtin=True)
    for task in catalog.tasks:
        assert AuditOperation.named(task.name) is not None, task


def test_a_name_this_version_does_not_know_may_have_changed_anything() -> None:
    assert AuditOperation.named("Set-SomethingNew") is None
    assert record_effect("Set-SomethingNew", {}) is ORGANIZATION
    assert record_effect("new-user", {}) is ORGANIZATION  # names are matched exactly


@pytest.mark.parametrize("op", [op for op in AuditOperation if op.effect in (NONE, ORGANIZATION)])
def test_most_operations_change_the_same_whatever_their_record_says(op: AuditOperation) -> None:
    assert record_effect(op, {}) is op.effect
    assert record_effect(op, {STEWARD: "a@example.com", REQUESTER: "b@example.com"}) is op.effect


def test_a_grant_change_names_the_user_whose_grants_changed() -> None:
    for op in (AuditOperation.APPROVE_REQUEST, AuditOperation.REVOKE_AUTHORIZATION):
        assert record_effect(op, {REQUESTER: "alice@example.com"}) is GRANTS


def test_a_credential_of_ones_own_changes_no_decision_but_one_set_by_a_steward_may() -> None:
    assert record_effect(AuditOperation.NEW_API_TOKEN, {"user": "a@example.com"}) is NONE
    assert record_effect(AuditOperation.SET_PASSWORD, {"by": "self"}) is TOKENS
    for op in (AuditOperation.NEW_API_TOKEN, AuditOperation.SET_PASSWORD):
        assert record_effect(op, {STEWARD: "admin@example.com"}) is ORGANIZATION


def test_token_revocations_change_the_tokens() -> None:
    for op in (AuditOperation.REVOKE_API_TOKEN, AuditOperation.SIGN_OUT):
        assert record_effect(op, {}) is TOKENS


def test_the_reference_names_every_operation() -> None:
    reference = (Path(__file__).parents[2] / "docs" / "reference.md").read_text()
    missing = [
        op.value
        for op in AuditOperation
        if f"`{op.value}`" not in reference and f"`jitpam\\{op.value}`" not in reference
    ]
    assert not missing, f"docs/reference.md does not say what these record: {missing}"
