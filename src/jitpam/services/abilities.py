"""What a signed-in user may do, asked once per page: which pages and buttons to show them.

Showing is a courtesy, never the rule: every action is decided again by its use case. The answers
come from the same ``decide`` that guards the operations, so a just-in-time grant of a jitpam role
shows its pages for as long as it lasts.
"""

from __future__ import annotations

from dataclasses import dataclass

from jitpam.domain.operations import AuditOperation
from jitpam.services.authorization import caller_user, may_each
from jitpam.services.context import Caller, ServiceContext


@dataclass(frozen=True)
class Abilities:
    upn: str
    display_name: str
    organization: str
    control_enabled: bool
    manage_control: bool  # the privileged access settings
    manage_policies: bool
    see_all_requests: bool
    read_audit: bool


def abilities(ctx: ServiceContext, *, caller: Caller) -> Abilities:
    with ctx.reader() as uow:
        at = ctx.clock.now()
        user = caller_user(uow, caller)
        org = uow.orgs.get(caller.org_id)
        control, policies, see_all, audit = (
            d.allowed
            for d in may_each(
                uow,
                user=user,
                operations=(
                    AuditOperation.ENABLE_ACCESS_CONTROL,
                    AuditOperation.NEW_POLICY,
                    AuditOperation.GET_REQUEST,
                    AuditOperation.SEARCH_AUDIT_LOG,
                ),
                at=at,
            )
        )
        return Abilities(
            upn=user.upn,
            display_name=user.display_name,
            organization=org.name if org is not None else "",
            control_enabled=uow.orgs.control(caller.org_id).enabled,
            manage_control=control,
            manage_policies=policies,
            see_all_requests=see_all,
            read_audit=audit,
        )
