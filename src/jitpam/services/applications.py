"""Applications and their data access: installing one files its data access requests at once,
and the application asks, before each use, whether a data scope covers a resource now.

This is the seeds' "Managed access to Microsoft Graph": requests for data come in when an
application is installed. The installer is the requester of record (RequestorUPN); the grant is
the application's. Approvers decide with the ordinary approve and deny of requests, under
policies that cover data scopes (``Office365\\Mail.Read``) as other policies cover tasks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID, uuid4

from jitpam.domain.audit import Actor, AuditEvent, Outcome
from jitpam.domain.check import Decision, Reason
from jitpam.domain.directory import User, UserKind, check_text, normalize_upn, upn_domain
from jitpam.domain.errors import (
    AlreadyExists,
    ControlDisabled,
    InvalidInput,
    NotFound,
    NotPermitted,
)
from jitpam.domain.names import QualifiedName
from jitpam.domain.operations import AuditOperation
from jitpam.domain.policy import DEFAULT_DURATION_HOURS, PolicyType
from jitpam.domain.requests import AccessRequest, check_resources
from jitpam.domain.separation import Stewardship
from jitpam.domain.text import require_storable
from jitpam.services.authorization import authorize, caller_user, grant_details, may
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.directory import lookup_user, resolve_target
from jitpam.services.ports import UnitOfWork
from jitpam.services.requests import (
    RequestView,
    admit,
    covering_policy,
    open_request,
    request_views,
)
from jitpam.services.separation import set_up_account
from jitpam.services.use_case import use_case

MAX_SCOPES = 50
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Installed:
    """The application's new account and its data access requests, one per scope."""

    application: User
    requests: list[RequestView]


def _account_name(name: str, installer: User) -> str:
    """The application account's UPN: ``name`` as given when it is one, otherwise a name made
    from it in the installer's domain (``Contoso Insights`` -> ``contoso-insights@contoso.com``)."""
    if "@" in name:
        return normalize_upn(name)
    slug = _SLUG.sub("-", name.strip().lower()).strip("-")
    if not slug:
        raise InvalidInput("the application needs a name with a letter or digit")
    return normalize_upn(f"{slug}@{upn_domain(installer.upn)}")


def install_application(
    ctx: ServiceContext,
    *,
    caller: Caller,
    name: str,
    service: str,
    scopes: Sequence[str],
    resources: Sequence[str],
    reason: str,
    duration_hours: int = DEFAULT_DURATION_HOURS,
) -> Installed:
    """Install-Application (jitpam\\Application Installer): create the application's account and
    file a data access request for each scope of ``service`` in one transaction: all of it, or
    nothing when any scope has no policy, the installer is not among a policy's eligible
    installers, or a reason or a duration is refused. Auto policies approve at once."""
    op = AuditOperation.INSTALL_APPLICATION
    with use_case(ctx, caller=caller, operation=op, target=str(name)[:256]) as uow:
        at = ctx.clock.now()
        installer, how = authorize(uow, caller, op, at)
        control = uow.orgs.control(caller.org_id)
        if not control.enabled:
            raise ControlDisabled(
                "access control is disabled in this organization: requests are not accepted"
            )
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("the application needs a name")
        display = check_text(name.split("@")[0], field_name="the application's name", limit=200)
        upn = _account_name(name, installer)
        if uow.orgs.domain_owner(upn_domain(upn)) != caller.org_id:
            raise InvalidInput(f"{upn_domain(upn)} is not a domain of this organization")
        if uow.users.get_by_upn(upn) is not None:
            raise AlreadyExists(f"a user named {upn} already exists")
        if isinstance(scopes, str) or not scopes or len(scopes) > MAX_SCOPES:
            raise InvalidInput(f"name from 1 to {MAX_SCOPES} data scopes of {service!r}")
        covered = _own_data(uow, caller.org_id, check_resources(list(resources)))
        require_storable(service, "the service")
        wanted = [f"{service.strip()}\\{scope.strip()}" for scope in dict.fromkeys(scopes)]
        policies = [covering_policy(uow, caller.org_id, PolicyType.DATA_ACCESS, w) for w in wanted]
        for policy, _ in policies:
            admit(uow, requester=installer, policy=policy, control=control)

        application = User(uuid4(), caller.org_id, upn, display, upn, UserKind.APPLICATION)
        uow.users.add(application, at=at)
        set_up_account(uow, account=application, by=installer, how=Stewardship.CREATED, at=at)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(installer),
                operation=op,
                target=upn,
                at=at,
                details={
                    "service": service.strip(),
                    "scopes": [str(n) for _, n in policies],
                    "resources": list(covered),
                    **grant_details(how),
                },
            )
        )
        filed: list[AccessRequest] = [
            open_request(
                ctx,
                uow,
                requester=installer,
                policy=policy,
                control=control,
                reason=reason,
                duration_hours=duration_hours,
                at=at,
                subject=application,
                resources=covered,
            )
            for policy, _ in policies
        ]
        views = request_views(uow, caller.org_id, filed, at)
        uow.commit()
        return Installed(application, views)


