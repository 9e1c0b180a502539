"""Separation of duties: when a requester has a hand in a vote on their own request.

One relation decides it, for every way a vote can be made or steered: a vote counts toward a
request only when its requester has no hand in it. The requester has a hand in voter V's vote on a
request under policy P when

1. they are V (self-approval);
2. they steer V's account: they created it, or they have ever set one of its credentials (a
   password, an API token; later second factors and chat links) - permanently, since whoever
   held the account for a moment could have done anything as V. Steering passes on: an account
   made or set up by an account the requester steers is steered by the requester too, so one
   account made for the purpose (a sock puppet) cannot do for them what they may not do;
3. they placed V among the approvers: every path of memberships through which V is in the
   approver group has a link they added (a link made by provisioning or group claims counts as
   added by whoever configured that sync);
4. they chose the approval setup: they were the last to set P's approver group, approval type or
   approvals required, or, when P uses the organization's default approver group, that group.
   Then no vote counts, Auto approval does not apply, and the request is refused when filed.

On an Auto policy, eligibility is the whole approval: a request is refused when filed if its
requester last set P's eligible requesters, or is eligible only through memberships of eligible
groups that they added.

In 3 and 4, whatever an account the requester steers did counts as done by the requester.

Accounts, memberships and settings made by the installation itself (``jitpam org create``, the
demo, rows older than this rule) have no maker: ``None`` below. A system account's exemption
counts only when whoever designated it neither is the account nor steers it; and whoever sets a
credential of a system account afterwards becomes its designator (the services record it so):
they steer it, so its exemption stops counting until someone independent designates it again.

Pure rules: the facts (who steers whom, who added which membership, who set what) are read by
the services and passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from jitpam.domain.errors import SeparationOfDuties

# A path of memberships from the voter to the approver group: who added each link (None: the
# installation). jitpam has no nested groups yet, so today each path is one membership.
MembershipPath = Sequence[UUID | None]


class Hand(StrEnum):
    """How a requester has a hand in a vote; the value names it in refusals and audit details."""

    SELF = "self"
    STEERS_ACCOUNT = "steers_account"
    PLACED_IN_GROUP = "placed_in_group"
    CHOSE_SETUP = "chose_setup"


class Stewardship(StrEnum):
    """How someone came to steer an account (recorded for good, never cleared)."""

    CREATED = "created"
    PASSWORD = "password"  # noqa: S105 - the kind of credential, not one
    API_TOKEN = "api_token"  # noqa: S105 - the kind of credential, not one
    # A sync account set the user name or email through SCIM: the address an OIDC sign-in is
    # first linked by, so whoever steers that account could point a sign-in at the user.
    SCIM_SIGN_IN = "scim_sign_in"


@dataclass(frozen=True)
class ApprovalSetup:
    """Who last set each setting that decides whose votes count on a policy's requests."""

    approver_group_by: UUID | None = None
    approval_type_by: UUID | None = None
    approvals_required_by: UUID | None = None
    # The organization's default approver group, when the policy has no group of its own.
    default_group_by: UUID | None = None
    uses_default_group: bool = False
    # The eligible requesters, which decide alone on an Auto policy.
    eligible_by: UUID | None = None
    auto: bool = False

    def chosen_by(self, acting: frozenset[UUID]) -> list[str]:
        """The settings one of ``acting`` was the last to set, in words (empty: none)."""
        settings = [
            (self.approver_group_by, "the approver group"),
            (self.approval_type_by, "the approval type"),
            (self.approvals_required_by, "the approvals required"),
        ]
        if self.uses_default_group:
            settings.append((self.default_group_by, "the organization's default approver group"))
        if self.auto:
            settings.append((self.eligible_by, "the eligible requesters"))
        return [what for by, what in settings if by is not None and by in acting]


HAND_TEXT = {
    Hand.STEERS_ACCOUNT: "{requester} created {voter}'s account or set one of its credentials "
    "(themself or through an account they steer)",
    Hand.PLACED_IN_GROUP: "{requester} added {voter} to the approver group (themself or through "
    "an account they steer)",
    Hand.CHOSE_SETUP: "{requester} last set the approval setup of the policy (themself or through "
    "an account they steer)",
}
ASK_ANOTHER = (
    "separation of duties: another administrator must re-confirm or add what the requester set"
)


