"""The separation-of-duties relation itself, without a database: when a requester has a hand in a
vote, and when a system account's exemption counts."""

from __future__ import annotations

from uuid import UUID, uuid4

from jitpam.domain.errors import SeparationOfDuties
from jitpam.domain.separation import (
    ApprovalSetup,
    Hand,
    designation_refusal,
    exemption_counts,
    hand_in_vote,
    setup_refusal,
)

Q, V, OTHER = uuid4(), uuid4(), uuid4()
INDEPENDENT = ApprovalSetup(OTHER, OTHER, OTHER, OTHER, uses_default_group=False)


def hand(
    *,
    stewards: frozenset[UUID] = frozenset(),
    paths: list[tuple[UUID | None, ...]] | None = None,
    setup: ApprovalSetup = INDEPENDENT,
    voter: UUID = V,
) -> Hand | None:
    return hand_in_vote(
        requester_id=Q,
        voter_id=voter,
        voter_stewards=stewards,
        paths=[(OTHER,)] if paths is None else paths,
        setup=setup,
    )


def test_an_independent_voter_has_no_hand_of_the_requester_in_their_vote() -> None:
    assert hand() is None


def test_the_requester_voting_is_self_approval() -> None:
    assert hand(voter=Q) is Hand.SELF


def test_a_voter_whose_account_the_requester_steers() -> None:
    assert hand(stewards=frozenset({OTHER, Q})) is Hand.STEERS_ACCOUNT


def test_a_path_counts_only_when_no_link_in_it_was_added_by_the_requester() -> None:
    assert hand(paths=[(Q,)]) is Hand.PLACED_IN_GROUP
    assert hand(paths=[(OTHER, Q)]) is Hand.PLACED_IN_GROUP  # a nested group the requester filled
    assert hand(paths=[(OTHER, Q), (None,)]) is None  # another path, made by the installation
    assert hand(paths=[(None, OTHER)]) is None


def test_the_setup_the_requester_chose_taints_every_vote() -> None:
    for setup in (
        ApprovalSetup(approver_group_by=Q),
        ApprovalSetup(approval_type_by=Q),
        ApprovalSetup(approvals_required_by=Q),
        ApprovalSetup(default_group_by=Q, uses_default_group=True),
    ):
        assert hand(setup=setup) is Hand.CHOSE_SETUP
        assert setup_refusal(requester_id=Q, setup=setup, describe="Task 'x'") is not None


def test_the_default_group_counts_only_for_a_policy_that_uses_it() -> None:
    setup = ApprovalSetup(default_group_by=Q, uses_default_group=False)
    assert hand(setup=setup) is None
    assert setup_refusal(requester_id=Q, setup=setup, describe="Task 'x'") is None


def test_the_refusal_to_file_names_each_setting_and_the_remedy() -> None:
    setup = ApprovalSetup(approver_group_by=Q, approvals_required_by=Q)
    refused = setup_refusal(requester_id=Q, setup=setup, describe="Task 'x'")
    assert refused is not None
    assert "the approver group and the approvals required for Task 'x'" in refused.message
    assert "another administrator must re-confirm" in refused.message


def test_an_exemption_counts_unless_its_designator_is_or_steers_the_account() -> None:
    assert exemption_counts(account_id=V, designated_by=None, account_stewards=frozenset({Q}))
    assert exemption_counts(account_id=V, designated_by=OTHER, account_stewards=frozenset({Q}))
    assert not exemption_counts(account_id=V, designated_by=V, account_stewards=frozenset())
    assert not exemption_counts(account_id=V, designated_by=Q, account_stewards=frozenset({Q}))


def test_designating_oneself_or_an_account_one_steers_is_refused() -> None:
    def refusal(
        designator: UUID, stewards: frozenset[UUID] = frozenset()
    ) -> SeparationOfDuties | None:
        return designation_refusal(
            designator_id=designator, account_id=V, account="v@x.com", account_stewards=stewards
        )

    assert refusal(V) is not None
    assert refusal(Q, frozenset({Q})) is not None
    assert refusal(OTHER, frozenset({Q})) is None