def _own_data(uow: UnitOfWork, org_id: UUID, resources: tuple[str, ...]) -> tuple[str, ...]:
    """Refuse data that is not the organization's: a mailbox or user outside its domains, or a
    group it does not have (an organization approves access to its own data only)."""
    for resource in resources:
        kind, _, name = resource.partition(":")
        if kind in ("mailbox", "user") and uow.orgs.domain_owner(upn_domain(name)) != org_id:
            raise InvalidInput(f"{resource} is not in a domain of this organization")
        if kind == "group" and uow.groups.find(org_id, name) is None:
            raise InvalidInput(f"{resource}: no such group in this organization")
    return resources


def _covers(uow: UnitOfWork, request: AccessRequest, resource: str) -> bool:
    """Whether the request's data covers ``resource``: named in it, or (a user's mailbox or
    profile) the user is a member of a group it names, now."""
    kind, _, name = resource.partition(":")
    personal = kind in ("mailbox", "user")
    if personal and uow.orgs.domain_owner(upn_domain(name)) != request.org_id:
        return False  # another organization's data is never covered
    if resource in request.resources:
        return True
    if not personal:
        return False
    person = lookup_user(uow, request.org_id, name)
    if person is None:
        return False
    for covered in request.resources:
        group_kind, _, group_name = covered.partition(":")
        if group_kind != "group":
            continue
        group = uow.groups.find(request.org_id, group_name)
        if group is not None and uow.groups.is_member(group.id, person.id):
            return True
    return False


def check_data_access(
    ctx: ServiceContext,
    *,
    caller: Caller,
    service: str,
    scope: str,
    resource: str,
    user: str | None = None,
) -> Decision:
    """May the application ``user`` (None: the caller) use ``service\\scope`` on ``resource``
    now? Allowed only by an active data access authorization whose data covers the resource,
    read from the database at the moment of the check. Asked by the application itself or by a
    holder of jitpam\\Test-DataAccess (Access Checker); every decision is audited."""
    op = AuditOperation.TEST_DATA_ACCESS
    with use_case(ctx, caller=caller, operation=op, target=f"{service}\\{scope}"[:260]) as uow:
        at = ctx.clock.now()
        asker = caller_user(uow, caller)
        wanted = check_resources([resource])[0]
        subject: User | None = asker
        named = asker.upn
        if user is not None:
            require_storable(user, "the user")
            named = user.strip().lower()
            subject = lookup_user(uow, caller.org_id, named)
        if (subject is None or subject.id != asker.id) and not may(
            uow, user=asker, operation=op, at=at
        ).allowed:
            raise NotPermitted(f"{asker.upn} may ask only about themself")
        target = f"{service}\\{scope}"
        try:
            name: QualifiedName | str = resolve_target(
                uow, caller.org_id, PolicyType.DATA_ACCESS, target
            )
        except NotFound:
            name = target.strip()
        decision = Decision(False, Reason.UNKNOWN_USER)
        if subject is not None and not subject.enabled:
            decision = Decision(False, Reason.USER_DISABLED)
        elif subject is not None and isinstance(name, str):
            decision = Decision(False, Reason.UNKNOWN_TASK)
        elif subject is not None:
            grants = [
                r
                for r in uow.requests.active_for_user(caller.org_id, subject.id, at)
                if r.type is PolicyType.DATA_ACCESS and r.target == name
            ]
            covering = next((r for r in grants if _covers(uow, r, wanted)), None)
            if covering is not None and covering.authorization is not None:
                decision = Decision(True, Reason.AUTHORIZED, covering.authorization.id)
            elif grants:
                decision = Decision(False, Reason.RESOURCE_NOT_COVERED)
            else:
                decision = Decision(False, Reason.AUTHORIZATION_REQUIRED)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(asker),
                operation=op,
                target=str(name),
                at=at,
                outcome=Outcome.SUCCESS if decision.allowed else Outcome.REFUSED,
                details={
                    "user": named,
                    "resource": wanted,
                    "allowed": decision.allowed,
                    "reason": decision.reason.value,
                    "authorization_id": str(decision.authorization_id)
                    if decision.authorization_id
                    else None,
                },
            )
        )
        uow.commit()
        return decision
