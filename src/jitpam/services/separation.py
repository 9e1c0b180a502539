"""Separation of duties, read from the database: the facts ``domain/separation.py`` judges.

Who steers an account, who added the memberships that make someone an approver, who last set a
policy's approval setup, and who designated a system account: each use case that votes, counts
votes, files a request, designates a system account or checks an exemption asks here, so the one
rule is applied the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from jitpam.domain.control import AccessControl
from jitpam.domain.directory import User
from jitpam.domain.errors import SeparationOfDuties
from jitpam.domain.policy import ApprovalType, Policy
from jitpam.domain.requests import AccessRequest, ReviewDecision
from jitpam.domain.separation import (
    ApprovalSetup,
    Hand,
    Stewardship,
    designation_refusal,
    eligibility_refusal,
    exemption_counts,
    hand_in_vote,
    setup_refusal,
    steered_closure,
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
        eligible_by=policy.eligible_set_by,
        auto=policy.approval_type is ApprovalType.AUTO,
    )


def steers(uow: UnitOfWork, user_id: UUID) -> frozenset[UUID]:
    """Every account ``user_id`` steers, directly or through accounts they steer: one query per
    step of the chain (usually one)."""
    return steered_closure(user_id, uow.users.steered_by)


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
    requester_steers = steers(uow, request.requester_id)
    setup = approval_setup(policy, control)
    return {
        v: hand_in_vote(
            requester_id=request.requester_id,
            requester_steers=requester_steers,
            voter_id=v,
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


def steers_subject(uow: UnitOfWork, request: AccessRequest, voter_id: UUID) -> bool:
    """Whether ``voter_id`` created the application account of a data access request or set one
    of its credentials (directly, or through accounts they steer): their vote does not count."""
    return request.subject_id is not None and request.subject_id in steers(uow, voter_id)


def refuse_steering_what_one_approved(
    uow: UnitOfWork, *, account: User, by: User, at: datetime
) -> None:
    """Raises SeparationOfDuties when ``by`` approved a data access request of the application
    ``account`` that is still pending or active: taking its credentials now would make them
    both its approver and the holder of what they approved (the rule's other half: a steward's
    vote does not count)."""
    open_requests = [
        *uow.requests.pending_for_user(account.org_id, account.id, at),
        *uow.requests.active_for_user(account.org_id, account.id, at),
    ]
    for request in open_requests:
        if request.subject_id != account.id:
            continue
        if any(
            r.approver_id == by.id and r.decision is ReviewDecision.APPROVE for r in request.reviews
        ):
            raise SeparationOfDuties(
                f"{by.upn} approved {request.describe()} for {account.upn}, so they cannot set "
                "its credentials while that request is pending or its grant active "
                "(separation of duties)"
            )


def refuse_setup(
    uow: UnitOfWork, *, requester: UUID, policy: Policy, control: AccessControl
) -> None:
    """Raises SeparationOfDuties when the requester (or an account they steer) chose the policy's
    approval setup (no vote on their request could count), or, on an Auto policy, made
    themself eligible through group memberships they added."""
    requester_steers = steers(uow, requester)
    refusal = setup_refusal(
        requester_id=requester,
        requester_steers=requester_steers,
        setup=approval_setup(policy, control),
        describe=policy.describe(),
    )
    auto = policy.approval_type is ApprovalType.AUTO
    if refusal is None and auto and requester not in policy.eligible_user_ids:
        mine = frozenset({requester})
        paths = [
            path
            for group_id in sorted(policy.eligible_group_ids)
            for path in uow.groups.member_paths(group_id, mine).get(requester, [])
        ]
        refusal = eligibility_refusal(
            requester_id=requester,
            requester_steers=requester_steers,
            paths=paths,
            describe=policy.describe(),
        )
    if refusal is not None:
        raise refusal


def refuse_designations(
    uow: UnitOfWork, *, org_id: UUID, designator_id: UUID, adding: frozenset[UUID]
) -> None:
    """Raises SeparationOfDuties when the designator would make themself, or an account they
    steer, a system account."""
    designator_steers = steers(uow, designator_id)
    names = uow.users.upns(org_id, adding)
    for account in sorted(adding):
        refusal = designation_refusal(
            designator_id=designator_id,
            designator_steers=designator_steers,
            account_id=account,
            account=names.get(account, str(account)),
        )
        if refusal is not None:
            raise refusal


def exempt_accounts(
    uow: UnitOfWork, control: AccessControl, among: Iterable[UUID] | None = None
) -> frozenset[UUID]:
    """The system accounts (of ``among``, when given) whose exemption counts now: designated by
    the installation, or by someone who neither is the account nor steers it."""
    accounts = control.system_account_ids
    if among is not None:
        accounts = accounts & frozenset(among)
    designators = {control.system_account_designators.get(a) for a in accounts}
    steered = {d: steers(uow, d) for d in designators if d is not None}
    return frozenset(
        a
        for a in accounts
        if exemption_counts(
            account_id=a,
            designated_by=(d := control.system_account_designators.get(a)),
            designator_steers=steered[d] if d is not None else frozenset(),
        )
    )


def is_exempt(uow: UnitOfWork, control: AccessControl, user_id: UUID) -> bool:
    """Whether ``user_id`` is a system account whose exemption counts now."""
    return user_id in exempt_accounts(uow, control, among=(user_id,))


def set_up_account(
    uow: UnitOfWork, *, account: User, by: User, how: Stewardship, at: datetime
) -> bool:
    """Record that ``by`` created ``account`` or set one of its credentials: they steer it for
    good. A system account set up by someone becomes their designation, which does not count
    (they steer it) until someone independent designates it again. Returns whether it did:
    the caller's audit record says so."""
    uow.users.add_steward(account, by.id, how, at=at)
    if how is Stewardship.CREATED:  # a new account is no system account yet
        return False
    if account.id not in uow.orgs.control(account.org_id).system_account_ids:
        return False
    control = uow.orgs.control(account.org_id, for_update=True)
    designators = {**control.system_account_designators, account.id: by.id}
    uow.orgs.save_control(replace(control, system_account_designators=designators))
    return True
