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
    steered_closure,
)

Q, V, OTHER, PUPPET = uuid4(), uuid4(), uuid4(), uuid4()
INDEPENDENT = ApprovalSetup(OTHER, OTHER, OTHER, OTHER, uses_default_group=False)


def hand(
    *,
    steers: frozenset[UUID] = frozenset(),
    paths: list[tuple[UUID | None, ...]] | None = None,
    setup: ApprovalSetup = INDEPENDENT,
    voter: UUID = V,
) -> Hand | None:
    return hand_in_vote(
        requester_id=Q,
        requester_steers=steers,
        voter_id=voter,
        paths=[(OTHER,)] if paths is None else paths,
        setup=setup,
    )


def test_an_independent_voter_has_no_hand_of_the_requester_in_their_vote() -> None:
    assert hand() is None


def test_the_requester_voting_is_self_approval() -> None:
    assert hand(voter=Q) is Hand.SELF


def test_a_voter_whose_account_the_requester_steers() -> None:
    assert hand(steers=frozenset({OTHER, V})) is Hand.STEERS_ACCOUNT


def test_steering_passes_on_through_the_accounts_one_steers() -> None:
    made = {Q: {PUPPET}, PUPPET: {V}, V: {Q}}  # Q made a puppet, which made V, which made Q

    def steered_by(ids: frozenset[UUID]) -> frozenset[UUID]:
        return frozenset(a for i in ids for a in made.get(i, ()))

    assert steered_closure(Q, steered_by) == {PUPPET, V}
    assert steered_closure(OTHER, steered_by) == frozenset()


def test_what_an_account_the_requester_steers_did_counts_as_theirs() -> None:
    puppet = frozenset({PUPPET})
    assert hand(steers=puppet, paths=[(PUPPET,)]) is Hand.PLACED_IN_GROUP
    assert hand(steers=puppet, setup=ApprovalSetup(approver_group_by=PUPPET)) is Hand.CHOSE_SETUP
    refused = setup_refusal(
        requester_id=Q,
        requester_steers=puppet,
        setup=ApprovalSetup(approvals_required_by=PUPPET),
        describe="Task 'x'",
    )
    assert refused is not None


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
        assert (
            setup_refusal(
                requester_id=Q, requester_steers=frozenset(), setup=setup, describe="Task 'x'"
            )
            is not None
        )


def test_the_default_group_counts_only_for_a_policy_that_uses_it() -> None:
    setup = ApprovalSetup(default_group_by=Q, uses_default_group=False)
    assert hand(setup=setup) is None
    assert (
        setup_refusal(
            requester_id=Q, requester_steers=frozenset(), setup=setup, describe="Task 'x'"
        )
        is None
    )


def test_the_refusal_to_file_names_each_setting_and_the_remedy() -> None:
    setup = ApprovalSetup(approver_group_by=Q, approvals_required_by=Q)
    refused = setup_refusal(
        requester_id=Q, requester_steers=frozenset(), setup=setup, describe="Task 'x'"
    )
    assert refused is not None
    assert "the approver group and the approvals required for Task 'x'" in refused.message
    assert "another administrator must re-confirm" in refused.message


def test_an_exemption_counts_unless_its_designator_is_or_steers_the_account() -> None:
    def counts(designated_by: UUID | None, steers: frozenset[UUID] = frozenset()) -> bool:
        return exemption_counts(account_id=V, designated_by=designated_by, designator_steers=steers)

    assert counts(None)
    assert counts(OTHER)
    assert not counts(V)
    assert not counts(Q, frozenset({V}))  # Q steers V, directly or through a puppet


def test_designating_oneself_or_an_account_one_steers_is_refused() -> None:
    def refusal(
        designator: UUID, steers: frozenset[UUID] = frozenset()
    ) -> SeparationOfDuties | None:
        return designation_refusal(
            designator_id=designator, designator_steers=steers, account_id=V, account="v@x.com"
        )

    assert refusal(V) is not None
    assert refusal(Q, frozenset({PUPPET, V})) is not None
    assert refusal(OTHER) is None
