"""Group claims: which jitpam groups an identity provider's groups claim decides.

The installation's settings list, per organization, the jitpam groups a claim value stands for
(``"contoso:Helpdesk" = "sg-helpdesk"``). At each OIDC sign-in the user's membership of exactly
those groups follows the claim; every other group is left as it is. A group that makes its
members approvers is filled from claims only when the organization opted it in (the same opt-in
as SCIM's: ``jitpam config set --scim-approver-group NAME``); the mapping itself is server-side
configuration, so such a membership counts as the installation's (``None``), as rows
``jitpam org create`` makes do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class ClaimedGroup:
    """One jitpam group of one organization, and the claim value that means membership."""

    org: str
    group: str
    claim: str


@dataclass(frozen=True)
class GroupClaimMap:
    """Every mapped group of the installation (empty: group claims change nothing)."""

    groups: tuple[ClaimedGroup, ...] = ()

    @classmethod
    def of(cls, mapping: Iterable[tuple[str, str]]) -> GroupClaimMap:
        """From the settings: ("org:Group", claim value) pairs."""
        out = []
        for key, claim in mapping:
            org, _, group = key.partition(":")
            out.append(ClaimedGroup(org.strip(), group.strip(), claim))
        return cls(tuple(out))

    def of_org(self, org_name: str) -> list[ClaimedGroup]:
        return [g for g in self.groups if g.org.casefold() == org_name.casefold()]


class Skip(StrEnum):
    """Why a claim did not change a membership; the value is what the audit log says."""

    UNKNOWN_GROUP = "no such group"
    APPROVER_GROUP = "approver group not opted in (scim_approver_groups)"
    GUARDED_ROLE = "the group holds a jitpam role a policy makes just in time"
    SCIM_GROUP = "managed by the identity provider's SCIM sync"


def wanted(group: ClaimedGroup, claims: frozenset[str]) -> bool:
    """Whether the claim says the user belongs to the group (values compare exactly)."""
    return group.claim in claims


def may_remove(*, approves: bool, opted_in: bool, scim: bool) -> Skip | None:
    """Whether a claim may remove a member: not from a group SCIM manages (its sync decides),
    nor from an approver group the organization did not opt in (a sign-in must not drop its
    approvers below what the policies need)."""
    if scim:
        return Skip.SCIM_GROUP
    if approves and not opted_in:
        return Skip.APPROVER_GROUP
    return None


def may_add(*, approves: bool, opted_in: bool, guarded: bool) -> Skip | None:
    """Whether a claim may add a member: never to a group holding a guarded jitpam role (only a
    system account may assign one standing), and to an approver group only when the
    organization opted it in."""
    if guarded:
        return Skip.GUARDED_ROLE
    if approves and not opted_in:
        return Skip.APPROVER_GROUP
    return None
