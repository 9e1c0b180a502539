"""What a signed-in user may do, asked once per page: which pages and buttons to show them.

Showing is a courtesy, never the rule: every action is decided again by its use case. The answers
come from the same ``decide`` that guards the operations, so a just-in-time grant of a jitpam role
shows its pages for as long as it lasts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from jitpam.domain.directory import User
from jitpam.domain.operations import AuditOperation
from jitpam.services.auth import token_caller
from jitpam.services.authorization import caller_user, may_each
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.lockbox import may_file
from jitpam.services.ports import UnitOfWork
from jitpam.services.requests import awaiting_vote

PENDING_SHOWN = 100  # requests awaiting one's vote counted at most, for a page's badge


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
    file_lockbox: bool = False  # the operator's Lockbox Requesters: the lockbox request form
    manage_connectors: bool = False  # the connectors' pages (a server with connectors only)


def abilities(ctx: ServiceContext, *, caller: Caller) -> Abilities:
    with ctx.reader() as uow:
        return _abilities(
            uow,
            caller,
            caller_user(uow, caller),
            ctx.clock.now(),
            connectors=ctx.connectors is not None,
        )


@dataclass(frozen=True)
class Viewer:
    """Who views a page: the caller its session token stands for, what they may do, and how many
    requests wait for their vote (at most PENDING_SHOWN)."""

    caller: Caller
    abilities: Abilities
    pending_reviews: int


def page_viewer(ctx: ServiceContext, *, secret: str) -> Viewer:
    """The viewer behind a session token, in one transaction. Raises NotSignedIn as
    ``auth.authenticate`` does, and NotPermitted for a user who may not use jitpam now."""
    with ctx.reader() as uow:
        at = ctx.clock.now()
        caller = token_caller(uow, secret=secret, at=at)
        user = caller_user(uow, caller)
        return Viewer(
            caller,
            _abilities(uow, caller, user, at, connectors=ctx.connectors is not None),
            awaiting_vote(uow, caller, user, at=at, limit=PENDING_SHOWN),
        )


def _abilities(
    uow: UnitOfWork, caller: Caller, user: User, at: datetime, *, connectors: bool
) -> Abilities:
    org = uow.orgs.get(caller.org_id)
    control, policies, see_all, audit, configure = (
        d.allowed
        for d in may_each(
            uow,
            user=user,
            operations=(
                AuditOperation.ENABLE_ACCESS_CONTROL,
                AuditOperation.NEW_POLICY,
                AuditOperation.GET_REQUEST,
                AuditOperation.SEARCH_AUDIT_LOG,
                AuditOperation.SET_ORGANIZATION_CONFIG,  # what the connectors' use cases ask
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
        file_lockbox=may_file(uow, user, at),
        manage_connectors=connectors and configure,
    )
