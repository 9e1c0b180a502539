"""Separation of duties, read from the database: the facts ``domain/separation.py`` judges.

Who steers an account, who added the memberships that make someone an approver, who last set a
policy's approval setup, and who designated a system account: each use case that votes, counts
votes, files a request, designates a system account or checks an exemption asks here, so the one
rule is applied the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from jitpam.domain.control import AccessControl
from jitpam.domain.policy import Policy
from jitpam.domain.requests import AccessRequest
from jitpam.domain.separation import (
    ApprovalSetup,
    Hand,
    designation_refusal,
    exemption_counts,
    hand_in_vote,
)
from jitpam.services.ports import UnitOfWork


def approver_group(policy: Policy | None, control: AccessControl) -> UUID | None:
    """The group whose members vote on the policy's requests: its own, or the default one."""
    if policy is not None and policy.approver_group_id is not None:
        return policy.approver_group_id
    return control.default_approver_group_id


def approval_setup(policy: Policy, control: AccessControl) -> ApprovalSetup:
    """Who last set each setting that decides whose votes count on the policy's requests."""
    return ApprovalSetup(
        approver_group_by=policy.approver_group_set_by,
        approval_type_by=policy.approval_type_set_by,
        approvals_required_by=policy.approvals_required_set_by,
        default_group_by=control.default_approver_group_set_by,
        uses_default_group=policy.approver_group_id is None,
    )


def hands_in_votes(
    uow: UnitOfWork,
    *,
    request: AccessRequest,
    policy: Policy,
    control: AccessControl,
    voter_ids: Iterable[UUID],
) -> dict[UUID, Hand | None]:
    """For each voter, how the requester has a hand in their vote on ``request`` now (None:
    none), read in a fixed number of queries whatever the number of voters."""
    voters = frozenset(voter_ids)
    group_id = approver_group(policy, control)
    paths = uow.groups.member_paths(group_id, voters) if group_id is not None else {}
    stewards = uow.users.stewards(voters)
    setup = approval_setup(policy, control)
    return {
        v: hand_in_vote(
            requester_id=request.requester_id,
            voter_id=v,
            voter_stewards=stewards.get(v, frozenset()),
            paths=paths.get(v, []),
            setup=setup,
        )
        for v in voters
    }


def hand_in(
    uow: UnitOfWork, *, request: AccessRequest, policy: Policy, control: AccessControl, voter: UUID
) -> Hand | None:
    """How the requester has a hand in one voter's vote now (None: none)."""
    return hands_in_votes(uow, request=request, policy=policy, control=control, voter_ids=(voter,))[
        voter
    ]


def refuse_designations(uow: UnitOfWork, *, designator_id: UUID, adding: frozenset[UUID]) -> None:
    """Raises SeparationOfDuties when the designator would make themself, or an account they
    steer, a system account."""
    stewards = uow.users.stewards(adding)
    names = uow.users.upns(_org_of(uow, designator_id), adding)
    for account in sorted(adding):
        refusal = designation_refusal(
            designator_id=designator_id,
            account_id=account,
            account=names.get(account, str(account)),
            account_stewards=stewards.get(account, frozenset()),
        )
        if refusal is not None:
            raise refusal


def _org_of(uow: UnitOfWork, user_id: UUID) -> UUID:
    user = uow.users.get(user_id)
    if user is None:
        raise LookupError(f"no user {user_id}")
    return user.org_id


def exempt_accounts(uow: UnitOfWork, control: AccessControl) -> frozenset[UUID]:
    """The system accounts whose exemption counts now: designated by the installation, or by
    someone who is neither the account nor one of its stewards (domain/separation.py)."""
    if not control.system_account_ids:
        return frozenset()
    stewards = uow.users.stewards(control.system_account_ids)
    return frozenset(
        a
        for a in control.system_account_ids
        if exemption_counts(
            account_id=a,
            designated_by=control.system_account_designators.get(a),
            account_stewards=stewards.get(a, frozenset()),
        )
    )


def is_exempt(uow: UnitOfWork, control: AccessControl, user_id: UUID) -> bool:
    """Whether ``user_id`` is a system account whose exemption counts now."""
    if user_id not in control.system_account_ids:
        return False
    stewards = uow.users.stewards((user_id,)).get(user_id, frozenset())
    return exemption_counts(
        account_id=user_id,
        designated_by=control.system_account_designators.get(user_id),
        account_stewards=stewards,
    )
