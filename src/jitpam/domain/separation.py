"""Separation of duties: when a requester has a hand in a vote on their own request.

One relation decides it, for every way a vote can be made or steered: a vote counts toward a
request only when its requester has no hand in it. The requester has a hand in voter V's vote on a
request under policy P when

1. they are V (self-approval);
2. they steer V's account: they created it, or they have ever set one of its credentials (a
   password, an API token; later second factors and chat links) - permanently, since whoever
   held the account for a moment could have done anything as V;
3. they placed V among the approvers: every path of memberships through which V is in the
   approver group has a link they added (a link made by provisioning or group claims counts as
   added by whoever configured that sync);
4. they chose the approval setup: they were the last to set P's approver group, approval type or
   approvals required, or, when P uses the organization's default approver group, that group.
   Then no vote counts, Auto approval does not apply, and the request is refused when filed.

Accounts, memberships and settings made by the installation itself (``jitpam org create``, the
demo, rows older than this rule) have no maker: ``None`` below. A system account's exemption
counts only when whoever designated it is neither the account nor one of its stewards.

Pure rules: the facts (who steers whom, who added which membership, who set what) are read by
the services and passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


@dataclass(frozen=True)
class ApprovalSetup:
    """Who last set each setting that decides whose votes count on a policy's requests."""

    approver_group_by: UUID | None = None
    approval_type_by: UUID | None = None
    approvals_required_by: UUID | None = None
    # The organization's default approver group, when the policy has no group of its own.
    default_group_by: UUID | None = None
    uses_default_group: bool = False

    def chosen_by(self, user_id: UUID) -> list[str]:
        """The settings ``user_id`` was the last to set, in words (empty: none)."""
        settings = [
            (self.approver_group_by, "the approver group"),
            (self.approval_type_by, "the approval type"),
            (self.approvals_required_by, "the approvals required"),
        ]
        if self.uses_default_group:
            settings.append((self.default_group_by, "the organization's default approver group"))
        return [what for by, what in settings if by == user_id]


HAND_TEXT = {
    Hand.STEERS_ACCOUNT: "{requester} created {voter}'s account or set one of its credentials",
    Hand.PLACED_IN_GROUP: "{requester} added {voter} to the approver group",
    Hand.CHOSE_SETUP: "{requester} last set the approval setup of the policy",
}
ASK_ANOTHER = (
    "separation of duties: another administrator must re-confirm or add what the requester set"
)


def hand_in_vote(
    *,
    requester_id: UUID,
    voter_id: UUID,
    voter_stewards: frozenset[UUID],
    paths: Iterable[MembershipPath],
    setup: ApprovalSetup,
) -> Hand | None:
    """How the requester has a hand in the voter's vote, or None when the vote may count.

    ``voter_stewards``: everyone who created the voter's account or set its credentials;
    ``paths``: the membership paths through which the voter is an approver (none: not one).
    """
    if requester_id == voter_id:
        return Hand.SELF
    if requester_id in voter_stewards:
        return Hand.STEERS_ACCOUNT
    listed = list(paths)
    if listed and all(requester_id in path for path in listed):
        return Hand.PLACED_IN_GROUP
    if setup.chosen_by(requester_id):
        return Hand.CHOSE_SETUP
    return None


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
    *, requester_id: UUID, setup: ApprovalSetup, describe: str
) -> SeparationOfDuties | None:
    """Why a request under a policy whose approval setup the requester chose is refused at once
    (no vote on it could ever count, and Auto approval does not apply), or None."""
    chosen = setup.chosen_by(requester_id)
    if not chosen:
        return None
    settings = chosen[0] if len(chosen) == 1 else f"{', '.join(chosen[:-1])} and {chosen[-1]}"
    return SeparationOfDuties(
        f"you were the last to set {settings} for {describe}, so no vote on your request could "
        "count (separation of duties): another administrator must re-confirm that setting "
        "before you request it"
    )


def exemption_counts(
    *, account_id: UUID, designated_by: UUID | None, account_stewards: frozenset[UUID]
) -> bool:
    """Whether a system account's exemption from control counts: whoever designated it is not the
    account itself and does not steer it (None: the installation designated it)."""
    if designated_by is None:
        return True
    return designated_by != account_id and designated_by not in account_stewards


def designation_refusal(
    *, designator_id: UUID, account_id: UUID, account: str, account_stewards: frozenset[UUID]
) -> SeparationOfDuties | None:
    """Why ``designator_id`` may not make ``account`` a system account, or None."""
    if designator_id == account_id:
        return SeparationOfDuties(
            "nobody can make themself a system account (separation of duties)"
        )
    if designator_id in account_stewards:
        return SeparationOfDuties(
            f"you created {account}'s account or set one of its credentials, so you cannot make it "
            "a system account (separation of duties): another administrator must designate it"
        )
    return None
