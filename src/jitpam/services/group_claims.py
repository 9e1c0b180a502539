"""Group claims at OIDC sign-in: the user's memberships of the mapped groups follow the claim."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from jitpam.domain.audit import JITPAM, AuditEvent
from jitpam.domain.directory import PrincipalKind, Source, User
from jitpam.domain.group_claims import GroupClaimMap, Skip, may_add, may_remove, wanted
from jitpam.domain.operations import AuditOperation
from jitpam.domain.policy import PolicyType
from jitpam.services.jitpam_guards import role_guard
from jitpam.services.ports import UnitOfWork


def _guarded(uow: UnitOfWork, user: User, group_id: UUID) -> bool:
    for held in uow.assignments.of_principal(user.org_id, PrincipalKind.GROUP, group_id):
        if role_guard(uow, user.org_id, PolicyType(held.target_kind), held.target) is not None:
            return True
    return False


def apply_group_claims(
    uow: UnitOfWork,
    *,
    user: User,
    org_name: str,
    claims: frozenset[str] | None,
    claim_name: str,
    mapping: GroupClaimMap,
    at: datetime,
) -> dict[str, object]:
    """Bring ``user``'s memberships of the groups ``mapping`` lists for their organization in
    line with ``claims`` (None: the token did not carry the claim, nothing changes), in the
    caller's transaction. Each change is an Add-GroupMember or Remove-GroupMember record by
    jitpam (the installation's configuration made it; the membership's adder is None). Returns
    what the Sign-In record says about it."""
    mapped = mapping.of_org(org_name)
    if not mapped:
        return {}
    if claims is None:
        return {"groups_claim": "absent: memberships unchanged"}
    skipped: dict[str, str] = {}
    opted = uow.orgs.control(user.org_id).synced_approver_group_ids
    for entry in mapped:
        group = uow.groups.find(user.org_id, entry.group)
        if group is None:
            skipped[entry.group] = Skip.UNKNOWN_GROUP.value
            continue
        member = uow.groups.is_member(group.id, user.id, lock=True)
        want = wanted(entry, claims)
        if want == member:
            continue
        if want:
            why = may_add(
                approves=uow.groups.approves(group.id),
                opted_in=group.id in opted,
                guarded=_guarded(uow, user, group.id),
            )
            if why is not None:
                skipped[group.name] = why.value
                continue
            changed = uow.groups.add_member(group.id, user.id, added_by=None)
            op = AuditOperation.ADD_GROUP_MEMBER
        else:
            why = may_remove(
                approves=uow.groups.approves(group.id),
                opted_in=group.id in opted,
                scim=group.source is Source.SCIM,
            )
            if why is not None:
                skipped[group.name] = why.value
                continue
            changed = uow.groups.remove_member(group.id, user.id)
            op = AuditOperation.REMOVE_GROUP_MEMBER
        uow.record(
            AuditEvent(
                org_id=user.org_id,
                at=at,
                actor=JITPAM,
                operation=op,
                target=group.name,
                details={
                    "member": user.upn,
                    "changed": changed,
                    "via": "oidc",
                    "claim": {claim_name: entry.claim},
                },
            )
        )
    return {"groups_skipped": skipped} if skipped else {}