def hand_in_vote(
    *,
    requester_id: UUID,
    requester_steers: frozenset[UUID],
    voter_id: UUID,
    paths: Iterable[MembershipPath],
    setup: ApprovalSetup,
) -> Hand | None:
    """How the requester has a hand in the voter's vote, or None when the vote may count.

    ``requester_steers``: every account the requester steers, directly or through accounts they
    steer (``steered_closure``); ``paths``: the membership paths through which the voter is an
    approver (none: not one).
    """
    if requester_id == voter_id:
        return Hand.SELF
    if voter_id in requester_steers:
        return Hand.STEERS_ACCOUNT
    acting = requester_steers | {requester_id}
    listed = list(paths)
    if listed and all(any(by in acting for by in path) for path in listed):
        return Hand.PLACED_IN_GROUP
    if setup.chosen_by(acting):
        return Hand.CHOSE_SETUP
    return None


def steered_closure(
    user_id: UUID, steered_by: Callable[[frozenset[UUID]], frozenset[UUID]]
) -> frozenset[UUID]:
    """Every account ``user_id`` steers, directly or through accounts they steer (themself
    excluded). ``steered_by(ids)``: the accounts whose stewards include one of ``ids``."""
    steers: set[UUID] = set()
    frontier = frozenset({user_id})
    while frontier:
        frontier = steered_by(frontier) - steers - {user_id}
        steers |= frontier
    return frozenset(steers)


def vote_refusal(*, hand: Hand, requester: str, voter: str, describe: str) -> SeparationOfDuties:
    """The error a vote the requester has a hand in is refused with, saying why and what to do."""
    why = HAND_TEXT[hand].format(requester=requester, voter=voter)
    remedy = {
        Hand.STEERS_ACCOUNT: "only approvers whose accounts the requester never set up can vote",
        Hand.PLACED_IN_GROUP: "another administrator must add the voter to the approver group",
        Hand.CHOSE_SETUP: "another administrator must re-confirm the policy's approval setup",
    }.get(hand, ASK_ANOTHER)
    return SeparationOfDuties(
        f"{voter} cannot vote on {describe}: {why} (separation of duties); {remedy}"
    )


def setup_refusal(
    *,
    requester_id: UUID,
    requester_steers: frozenset[UUID],
    setup: ApprovalSetup,
    describe: str,
) -> SeparationOfDuties | None:
    """Why a request under a policy whose approval setup the requester chose (themself or
    through an account they steer) is refused at once (no vote on it could ever count, and Auto
    approval does not apply), or None."""
    chosen = setup.chosen_by(requester_steers | {requester_id})
    if not chosen:
        return None
    settings = chosen[0] if len(chosen) == 1 else f"{', '.join(chosen[:-1])} and {chosen[-1]}"
    return SeparationOfDuties(
        f"you (or an account you steer) were the last to set {settings} for {describe}, so no "
        "vote on your request could count (separation of duties): another administrator must "
        "re-confirm that setting before you request it"
    )


def eligibility_refusal(
    *,
    requester_id: UUID,
    requester_steers: frozenset[UUID],
    paths: Iterable[MembershipPath],
    describe: str,
) -> SeparationOfDuties | None:
    """Why a request under an Auto policy is refused when its requester is eligible only through
    memberships of its eligible groups that they (or an account they steer) added, or None.
    ``paths``: the membership paths that make the requester eligible (none: named in person, or
    not eligible, both judged elsewhere)."""
    acting = requester_steers | {requester_id}
    listed = list(paths)
    if not listed or not all(any(by in acting for by in path) for path in listed):
        return None
    return SeparationOfDuties(
        f"you (or an account you steer) added you to the eligible groups of {describe}, which "
        "approves automatically (separation of duties): another administrator must add you"
    )


def exemption_counts(
    *, account_id: UUID, designated_by: UUID | None, designator_steers: frozenset[UUID]
) -> bool:
    """Whether a system account's exemption from control counts: whoever designated it neither
    is the account nor steers it (None: the installation designated it).
    ``designator_steers``: the accounts the designator steers (``steered_closure``)."""
    if designated_by is None:
        return True
    return designated_by != account_id and account_id not in designator_steers


def designation_refusal(
    *, designator_id: UUID, designator_steers: frozenset[UUID], account_id: UUID, account: str
) -> SeparationOfDuties | None:
    """Why ``designator_id`` may not make ``account`` a system account, or None."""
    if designator_id == account_id:
        return SeparationOfDuties(
            "nobody can make themself a system account (separation of duties)"
        )
    if account_id in designator_steers:
        return SeparationOfDuties(
            f"you created {account}'s account or set one of its credentials (yourself or through "
            "an account you steer), so you cannot make it a system account (separation of "
            "duties): another administrator must designate it"
        )
    return None
