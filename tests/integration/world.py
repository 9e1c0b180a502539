"""A small test world: one fresh organization with named users, groups and roles.

Tests speak in the product's words (``world.user("alice", roles=["Move Mailboxes"])``) and get
``Caller`` values to pass to the services, exactly as an entry point would.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from uuid import uuid4

from jitpam.adapters.clock import FixedClock
from jitpam.domain.directory import UserKind
from jitpam.domain.policy import ApprovalType, Policy, PolicyType
from jitpam.runtime.decision_index import MemoryDecisionIndex
from jitpam.runtime.group_commit import LoopGroupCommit, ThreadGroupCommit
from jitpam.services import directory, organizations, policies
from jitpam.services.context import Caller, ServiceContext


def own_process(ctx: ServiceContext) -> ServiceContext:
    """``ctx`` as a server process of its own holds it: its own decision index and group
    commits, the classes ``bootstrap`` chooses (no writer queue: the services never use it)."""
    return replace(
        ctx,
        index=MemoryDecisionIndex(),
        checks=ThreadGroupCommit(),
        async_checks=LoopGroupCommit(),
    )


@dataclass(frozen=True)
class Person:
    caller: Caller
    upn: str


class World:
    def __init__(self, ctx: ServiceContext, clock: FixedClock) -> None:
        self.ctx = ctx
        self.clock = clock
        suffix = uuid4().hex[:12]
        self.domain = f"{suffix}.example.com"
        org, admin = organizations.create_organization(
            ctx,
            name=f"t-{suffix}",
            admin_upn=f"admin@{self.domain}",
            admin_display_name="Organization Admin",
            catalogs=("exchange",),
        )
        self.org = org
        self.admin = Person(Caller(org.id, admin.id), admin.upn)

    def upn(self, name: str) -> str:
        return f"{name}@{self.domain}"

    def guest_home(self, name: str) -> str:
        """A guest's own address, in a domain of another organization."""
        return f"{name}@partner.example.net"

    def user(
        self,
        name: str,
        *,
        kind: UserKind = UserKind.PERSON,
        roles: tuple[str, ...] = (),
        role_groups: tuple[str, ...] = (),
        by: Person | None = None,
    ) -> Person:
        """A new user, made by ``by`` (the world's admin by default); the admin assigns roles.
        A guest comes from another organization's domain (``guest_upn``); ``upn`` is the name
        they are stored under."""
        home = self.guest_home(name) if kind is UserKind.GUEST else self.upn(name)
        user = directory.add_user(
            self.ctx,
            caller=(by or self.admin).caller,
            upn=home,
            display_name=name.title(),
            kind=kind,
        )
        for role in roles:
            directory.change_assignment(
                self.ctx, caller=self.admin.caller, role=role, user=user.upn, add=True
            )
        for group in role_groups:
            directory.change_assignment(
                self.ctx, caller=self.admin.caller, role_group=group, user=user.upn, add=True
            )
        return Person(Caller(self.org.id, user.id), user.upn)

    def group(self, name: str, *members: Person, by: Person | None = None) -> str:
        """A new group with these members, made and filled by ``by`` (default: the admin)."""
        caller = (by or self.admin).caller
        directory.add_group(self.ctx, caller=caller, name=name, email=self.upn(name.lower()))
        for member in members:
            directory.change_membership(
                self.ctx, caller=caller, group=name, upn=member.upn, add=True
            )
        return name

    def exempt(self, *people: Person) -> None:
        """Make them system accounts as the installation does (``organizations
        .add_system_accounts``): the world's admin created them, so a designation of theirs would
        not count (separation of duties)."""
        organizations.add_system_accounts(
            self.ctx, org_name=self.org.name, upns=[p.upn for p in people]
        )

    def policy(
        self,
        target: str,
        *,
        type: PolicyType = PolicyType.TASK,
        approval: ApprovalType = ApprovalType.MANUAL,
        approver_group: str | None = None,
        by: Person | None = None,
        **options: object,
    ) -> Policy:
        return policies.new_policy(
            self.ctx,
            caller=(by or self.admin).caller,
            type=type,
            target=target,
            approval_type=approval,
            approver_group=approver_group,
            **options,  # type: ignore[arg-type]
        ).policy

    def later(self, **delta: float) -> None:
        self.clock.advance(timedelta(**delta))
